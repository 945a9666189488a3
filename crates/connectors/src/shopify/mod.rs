//! Shopify: webhooks in (customers, orders, products).
//!
//! Contract facts (shared/reference/saas-contracts.md §1): deliveries are signed with
//! base64 HMAC-SHA256 of the raw body under the app's client secret in
//! `X-Shopify-Hmac-Sha256`; `X-Shopify-Webhook-Id` identifies one delivery; IDs exceed 2^53.

pub mod api;
mod model;
pub mod target;
pub mod webhook;
pub mod write;

use serde::Deserialize;
use switchboard_core::Secret;

/// Entities whose webhooks ingest accepts and publishes to `sb.raw.<connection>.<entity>`.
pub const WEBHOOK_ENTITIES: &[&str] = &["customers", "orders", "products"];

/// Settings of a Shopify connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConnection {
    /// `<shop>.myshopify.com`; deliveries from another shop are refused.
    pub shop_domain: String,
    /// Pinned Admin API version, e.g. `2025-01`.
    pub api_version: String,
    /// The app's client secret, which signs webhooks.
    pub webhook_secret: Secret,
    /// The previous secret, accepted too while a rotation settles (Shopify may take up to
    /// an hour to sign with a new secret).
    #[serde(default)]
    pub previous_webhook_secret: Option<Secret>,
    /// Admin API access token (for reconciliation polls and Shopify as a target).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// API address; default `https://<shop_domain>` (set it to try the sandbox).
    #[serde(default)]
    pub base_url: Option<String>,
    /// A slow poll that catches changes whose webhooks were lost.
    #[serde(default)]
    pub reconcile: Option<Reconcile>,
}

/// Reconciliation: list what changed since the last poll and publish what no webhook
/// brought.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Entities to list (`customers`, `orders`).
    pub entities: Vec<String>,
    /// Seconds between two polls.
    #[serde(default = "default_reconcile_every_secs")]
    pub every_secs: u64,
    /// How far back the first poll looks, in seconds.
    #[serde(default = "default_lookback_secs")]
    pub first_lookback_secs: u64,
}

fn default_reconcile_every_secs() -> u64 {
    300
}

fn default_lookback_secs() -> u64 {
    24 * 3600
}
