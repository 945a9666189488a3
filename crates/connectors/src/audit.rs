//! The audit scope: who is calling a SaaS API, and where the record of each call goes.
//!
//! A service sets a [`Scope`] around work that calls APIs (the sink around each delivery
//! attempt); every call sent through [`crate::http::send`] inside it is handed to the
//! scope's sink as an [`ApiCall`]. Outside a scope (tests, tools) calls are not audited.
//!
//! Why a task-local and not a parameter: the calls happen deep inside each connector's
//! client (searches, creates, token refreshes), and threading a context through every one
//! of them would change every signature for a concern none of them has.

use std::future::Future;
use std::sync::Arc;

use switchboard_core::audit::{ApiCall, AuditLog};

/// Where audited calls go. Must not block: it runs on the caller's task.
pub type AuditSink = Arc<dyn Fn(ApiCall) + Send + Sync>;

/// The context of the calls made inside [`Scope::run`].
#[derive(Clone)]
pub struct Scope {
    /// The service making the calls: `sink`, `poller`, …
    pub service: String,
    /// The connection called.
    pub connection: String,
    /// The source record ID the calls are made for, if any.
    pub record_id: Option<String>,
    /// The canonical record ID, when the calls deliver one.
    pub canonical_id: Option<String>,
    /// Delivery attempt of the record, from 1.
    pub attempt: u32,
    /// Receives each call.
    pub sink: AuditSink,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("service", &self.service)
            .field("connection", &self.connection)
            .field("record_id", &self.record_id)
            .field("canonical_id", &self.canonical_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// What [`crate::http::send`] knows of one call; the scope adds who made it.
pub(crate) struct Call {
    pub at: i64,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

impl Scope {
    /// A scope whose calls go to `log`: `service` calling `connection`, for no record in
    /// particular (set the record fields for calls made for one).
    pub fn logging_to(log: &AuditLog, service: &str, connection: &str) -> Self {
        let log = log.clone();
        Self {
            service: service.to_owned(),
            connection: connection.to_owned(),
            record_id: None,
            canonical_id: None,
            attempt: 1,
            sink: Arc::new(move |call| log.write(&call)),
        }
    }

    /// Runs `work` with its API calls audited in this scope.
    pub async fn run<F: Future>(self, work: F) -> F::Output {
        SCOPE.scope(self, work).await
    }

    fn record(&self, call: Call) -> ApiCall {
        ApiCall {
            at: call.at,
            service: self.service.clone(),
            connection: self.connection.clone(),
            record_id: self.record_id.clone(),
            canonical_id: self.canonical_id.clone(),
            attempt: self.attempt,
            method: call.method,
            url: call.url,
            status: call.status,
            duration_ms: call.duration_ms,
            request_body: call.request_body,
            response_body: call.response_body,
            error: call.error,
        }
    }
}

/// Whether the current task is in a scope (so a call is worth describing).
pub(crate) fn active() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Hands `call` to the current scope's sink; without a scope it is dropped.
pub(crate) fn emit(call: Call) {
    let _ = SCOPE.try_with(|scope| (scope.sink)(scope.record(call)));
}
