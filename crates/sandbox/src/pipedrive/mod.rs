//! Emulator of the Pipedrive API (v2 persons, organizations and deals, v1 webhooks, OAuth
//! 2.0) and of Pipedrive's outbound webhooks v2, for in-process tests and the
//! `switchboard-sandbox` binary.
//!
//! Follows saas-contracts.md §2.1 (webhook v2 payloads), §2.3 (creating webhooks, Basic
//! auth), §2.4 (delivery, retries, bans), §2.5 (endpoints, envelopes, search), §2.6
//! (`x-api-token` and OAuth 2.0) and §2.7 (burst windows, daily token budget, rate
//! headers). Each submodule names the facts it implements and the strict choices it makes
//! where the reference has gaps:
//! - `persons`, `organizations`, `deals`: CRUD routes and the store operations behind them;
//!   `model`, `org_model`, `deal_model`: objects and body validation; `search`: the three
//!   search routes; `common`: envelopes, parsing, time formats; `listing`: list filters,
//!   sorting and cursors;
//! - `gate`: auth and rate limits in front of the API; `rate_limit`: windows, budget and
//!   token costs; `oauth`: authorization codes, the token endpoint, bearer tokens;
//! - `events`: change events and their webhook shapes; `webhooks`: `/v1/webhooks` and the
//!   delivery engine (retries, ban system, removal, delivery log);
//! - `schema`: schema-drift switches; `switches`: the `/_sandbox/pipedrive/` routes;
//!   `state`: the shared store; `handle`: [`PipedriveSandbox`].
//!
//! Time comes from the config's [`Clock`] (rate windows, the daily budget's midnight,
//! token lifetimes, webhook retries, bans and removals), so a scaled or advanced clock
//! runs hour- and day-long rules in a test. Faults, outages, latency and the request log
//! are the shared [`crate::control`] layer's; injected errors are rendered the way
//! Pipedrive shapes them (JSON 500, HTML 502–504, the v2 envelope otherwise).
//!
//! Routes: the API under `/api/v2/{persons,organizations,deals}[/search|/{id}]` and
//! `/v1/webhooks[/{id}]`; OAuth at `/oauth/authorize` and `/oauth/token`; the shared
//! control API under `/_sandbox/`; and these switches (see `switches.rs` for bodies):
//! - `POST /_sandbox/pipedrive/authorize` — an authorization code for a `redirect_uri`;
//! - `POST /_sandbox/pipedrive/oauth/expire` — expire every access token now;
//! - `POST /_sandbox/pipedrive/oauth/revoke` — revoke one refresh token, or all;
//! - `GET /_sandbox/pipedrive/webhooks` — subscriptions with ban and removal state;
//! - `GET|POST /_sandbox/pipedrive/deliveries` — the delivery log; duplicate and
//!   out-of-order delivery switches;
//! - `GET|POST|DELETE /_sandbox/pipedrive/schema` — schema switches;
//! - `POST /_sandbox/pipedrive/trigger` — a change "made in the web app".

mod common;
mod deal_model;
mod deals;
mod events;
mod faults;
mod gate;
mod handle;
mod listing;
mod model;
mod oauth;
mod org_model;
mod organizations;
mod persons;
mod rate_limit;
mod schema;
mod search;
mod state;
mod switches;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;

use crate::clock::Clock;

pub use deal_model::{Deal, PIPELINE_ID, STAGES};
pub use deals::DEFAULT_CURRENCY;
pub use events::{Action, ChangeSource, Entity};
pub use handle::{PipedriveSandbox, RequestRecord};
pub use model::{ContactValue, Person};
pub use oauth::{CODE_TTL, DEFAULT_SCOPE};
pub use org_model::{Address, Organization};
pub use rate_limit::Operation;
pub use schema::{AddField, ChangeType, JsonType, Rename, SchemaSwitch, SchemaTarget};
pub use switches::Trigger;
pub use webhooks::{DeliveryOutcome, DeliveryRecord, MAX_WEBHOOKS_PER_USER, Webhook, WebhookState};

