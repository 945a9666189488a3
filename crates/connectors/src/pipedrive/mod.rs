//! Pipedrive: persons as a target, persons/organizations/deals as a polled source (API v2).
//!
//! Contract facts (saas-contracts.md §2.5–2.7): `x-api-token` on every request; v2 writes are
//! POST and PATCH with JSON bodies; search by e-mail is `GET /api/v2/persons/search` with
//! `fields=email&exact_match=true`; lists take `updated_since` (RFC 3339), `sort_by`,
//! `sort_direction`, `limit` ≤ 500 and `cursor` (`additional_data.next_cursor`); bursts are
//! limited per 2-second window and reported in `x-ratelimit-*`, with 429 when exceeded.
//!
//! Deletions cannot be polled: the reference names no list filter that returns deleted
//! persons or organizations (DELETE is a soft delete, purged after 30 days, and lists show
//! live records), so a polled connection learns of deletes only from `delete` webhooks.

pub mod api;
pub mod model;
pub mod target;
pub mod webhook;
pub mod write;

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
    /// Calls in any rolling 2 s this process allows itself (the API token's limit is 20 on
    /// Lite, 40 on Growth, §2.7); shared by every call of this connection in the process.
    #[serde(default = "default_burst_limit")]
    pub burst_limit: u32,
    /// Search calls in any rolling 2 s (10 on every plan, §2.7), within `burst_limit`.
    #[serde(default = "default_search_limit")]
    pub search_limit: u32,
    /// A fallback poller for a company without webhooks: changes since the last poll.
    #[serde(default)]
    pub poll: Option<PipedrivePoll>,
    /// A slow poll next to webhooks that publishes only the versions no webhook brought.
    #[serde(default)]
    pub reconcile: Option<PipedrivePoll>,
}

/// What a Pipedrive poll (fallback or reconciliation) lists, and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedrivePoll {
    /// Entities to list: `persons`, `organizations`, `deals` (see [`POLLED_ENTITIES`]).
    pub entities: Vec<String>,
    /// Seconds between two polls (default: 60 for `poll`, 300 for `reconcile`).
    #[serde(default)]
    pub every_secs: Option<u64>,
    /// How far back the first poll looks, in seconds (default: everything for `poll`, a
    /// day for `reconcile`).
    #[serde(default)]
    pub first_lookback_secs: Option<u64>,
}

/// Entities whose v2 list endpoints can be polled by `update_time`.
pub const POLLED_ENTITIES: &[&str] = &["persons", "organizations", "deals"];

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

fn default_burst_limit() -> u32 {
    20
}

fn default_search_limit() -> u32 {
    api::SEARCH_LIMIT
}

fn default_timeout_ms() -> u64 {
    10_000
}
