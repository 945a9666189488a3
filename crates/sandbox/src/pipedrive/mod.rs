//! Emulator of the Pipedrive API v2 persons endpoints, for in-process tests and the
//! `switchboard-sandbox serve|demo` binary.
//!
//! Follows saas-contracts.md §2.5 (endpoints, envelopes, search), §2.6 (`x-api-token`
//! auth) and §2.7 (burst window, daily token budget, rate headers). Each submodule names
//! the facts it implements and the strict choices it makes where the reference has gaps:
//! - `api`: create/get/update/delete/list routes; `search`: the search route;
//! - `gate`: latency, injected faults, auth and rate limits in front of every route;
//! - `rate_limit`: the rolling window and the daily budget; `model`: the person object,
//!   body validation and envelopes; `state`: the store and counters.
//!
//! The [`PipedriveSandbox`] handle is what tests use: it starts the server on a loopback
//! port and exposes what happened (persons, creates per email, requests, 429s served) and
//! fault injection (`fail_next`, `set_latency`).

mod api;
mod gate;
mod model;
mod rate_limit;
mod search;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use model::{ContactValue, Person};
pub use rate_limit::Operation;
pub use state::RequestRecord;

use model::{now_string, split_name};
use state::Shared;

/// How the emulator behaves. Build with [`PipedriveConfig::new`] and override fields with
/// struct-update syntax: `PipedriveConfig { burst_limit: 3, ..PipedriveConfig::new("t") }`.
#[derive(Clone)]
pub struct PipedriveConfig {
    /// The API token the emulator accepts in `x-api-token`. Never logged.
    pub api_token: String,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// Burst limit per window (API-token Growth plan: 40 per 2 s).
    pub burst_limit: u32,
    /// Burst limit for search endpoints (10 per 2 s on every plan).
    pub search_burst_limit: u32,
    /// Length of the rolling burst window (2 s; shorter in tests).
    pub burst_window: Duration,
    /// Daily token budget (30,000 × Growth multiplier 2 × 1 seat).
    pub daily_budget: u64,
    /// The user that owns persons created without `owner_id` (the token's user).
    pub user_id: u64,
    /// ID of the first person created.
    pub first_person_id: u64,
    /// How long a new person stays invisible to search (the real index lags; default 0).
    pub search_lag: Duration,
}

impl PipedriveConfig {
    /// Defaults of an API-token client on the Growth plan, on `127.0.0.1:0`.
    pub fn new(api_token: impl Into<String>) -> Self {
        Self {
            api_token: api_token.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            burst_limit: 40,
            search_burst_limit: 10,
            burst_window: Duration::from_secs(2),
            daily_budget: 30_000 * 2,
            user_id: 1,
            first_person_id: 1,
            search_lag: Duration::ZERO,
        }
    }
}

impl fmt::Debug for PipedriveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipedriveConfig")
            .field("api_token", &"***")
            .field("addr", &self.addr)
            .field("burst_limit", &self.burst_limit)
            .field("search_burst_limit", &self.search_burst_limit)
            .field("burst_window", &self.burst_window)
            .field("daily_budget", &self.daily_budget)
            .field("user_id", &self.user_id)
            .field("first_person_id", &self.first_person_id)
            .field("search_lag", &self.search_lag)
            .finish()
    }
}

/// Why the emulator could not start.
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
}

