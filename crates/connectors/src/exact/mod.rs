//! Exact Online: polled through its sync API (saas-contracts.md §3).
//!
//! OAuth2 with 10-minute access tokens and refresh tokens that rotate on every refresh
//! (§3.1); the sync endpoints return new and changed rows after a `Timestamp` rowversion
//! cursor, 1000 per page, and `sync/Deleted` lists deletions (§3.4–3.5); 60 calls a minute
//! and 5000 a day, reported in `X-RateLimit-*` headers with resets in epoch ms (§3.2).

pub mod api;
pub mod model;
pub mod oauth;
pub mod target;
pub mod write;

use serde::Deserialize;
use switchboard_core::Secret;

/// Entities the poller can read, with their sync endpoint and `sync/Deleted` entity type.
pub const SYNC_ENTITIES: &[SyncEntity] = &[
    SyncEntity {
        name: "accounts",
        path: "sync/CRM/Accounts",
        deleted_type: 2,
        key: "ID",
        select: "ID,Code,Name,Email,Phone,VATNumber,ChamberOfCommerce,Country,City,Modified,Timestamp",
    },
    SyncEntity {
        name: "sales_invoices",
        path: "sync/SalesInvoice/SalesInvoices",
        deleted_type: 13,
        key: "InvoiceID",
        select: "InvoiceID,InvoiceNumber,InvoiceTo,InvoiceDate,DueDate,Currency,AmountDC,AmountFC,VATAmountDC,Status,Description,YourRef,Modified,Timestamp",
    },
];

/// One entity of the sync API.
#[derive(Debug, Clone, Copy)]
pub struct SyncEntity {
    /// Topic entity name, e.g. `accounts`.
    pub name: &'static str,
    /// Path under `/api/v1/{division}/`.
    pub path: &'static str,
    /// `EntityType` of its rows in `sync/Deleted`.
    pub deleted_type: i64,
    /// The row's key property (its record ID).
    pub key: &'static str,
    /// `$select` (sync endpoints want explicit fields).
    pub select: &'static str,
}

/// The sync entity named `name`.
pub fn sync_entity(name: &str) -> Option<&'static SyncEntity> {
    SYNC_ENTITIES.iter().find(|e| e.name == name)
}

/// Settings of an Exact Online connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactConnection {
    /// `https://start.exactonline.nl` (or `.be`, or the sandbox's address).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The division (administration) to read.
    pub division: u64,
    /// OAuth client and the first refresh token.
    pub oauth: ExactOAuth,
    /// What to poll and how often.
    #[serde(default)]
    pub poll: Option<PollSettings>,
    /// Calls per minute the client allows itself (Exact: 60).
    #[serde(default = "default_per_minute")]
    pub calls_per_minute: u32,
    /// Request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Settings for Exact as a sink target.
    #[serde(default)]
    pub target: ExactTargetSettings,
    /// Where rotated tokens are kept: filled from the top-level `kafka` and `secrets_key`
    /// by [`crate::connections`], never read from the connection's own keys.
    #[serde(skip)]
    pub token_store: Option<Box<TokenStoreSettings>>,
}

/// The Kafka cluster and key of the encrypted token store.
#[derive(Debug, Clone)]
pub struct TokenStoreSettings {
    /// The cluster holding `<prefix>.tokens`.
    pub kafka: switchboard_core::config::KafkaConfig,
    /// The AES-256 key (base64).
    pub secrets_key: Secret,
}

/// The key a token chain is stored under: the connection and a digest of the configured
/// refresh token it started from. New configured credentials therefore start a new chain
/// (the stored one may be the revoked one), while a restart with the same configuration
/// continues the rotated chain. Every service writing with one Exact connection should use
/// this key, so they share one chain.
pub fn token_key(connection: &str, configured_refresh_token: &Secret) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(configured_refresh_token.expose().as_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{connection}#{short}")
}

/// What writing sales invoices needs that a canonical invoice does not carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactTargetSettings {
    /// Sales journal code of new invoices (e.g. `70`).
    #[serde(default)]
    pub journal: Option<String>,
    /// GUID of the Item every invoice line books on (Exact needs one per line; the
    /// canonical line's SKU goes into its description).
    #[serde(default)]
    pub sales_item: Option<String>,
}

/// OAuth settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactOAuth {
    /// The app's client ID.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Secret,
    /// The refresh token from the first authorization; later ones are rotated and kept in
    /// `<prefix>.tokens`.
    pub refresh_token: Secret,
}

/// Polling schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSettings {
    /// Entities to poll (see [`SYNC_ENTITIES`]).
    pub entities: Vec<String>,
    /// Seconds between two polls of the same entity.
    #[serde(default = "default_every_secs")]
    pub every_secs: u64,
}

fn default_base_url() -> String {
    "https://start.exactonline.nl".to_owned()
}
fn default_per_minute() -> u32 {
    60
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_every_secs() -> u64 {
    60
}
