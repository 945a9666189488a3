//! Offline emulators of the SaaS API contracts Switchboard talks to.
//!
//! Each emulator follows the vendor's *documented or observed* contract, as collected in
//! `shared/reference/saas-contracts.md`, and never Switchboard's own connector code: an
//! emulator that shared the connector's signatures, rate headers or payload shapes would
//! agree with the connector's bugs instead of catching them. That is why this crate depends
//! on neither `switchboard-connectors` nor `switchboard-core`.
//!
//! Where the reference lists a gap (section 5) the emulators pick the **stricter**
//! behaviour, so a connector that passes against the sandbox does not lean on an
//! unconfirmed kindness of the real API. Each such choice is marked in a comment.
//!
//! What is here so far:
//! - [`pipedrive`]: the Pipedrive API v2 persons, organizations and deals endpoints and
//!   `/v1/webhooks` (axum server, in-process or as a binary), with api-token and OAuth 2.0
//!   auth, burst and daily rate limits, webhooks v2 deliveries (Basic auth, 3/30/150 s
//!   retries, ban system), schema-drift and delivery switches, on the shared clock and
//!   control layer.
//! - [`shopify`]: the Shopify Admin REST API (customers, orders, webhook subscriptions)
//!   with access-token auth, API versions that fall forward, the REST leaky bucket, and
//!   signed webhook deliveries with Shopify's 8-retries-in-4-hours schedule; switches for
//!   duplicate, out-of-order and schema-drifted deliveries; plus a standalone webhook sender.
//! - [`telegram`]: the Telegram Bot API (`getMe`, `sendMessage` with flood control,
//!   `getUpdates`, webhooks with secret-token deliveries, retries and fault switches).
//! - [`exact`]: the Exact Online API (OAuth2 with refresh-token rotation and the 570 s
//!   rule, OData REST for Accounts and SalesInvoices, the Timestamp sync API with
//!   `sync/Deleted`, minutely and daily rate limits), on the sandbox clock.
//! - [`demo`] and [`cli`]: the logic behind the `switchboard-sandbox` binary (`serve`,
//!   `demo`).
//!
//! Every server binds loopback addresses only; a non-loopback address is refused.

pub mod all;
pub mod cli;
pub mod clock;
pub mod control;
pub mod demo;
pub mod exact;
pub mod net;
pub mod pipedrive;
pub mod shopify;
pub mod telegram;

/// The HTTP status type used across the public API (the `http` crate's, shared by axum and
/// reqwest, so a status from either can be passed straight in).
pub use axum::http::StatusCode;
pub use clock::Clock;
pub use control::{Control, FaultRule};
pub use exact::{ExactConfig, ExactError, ExactSandbox};
pub use pipedrive::{PipedriveConfig, PipedriveError, PipedriveSandbox};
pub use shopify::{ShopifyConfig, ShopifyError, ShopifySandbox, ShopifyWebhooks, WebhookError};
pub use telegram::{TelegramConfig, TelegramError, TelegramSandbox};
