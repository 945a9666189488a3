//! Exact Online: polled through its sync API (saas-contracts.md §3).
//!
//! OAuth2 with 10-minute access tokens and refresh tokens that rotate on every refresh
//! (§3.1); the sync endpoints return new and changed rows after a `Timestamp` rowversion
//! cursor, 1000 per page, and `sync/Deleted` lists deletions (§3.4–3.5); 60 calls a minute
//! and 5000 a day, reported in `X-RateLimit-*` headers with resets in epoch ms (§3.2).

pub mod api;
pub mod model;
pub mod oauth;
mod poll;
pub mod target;
pub mod write;

use std::sync::Arc;

use serde::Deserialize;
use switchboard_core::config::ConfigError;
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::tokens::{TokenManager, TokenStore};
use switchboard_core::{Config, Secret};

use crate::poll::{Poll, PollContext};
use crate::target::{Entity, Writer};

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
    /// when the connection is read (`System::configure`), never read from the connection's own keys.
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

/// The API client of connection `name`, on the token chain its poller and its target
/// share ([`token_key`]): one refresh token rotates for both, so neither kills the other's.
/// The token store's topic is made if missing.
pub(crate) async fn open_client(
    name: &str,
    connection: &ExactConnection,
) -> Result<api::ExactClient, ClassifiedError> {
    let settings = connection.token_store.as_deref().ok_or_else(|| {
        ClassifiedError::new(
            ErrorClass::Auth,
            format!("connection `{name}` (exact) needs secrets_key to keep its tokens"),
        )
    })?;
    let store = TokenStore::new(&settings.kafka, &settings.secrets_key)?;
    switchboard_core::kafka::ensure_topics(&settings.kafka, &[store.topic_spec()]).await?;
    let endpoint = oauth::ExactTokenEndpoint::new(&connection.base_url, connection.oauth.clone())?;
    let initial = connection.oauth.refresh_token.clone();
    let key = token_key(name, &initial);
    let tokens = TokenManager::new(&key, endpoint, store, initial).await?;
    api::ExactClient::new(connection, Arc::new(tokens))
}

impl crate::System for ExactConnection {
    fn system(&self) -> &'static str {
        "exact"
    }

    /// Rotated tokens are kept in the cluster, encrypted with `secrets_key`.
    fn configure(&mut self, config: &Config) {
        self.token_store = config.secrets_key.as_ref().map(|key| {
            Box::new(TokenStoreSettings {
                kafka: config.kafka.clone(),
                secrets_key: key.clone(),
            })
        });
    }

    fn validate(&self, name: &str, config: &Config) -> Result<(), ConfigError> {
        let Some(poll) = &self.poll else {
            return Ok(());
        };
        for (i, entity) in poll.entities.iter().enumerate() {
            if sync_entity(entity).is_none() {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.poll.entities[{i}]"),
                    format!(
                        "`{entity}` has no sync endpoint here; use one of {:?}",
                        SYNC_ENTITIES.iter().map(|e| e.name).collect::<Vec<_>>()
                    ),
                ));
            }
        }
        if config.secrets_key.is_none() {
            return Err(ConfigError::invalid(
                "secrets_key",
                format!(
                    "connection `{name}` rotates refresh tokens, which are stored encrypted: set secrets_key (e.g. ${{env:SB_SECRETS_KEY}} with `openssl rand -base64 32`)"
                ),
            ));
        }
        Ok(())
    }

    fn polled_entities(&self) -> Vec<String> {
        self.poll
            .as_ref()
            .map(|p| p.entities.clone())
            .unwrap_or_default()
    }

    fn pollers(
        &self,
        name: &str,
        context: &PollContext,
    ) -> Result<Vec<Box<dyn Poll>>, ClassifiedError> {
        if self.poll.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Box::new(poll::ExactPoller {
            name: name.to_owned(),
            connection: self.clone(),
            client: tokio::sync::OnceCell::new(),
            publisher: context.publisher.clone(),
            cursors: context.cursors.clone(),
        })])
    }

    fn target_entities(&self) -> Option<&'static [Entity]> {
        Some(target::ENTITIES)
    }

    fn target_needs(&self, name: &str, config: &Config, entity: &str) -> Result<(), String> {
        if config.secrets_key.is_none() {
            return Err(format!(
                "connection `{name}` rotates refresh tokens, kept encrypted: set secrets_key"
            ));
        }
        if entity == "sales_invoices"
            && (self.target.journal.is_none() || self.target.sales_item.is_none())
        {
            return Err(format!(
                "connection `{name}`: invoices need target.journal and target.sales_item"
            ));
        }
        Ok(())
    }

    fn writer(&self, name: &str) -> anyhow::Result<Box<dyn Writer>> {
        Ok(Box::new(target::ExactTarget::new(name, self)?))
    }
}

/// How Exact Online answers read: `X-RateLimit-Minutely-Reset` / `X-RateLimit-Reset` in
/// epoch ms (§3.2), for the group that refused.
pub struct Answers;

impl crate::http::Answers for Answers {
    fn retry_after(
        &self,
        headers: &::http::HeaderMap,
        _body: &str,
        now_ms: i64,
    ) -> Option<std::time::Duration> {
        use crate::http::{MAX_RATE_WAIT, header_number, wait_secs};
        ["x-ratelimit-minutely", "x-ratelimit"]
            .iter()
            .find_map(|prefix| {
                let remaining = header_number(headers, &format!("{prefix}-remaining"));
                let reset = header_number(headers, &format!("{prefix}-reset"))?;
                // A 429 carries only the group that refused (§3.2).
                (remaining.is_none_or(|r| r <= 0.0)).then(|| {
                    std::time::Duration::from_millis((reset as i64 - now_ms).max(0) as u64)
                })
            })
            .map(|d| d.min(MAX_RATE_WAIT))
            .or_else(|| header_number(headers, "retry-after").map(wait_secs))
    }
}