/// How the emulator behaves. Build with [`PipedriveConfig::new`] and override fields with
/// struct-update syntax: `PipedriveConfig { burst_limit: 3, ..PipedriveConfig::new("t") }`.
#[derive(Clone)]
pub struct PipedriveConfig {
    /// The API token the emulator accepts in `x-api-token`. Never logged.
    pub api_token: String,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The sandbox clock every time-based rule reads (default: real time).
    pub clock: Clock,
    /// API-token burst limit per window (Growth plan: 40 per 2 s).
    pub burst_limit: u32,
    /// API-token burst limit for search endpoints (10 per 2 s on every plan).
    pub search_burst_limit: u32,
    /// OAuth burst limit per window (Growth plan: 160 per 2 s).
    pub oauth_burst_limit: u32,
    /// OAuth burst limit for search endpoints (10 per 2 s on every plan).
    pub oauth_search_burst_limit: u32,
    /// Length of the rolling burst window (2 s), on the sandbox clock.
    pub burst_window: Duration,
    /// Daily token budget (30,000 × Growth multiplier 2 × 1 seat), shared by both auths.
    pub daily_budget: u64,
    /// The user behind the token: owner of new records, `meta.user_id` of webhooks.
    pub user_id: u64,
    /// The company, for webhook `meta.company_id`.
    pub company_id: u64,
    /// The company domain: webhook `meta.host` is `<company_domain>.pipedrive.com`.
    pub company_domain: String,
    /// ID of the first person created.
    pub first_person_id: u64,
    /// How long a new record stays invisible to search (the real index lags; default 0).
    pub search_lag: Duration,
    /// OAuth client ID the token endpoint accepts.
    pub oauth_client_id: String,
    /// OAuth client secret the token endpoint accepts. Never logged.
    pub oauth_client_secret: String,
    /// Access-token lifetime (`expires_in`: 3600 s).
    pub access_token_ttl: Duration,
    /// A refresh token unused for this long expires (60 days).
    pub refresh_token_idle_ttl: Duration,
    /// Each refresh answers a new refresh token and revokes the old one (strict default).
    pub rotate_refresh_tokens: bool,
    /// Webhook delivery timeout (10 s), in real time: it bounds real I/O.
    pub webhook_timeout: Duration,
}

impl PipedriveConfig {
    /// Defaults of a Growth-plan company on `127.0.0.1:0`, real time.
    pub fn new(api_token: impl Into<String>) -> Self {
        Self {
            api_token: api_token.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Clock::real(),
            burst_limit: 40,
            search_burst_limit: 10,
            oauth_burst_limit: 160,
            oauth_search_burst_limit: 10,
            burst_window: Duration::from_secs(2),
            daily_budget: 30_000 * 2,
            user_id: 1,
            company_id: 100,
            company_domain: "sandbox".to_owned(),
            first_person_id: 1,
            search_lag: Duration::ZERO,
            oauth_client_id: "sandbox-client-id".to_owned(),
            oauth_client_secret: "sandbox-client-secret".to_owned(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_idle_ttl: Duration::from_secs(60 * 24 * 3600),
            rotate_refresh_tokens: true,
            webhook_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), PipedriveError> {
        if !crate::net::is_loopback_addr(&self.addr) {
            return Err(PipedriveError::NotLoopback(self.addr));
        }
        if self.api_token.is_empty() {
            return Err(PipedriveError::InvalidConfig("api_token must not be empty"));
        }
        let limits = [
            self.burst_limit,
            self.search_burst_limit,
            self.oauth_burst_limit,
            self.oauth_search_burst_limit,
        ];
        if limits.contains(&0) || self.burst_window.is_zero() {
            return Err(PipedriveError::InvalidConfig(
                "burst limits and burst_window must be greater than zero",
            ));
        }
        if self.oauth_client_id.is_empty() || self.oauth_client_secret.is_empty() {
            return Err(PipedriveError::InvalidConfig(
                "oauth_client_id and oauth_client_secret must not be empty",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for PipedriveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipedriveConfig")
            .field("api_token", &"***")
            .field("addr", &self.addr)
            .field("clock", &self.clock)
            .field("burst_limit", &self.burst_limit)
            .field("search_burst_limit", &self.search_burst_limit)
            .field("oauth_burst_limit", &self.oauth_burst_limit)
            .field("oauth_search_burst_limit", &self.oauth_search_burst_limit)
            .field("burst_window", &self.burst_window)
            .field("daily_budget", &self.daily_budget)
            .field("user_id", &self.user_id)
            .field("company_id", &self.company_id)
            .field("company_domain", &self.company_domain)
            .field("first_person_id", &self.first_person_id)
            .field("search_lag", &self.search_lag)
            .field("oauth_client_id", &self.oauth_client_id)
            .field("oauth_client_secret", &"***")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_idle_ttl", &self.refresh_token_idle_ttl)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("webhook_timeout", &self.webhook_timeout)
            .finish()
    }
}

/// Why the emulator could not start, or refused an in-process switch.
#[derive(Debug, thiserror::Error)]
pub enum PipedriveError {
    /// The configured address is not loopback.
    #[error(
        "refusing to listen on {0}: the sandbox only binds loopback addresses such as 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The configuration cannot work (e.g. a zero limit or an empty token).
    #[error("invalid Pipedrive emulator configuration: {0}")]
    InvalidConfig(&'static str),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The webhook sender could not start (no tokio runtime, or no HTTP client).
    #[error("cannot start webhook deliveries: {0}")]
    Webhooks(String),
    /// A schema switch that does not say exactly one change.
    #[error("invalid schema switch: {0}")]
    InvalidSwitch(String),
    /// A trigger the API would refuse (validation, unknown record).
    #[error("trigger refused with {status}: {message}")]
    Refused {
        /// The status the API would answer.
        status: StatusCode,
        /// The error message of the envelope.
        message: String,
    },
}