/// A running Pipedrive emulator. Dropping it stops the server; [`shutdown`] also waits.
///
/// [`shutdown`]: PipedriveSandbox::shutdown
#[derive(Debug)]
pub struct PipedriveSandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl PipedriveSandbox {
    /// Binds `config.addr` (loopback only) and serves in a tokio task.
    pub async fn start(config: PipedriveConfig) -> Result<Self, PipedriveError> {
        if !crate::net::is_loopback_addr(&config.addr) {
            return Err(PipedriveError::NotLoopback(config.addr));
        }
        if config.api_token.is_empty() {
            return Err(PipedriveError::InvalidConfig("api_token must not be empty"));
        }
        if config.burst_limit == 0
            || config.search_burst_limit == 0
            || config.burst_window.is_zero()
        {
            return Err(PipedriveError::InvalidConfig(
                "burst limits and burst_window must be greater than zero",
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| PipedriveError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| PipedriveError::Bind {
                addr: config.addr,
                source,
            })?;
        let shared = Arc::new(Shared::new(config));
        let app = api::router(shared.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "Pipedrive emulator stopped with an error.");
            }
        });
        tracing::info!(%addr, "Pipedrive emulator listening.");
        Ok(Self {
            shared,
            addr,
            cancel,
            task: Mutex::new(Some(task)),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The company-domain equivalent, e.g. `http://127.0.0.1:41234`; the API lives under
    /// `/api/v2/...` below it, as on `https://<company>.pipedrive.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// All live (not deleted) persons, by ID.
    pub fn persons(&self) -> Vec<Person> {
        self.shared.lock().live_persons().cloned().collect()
    }

    /// One person by ID, deleted or not.
    pub fn person(&self, id: u64) -> Option<Person> {
        self.shared
            .lock()
            .persons
            .get(&id)
            .map(|s| s.person.clone())
    }

    /// The live person with this email (ASCII case-insensitive), lowest ID first.
    pub fn person_by_email(&self, email: &str) -> Option<Person> {
        self.shared
            .lock()
            .live_persons()
            .find(|p| p.has_email(email))
            .cloned()
    }

    /// How many successful `POST /api/v2/persons` created a person carrying this email
    /// (case-insensitive), including persons deleted since: the "creates per record" count
    /// that proves exactly-once delivery.
    pub fn creates_for_email(&self, email: &str) -> usize {
        self.shared
            .lock()
            .creates_by_email
            .get(&email.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Successful creates through the API (seeded persons excluded).
    pub fn total_creates(&self) -> usize {
        self.shared.lock().total_creates
    }

    /// Every HTTP request received, whatever the answer.
    pub fn request_count(&self) -> usize {
        self.shared.lock().request_count
    }

    /// How many 429 answers were served (burst and daily budget).
    pub fn throttled_count(&self) -> usize {
        self.shared.lock().throttled_count
    }

    /// The most recent requests (up to 10,000), oldest first. No headers or bodies.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Tokens left in today's budget.
    pub fn daily_budget_remaining(&self) -> u64 {
        self.shared.lock().budget.remaining(state::today_utc())
    }

    /// Makes the next `n` requests answer `status` (after any failures already queued).
    /// 500 gets Pipedrive's JSON body, 502–504 an HTML edge page, others the v2 envelope.
    pub fn fail_next(&self, n: u32, status: StatusCode) {
        if n > 0 {
            self.shared.lock().faults.push_back((n, status));
        }
    }

    /// Delays every later request by `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Stores a person directly, as if it had existed before the test: it is not counted
    /// as a create and it is searchable at once.
    pub fn seed_person(&self, name: &str, emails: &[&str]) -> Person {
        let now = now_string();
        let (first_name, last_name) = split_name(name);
        let mut inner = self.shared.lock();
        let person = Person {
            id: inner.allocate_id(),
            name: name.to_owned(),
            first_name,
            last_name,
            owner_id: self.shared.config.user_id,
            org_id: None,
            add_time: now.clone(),
            update_time: now,
            emails: emails
                .iter()
                .enumerate()
                .map(|(i, e)| ContactValue {
                    value: (*e).to_owned(),
                    primary: i == 0,
                    label: "work".to_owned(),
                })
                .collect(),
            phones: Vec::new(),
            is_deleted: false,
            visible_to: 3,
            label_ids: Vec::new(),
            picture_id: None,
            marketing_status: None,
            custom_fields: Default::default(),
        };
        let searchable_from = tokio::time::Instant::now();
        inner.persons.insert(
            person.id,
            state::StoredPerson {
                person: person.clone(),
                searchable_from,
            },
        );
        person
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the
    /// server task. Calling it again is a no-op.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "Pipedrive emulator task ended abnormally.");
        }
    }
}

impl Drop for PipedriveSandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
