//! Emulator of the Exact Online API: OAuth2 with refresh-token rotation, the OData REST
//! endpoints for Accounts and SalesInvoices, the sync API with its Timestamp cursor and
//! deletion log, and the minutely/daily rate limits, all on the sandbox [`Clock`].
//!
//! Follows saas-contracts.md §3 (sources are cited in each submodule, with every place
//! where the emulator picks the stricter reading of a gap):
//! - `oauth`, `oauth_routes`: §3.1 (10-minute tokens, rotation, the 570 s rule);
//! - `rate_limit`, `gate`: §3.2 (60/minute, 5,000/day, headers in epoch ms) and bearer auth;
//! - `api`, `entity_routes`, `query`, `filter`, `lexer`, `values`, `entities`, `records`:
//!   §3.3 (OData shapes);
//! - `sync`, `store`: §3.4–§3.5 (Timestamp rowversion, `sync/Deleted`, change log);
//! - `schema`, `switches`: test switches; `errors`: Exact's error bodies.
//!
//! Routes (all on `127.0.0.1`):
//! - `GET /api/oauth2/auth`, `POST /api/oauth2/token`
//! - `GET /api/v1/current/Me`, `GET /api/v1/{division}/system/Divisions`
//! - `GET|POST /api/v1/{division}/crm/Accounts`, `GET|PUT|DELETE …/crm/Accounts(guid'…')`
//! - the same for `/api/v1/{division}/salesinvoice/SalesInvoices`
//! - `GET /api/v1/{division}/sync/CRM/Accounts`, `…/sync/SalesInvoice/SalesInvoices`,
//!   `…/sync/Deleted`
//! - the shared `/_sandbox/` control API (faults, outage, log, counters, clock) and the
//!   Exact switches under `/_sandbox/exact/` (listed in `switches`).
//!
//! Creates through the API are counted with `Control::count_create` under
//! `Accounts/<email>` (or `Accounts/code:<code>`) and `SalesInvoices/<YourRef>` (or
//! `SalesInvoices/number:<n>`), so a test can spot a duplicate create.

mod api;
mod entities;
mod entity_routes;
mod errors;
mod filter;
mod gate;
mod handle;
mod lexer;
mod oauth;
mod oauth_routes;
mod query;
mod rate_limit;
mod records;
mod schema;
mod state;
mod store;
mod switches;
mod sync;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::clock::Clock;
use crate::control::Control;

pub use entities::{ENTITY_TYPE_ACCOUNTS, ENTITY_TYPE_SALES_INVOICES};
pub use handle::{ExactSandbox, TokenPair};
pub use schema::{JsonType, SchemaChange};
pub use store::{Change, ChangeKind, Entity};

/// How the emulator behaves. Build with [`ExactConfig::new`] (the real contract's numbers)
/// and override fields with struct-update syntax.
#[derive(Clone)]
pub struct ExactConfig {
    /// The app's client ID.
    pub client_id: String,
    /// The app's client secret. Never logged.
    pub client_secret: String,
    /// The app's registered redirect URI (the consent step redirects only there).
    pub redirect_uri: String,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The sandbox clock every lifetime and window runs on.
    pub clock: Clock,
    /// Share a control layer (faults, log, counters) with other emulators; `None` makes a
    /// new one on `clock`.
    pub control: Option<Control>,
    /// Divisions the user can reach; the first is the current division (`current/Me`).
    pub divisions: Vec<i32>,
    /// API calls per app and division per minute (60).
    pub minutely_limit: u32,
    /// API calls per app and division per day (5,000 for apps since 2021).
    pub daily_limit: u32,
    /// Access-token lifetime (10 minutes).
    pub access_token_lifetime: Duration,
    /// Earliest refresh after an access token was issued (570 s).
    pub min_refresh_interval: Duration,
    /// Authorization-code lifetime (3 minutes).
    pub authorization_code_lifetime: Duration,
    /// How long an unused refresh token stays valid (30 days).
    pub refresh_token_idle_lifetime: Duration,
    /// A refresh also kills the previous access token (strict; see `oauth`).
    pub revoke_access_on_refresh: bool,
    /// Page size of standard endpoints (60).
    pub page_size: usize,
    /// Page size of sync endpoints (1000).
    pub sync_page_size: usize,
    /// Sync endpoints refuse calls without `$select` (strict).
    pub sync_requires_select: bool,
    /// Collection GETs of Accounts/SalesInvoices need a `$filter` (strict).
    pub mandatory_filtering: bool,
    /// Answers without `Accept: application/json` come back as XML (as the real API).
    pub require_json_accept: bool,
    /// The rowversion counter starts just above this (above `i32::MAX` by default).
    pub timestamp_base: i64,
}

impl ExactConfig {
    /// The real contract's defaults for one app on `127.0.0.1:0`, division 123456.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Clock::real(),
            control: None,
            divisions: vec![123_456],
            minutely_limit: 60,
            daily_limit: 5_000,
            access_token_lifetime: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(570),
            authorization_code_lifetime: Duration::from_secs(180),
            refresh_token_idle_lifetime: Duration::from_secs(30 * 86_400),
            revoke_access_on_refresh: true,
            page_size: 60,
            sync_page_size: 1000,
            sync_requires_select: true,
            mandatory_filtering: true,
            require_json_accept: true,
            timestamp_base: 5_000_000_000,
        }
    }
}

impl fmt::Debug for ExactConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .field("addr", &self.addr)
            .field("divisions", &self.divisions)
            .field("minutely_limit", &self.minutely_limit)
            .field("daily_limit", &self.daily_limit)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("page_size", &self.page_size)
            .field("sync_page_size", &self.sync_page_size)
            .finish_non_exhaustive()
    }
}

/// Why the emulator could not start, or an in-process change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExactError {
    /// The configured address is not loopback.
    #[error(
        "refusing to listen on {0}: the sandbox only binds loopback addresses such as 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The configuration cannot work.
    #[error("invalid Exact emulator configuration: {0}")]
    InvalidConfig(&'static str),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record change broke a validation rule (the API would answer `status`).
    #[error("rejected ({status}): {message}")]
    Rejected {
        /// The HTTP status the API gives for this.
        status: u16,
        /// Exact's message.
        message: String,
    },
}
