//! [`ExactSandbox`]: starts the emulator on a loopback port and gives tests the in-process
//! twins of the `/_sandbox/exact/` switches plus read access to what is stored.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::routing::{any, get, post};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::errors::{ApiError, fault_response};
use super::schema::SchemaChange;
use super::state::Shared;
use super::store::{Change, Entity};
use super::{ExactConfig, ExactError, api, gate, oauth_routes, switches};
use crate::clock::Clock;
use crate::control::{Control, instrument};

/// An access token and refresh token pair, as the token endpoint hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// Bearer token for API calls (10 minutes).
    pub access_token: String,
    /// Single-use refresh token.
    pub refresh_token: String,
}

/// A running Exact Online emulator. Dropping it stops the server; [`shutdown`] also waits.
///
/// [`shutdown`]: ExactSandbox::shutdown
#[derive(Debug)]
pub struct ExactSandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ExactSandbox {
    /// Binds `config.addr` (loopback only) and serves in a tokio task.
    pub async fn start(config: ExactConfig) -> Result<Self, ExactError> {
        if !crate::net::is_loopback_addr(&config.addr) {
            return Err(ExactError::NotLoopback(config.addr));
        }
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return Err(ExactError::InvalidConfig(
                "client_id and client_secret must not be empty",
            ));
        }
        if config.divisions.is_empty() {
            return Err(ExactError::InvalidConfig("at least one division is needed"));
        }
        if config.page_size == 0 || config.sync_page_size == 0 {
            return Err(ExactError::InvalidConfig(
                "page sizes must be greater than zero",
            ));
        }
        let bind = |source| ExactError::Bind {
            addr: config.addr,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let control = config
            .control
            .clone()
            .unwrap_or_else(|| Control::new(config.clock.clone()));
        let shared = Arc::new(Shared::new(
            config,
            control.clone(),
            format!("http://{addr}"),
        ));
        let api = Router::new()
            .route("/api/v1/{*rest}", any(api::api_v1))
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                gate::gate,
            ))
            .route("/api/oauth2/auth", get(oauth_routes::authorize))
            .route("/api/oauth2/token", post(oauth_routes::token))
            .fallback(|| async { ApiError::not_found() })
            .with_state(shared.clone());
        let app = instrument(api, &control, fault_response).merge(switches::router(shared.clone()));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(%error, "Exact emulator stopped with an error.");
            }
        });
        tracing::info!(%addr, "Exact emulator listening.");
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

    /// The `https://start.exactonline.nl` equivalent, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The control layer: faults, outage, request log, counters (creates per record key).
    pub fn control(&self) -> &Control {
        &self.shared.control
    }

    /// The sandbox clock (advance or scale it to run token and rate windows fast).
    pub fn clock(&self) -> &Clock {
        self.shared.control.clock()
    }

    /// The user's current division (the first configured).
    pub fn current_division(&self) -> i32 {
        self.shared.current_division()
    }

    /// A fresh authorization code, as if the user had just consented.
    pub fn issue_authorization_code(&self) -> String {
        self.shared.issue_code()
    }

    /// A fresh authorization exchanged in-process: a token pair for tests that are not
    /// about OAuth.
    pub fn issue_tokens(&self) -> TokenPair {
        let code = self.shared.issue_code();
        let (now, rules) = (self.shared.now_ms(), self.shared.rules());
        let redirect = self.shared.config.redirect_uri.clone();
        let grant = self
            .shared
            .lock()
            .tokens
            .exchange_code(&code, &redirect, now, &rules);
        match grant {
            Ok(g) => TokenPair {
                access_token: g.access_token,
                refresh_token: g.refresh_token,
            },
            // A code issued a moment ago for the registered URI always exchanges.
            Err(_) => TokenPair {
                access_token: String::new(),
                refresh_token: String::new(),
            },
        }
    }

    /// Expires every access token now (the 570 s rule no longer blocks a refresh).
    pub fn expire_access_tokens(&self) {
        let (now, rules) = (self.shared.now_ms(), self.shared.rules());
        self.shared.lock().tokens.expire_access_tokens(now, &rules);
    }

    /// Revokes one refresh token; true when it was live.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        self.shared
            .lock()
            .tokens
            .revoke_refresh(Some(refresh_token))
            > 0
    }

    /// Revokes every live refresh token; returns how many.
    pub fn revoke_all_refresh_tokens(&self) -> usize {
        self.shared.lock().tokens.revoke_refresh(None)
    }

    /// Adds a schema switch.
    pub fn add_schema_change(&self, change: SchemaChange) {
        self.shared.lock().schema.push(change);
    }

    /// Removes every schema switch.
    pub fn clear_schema_changes(&self) {
        self.shared.lock().schema.clear();
    }

    /// Creates an account in the current division from an API-style body, or updates the
    /// one whose `"ID"` the body names. Not counted as an API create.
    pub fn upsert_account(&self, fields: Value) -> Result<Uuid, ExactError> {
        self.upsert(self.current_division(), Entity::Account, fields)
    }

    /// Creates or updates (by `"InvoiceID"`) a sales invoice in the current division.
    pub fn upsert_sales_invoice(&self, fields: Value) -> Result<Uuid, ExactError> {
        self.upsert(self.current_division(), Entity::SalesInvoice, fields)
    }

    /// Creates or updates a record in any division.
    pub fn upsert(&self, division: i32, entity: Entity, fields: Value) -> Result<Uuid, ExactError> {
        self.shared
            .upsert(division, entity, &fields)
            .map_err(|e| ExactError::Rejected {
                status: e.status.as_u16(),
                message: e.message,
            })
    }

    /// Deletes an account of the current division; false when there is none.
    pub fn delete_account(&self, id: Uuid) -> bool {
        self.shared
            .remove(self.current_division(), Entity::Account, id)
    }

    /// Deletes a sales invoice of the current division; false when there is none.
    pub fn delete_sales_invoice(&self, id: Uuid) -> bool {
        self.shared
            .remove(self.current_division(), Entity::SalesInvoice, id)
    }

    /// Adds `n` accounts to the current division with consecutive codes; returns their IDs.
    pub fn generate_accounts(&self, n: usize) -> Vec<Uuid> {
        self.shared.generate_accounts(self.current_division(), n)
    }

    /// An account of the current division as the REST API renders it, plus `Timestamp`.
    pub fn account(&self, id: Uuid) -> Option<Value> {
        self.shared
            .inspect(self.current_division(), Entity::Account, id)
    }

    /// Every account of the current division (as [`account`](Self::account) renders them).
    pub fn accounts(&self) -> Vec<Value> {
        self.shared
            .inspect_all(self.current_division(), Entity::Account)
    }

    /// A sales invoice of the current division, plus `Timestamp`.
    pub fn sales_invoice(&self, id: Uuid) -> Option<Value> {
        self.shared
            .inspect(self.current_division(), Entity::SalesInvoice, id)
    }

    /// Every sales invoice of the current division.
    pub fn sales_invoices(&self) -> Vec<Value> {
        self.shared
            .inspect_all(self.current_division(), Entity::SalesInvoice)
    }

    /// Every insert, update and delete so far, with its Timestamp, oldest first.
    pub fn change_log(&self) -> Vec<Change> {
        self.shared.lock().store.changes.clone()
    }

    /// Moves a division to a new database: its Timestamps restart lower, its deletion log
    /// empties and `DivisionMoveDate` is set. False for an unknown division.
    pub fn move_division(&self, division: i32) -> bool {
        let now = self.shared.now_local_ms();
        self.shared.lock().store.move_division(division, now)
    }

    /// How many 429s were served.
    pub fn throttled_count(&self) -> usize {
        self.shared.lock().throttled
    }

    /// Calls left (today, this minute) for the app in the current division.
    pub fn rate_limit_remaining(&self) -> (u32, u32) {
        let config = &self.shared.config;
        let now = self.shared.now_ms();
        let d = self.current_division();
        self.shared.lock().limits.remaining(
            &config.client_id,
            d,
            now,
            config.minutely_limit,
            config.daily_limit,
        )
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
            tracing::warn!(%error, "Exact emulator task ended abnormally.");
        }
    }
}

impl Drop for ExactSandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
