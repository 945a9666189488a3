//! Pipedrive: persons as a target (API v2).
//!
//! Contract facts (saas-contracts.md §2.5–2.7): `x-api-token` on every request; v2 writes are
//! POST and PATCH with JSON bodies; search by e-mail is `GET /api/v2/persons/search` with
//! `fields=email&exact_match=true`; bursts are limited per 2-second window and reported in
//! `x-ratelimit-*`, with 429 when exceeded.

pub mod api;
pub mod model;
pub mod webhook;

use serde::Deserialize;
use switchboard_core::Secret;

/// Settings of a Pipedrive connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveConnection {
    /// `https://<company>.pipedrive.com` (or the sandbox's address).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The API token of the user Switchboard acts as.
    pub api_token: Secret,
    /// Request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// HTTP Basic credentials Pipedrive sends with webhooks (set on the subscription);
    /// without them the connection accepts no webhooks.
    #[serde(default)]
    pub webhook_auth: Option<WebhookAuth>,
}

/// The Basic credentials of webhook subscriptions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuth {
    /// `http_auth_user` of the subscription.
    pub username: String,
    /// `http_auth_password` of the subscription.
    pub password: Secret,
    /// The previous password, accepted too while subscriptions are being re-created.
    #[serde(default)]
    pub previous_password: Option<Secret>,
}

fn default_base_url() -> String {
    "https://api.pipedrive.com".to_owned()
}

fn default_timeout_ms() -> u64 {
    10_000
}
