//! Shopify emulation: signed webhook deliveries of customer payloads.
//!
//! Follows saas-contracts.md §1.1 (delivery request and headers), §1.2 (HMAC), §1.3
//! (timeouts) and §1.4 (payload shapes); see `webhooks` and `model`. Only single delivery
//! attempts exist so far; Shopify's retry schedule is not emulated yet.

mod model;
mod webhooks;

pub use model::{Customer, CustomerIds, SAMPLE_CUSTOMER_ID, customer_payload, format_shop_time};
pub use webhooks::{CONNECT_TIMEOUT, Delivery, ShopifyWebhooks, TOTAL_TIMEOUT, WebhookError, sign};
