//! What every emulator shares for tests and operators: fault injection, a log of received
//! requests with (virtual) timestamps, counters per endpoint and of creates per record, and
//! the `/_sandbox/` control API exposing all of it over HTTP. Each call has an in-process
//! twin on [`Control`], so a Rust test and a shell user drive the emulators the same way.
//!
//! Control API (every emulator mounts it next to its own API):
//! - `GET /_sandbox/requests`: the request log; `GET /_sandbox/counters`: the counters.
//! - `POST /_sandbox/faults` with a [`FaultRule`]; `DELETE /_sandbox/faults` clears them.
//! - `POST /_sandbox/outage` `{"seconds": 30}`: every API call answers 503 for that long.
//! - `GET|POST /_sandbox/clock` `{"advance_seconds": 3600, "scale": 60}`.
//! - `POST /_sandbox/reset`: clears faults, outage, log and counters.
//!
//! System-specific switches (token expiry, schema changes, duplicate webhooks) live with
//! each emulator under `/_sandbox/<system>/…`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Clock;

/// An injected fault for calls whose `"METHOD /path"` starts with `endpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// `"POST /api/v2/persons"`, `"/api/v2/persons"` (any method) or `"*"` (every call).
    pub endpoint: String,
    /// Share of matching calls that fail, 0.0 to 1.0.
    #[serde(default = "always")]
    pub error_rate: f64,
    /// Status of a failed call; 0 injects latency only.
    #[serde(default = "service_unavailable")]
    pub status: u16,
    /// Added latency of every matching call, in real milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Applies to this many matching calls, then disappears; none means until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

fn always() -> f64 {
    1.0
}

fn service_unavailable() -> u16 {
    503
}

impl FaultRule {
    /// The next `n` calls to `endpoint` fail with `status`.
    pub fn fail_next(endpoint: impl Into<String>, n: u32, status: StatusCode) -> Self {
        Self {
            endpoint: endpoint.into(),
            error_rate: 1.0,
            status: status.as_u16(),
            latency_ms: 0,
            count: Some(n),
        }
    }

    fn matches(&self, call: &str) -> bool {
        self.endpoint == "*"
            || call.starts_with(&self.endpoint)
            || call
                .split_once(' ')
                .is_some_and(|(_, path)| path.starts_with(&self.endpoint))
    }
}

/// One received request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// Virtual time it arrived, RFC 3339.
    pub at: String,
    /// HTTP method.
    pub method: String,
    /// Path and query (never headers or bodies, which may hold secrets).
    pub path: String,
    /// Status answered.
    pub status: u16,
}

/// Counters of what an emulator served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Every API call.
    pub requests: usize,
    /// Calls per `"METHOD /path"` (query left out).
    pub by_endpoint: BTreeMap<String, usize>,
    /// Calls per answered status.
    pub by_status: BTreeMap<u16, usize>,
    /// Records created, per record key (e.g. an e-mail): more than 1 is a duplicate.
    pub creates: BTreeMap<String, usize>,
    /// Most API calls being served at once (latency included): how much concurrency a
    /// client used.
    pub peak_in_flight: usize,
}

/// What the fault layer decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultDecision {
    /// Added latency.
    pub latency: Duration,
    /// Answer this instead of serving the call.
    pub status: Option<StatusCode>,
}

#[derive(Debug, Default)]
struct ControlState {
    rules: Vec<FaultRule>,
    outage_until: Option<OffsetDateTime>,
    log: Vec<LoggedRequest>,
    counters: Counters,
    in_flight: usize,
}

/// Faults, log and counters of one emulator; cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    clock: Clock,
    state: Arc<Mutex<ControlState>>,
}

/// Longest request log kept; older entries are dropped first.
const MAX_LOG: usize = 100_000;

impl Control {
    /// Control on `clock` (share the clock between emulators of one test).
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The emulator's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        self.state().rules.push(rule);
    }

    /// Removes every fault rule and ends an outage.
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.rules.clear();
        state.outage_until = None;
    }

    /// Every API call answers 503 for `d` of virtual time.
    pub fn outage(&self, d: Duration) {
        let until = self.clock.now() + d;
        self.state().outage_until = Some(until);
    }

    /// Clears faults, outage, log and counters.
    pub fn reset(&self) {
        *self.state() = ControlState::default();
    }

    /// Decides the fault for one call (`method` and `path` without query).
    pub fn decide(&self, method: &str, path: &str) -> FaultDecision {
        let call = format!("{method} {path}");
        let now = self.clock.now();
        let mut state = self.state();
        if state.outage_until.is_some_and(|until| now < until) {
            return FaultDecision {
                latency: Duration::ZERO,
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
            };
        }
        let mut decision = FaultDecision::default();
        let mut rng = rand::rng();
        for rule in state.rules.iter_mut().filter(|r| r.matches(&call)) {
            if rule.count == Some(0) {
                continue;
            }
            decision.latency += Duration::from_millis(rule.latency_ms);
            if decision.status.is_none()
                && rule.status != 0
                && rng.random_bool(rule.error_rate.clamp(0.0, 1.0))
            {
                decision.status = StatusCode::from_u16(rule.status).ok();
            }
            if let Some(n) = rule.count.as_mut() {
                *n -= 1;
            }
        }
        state.rules.retain(|r| r.count != Some(0));
        decision
    }

    /// Logs a served call.
    pub fn record_request(&self, method: &str, path_and_query: &str, status: StatusCode) {
        let at = self.clock.now().format(&Rfc3339).unwrap_or_default();
        let endpoint = format!(
            "{method} {}",
            path_and_query.split('?').next().unwrap_or_default()
        );
        let mut state = self.state();
        state.counters.requests += 1;
        *state.counters.by_endpoint.entry(endpoint).or_default() += 1;
        *state.counters.by_status.entry(status.as_u16()).or_default() += 1;
        if state.log.len() >= MAX_LOG {
            state.log.remove(0);
        }
        state.log.push(LoggedRequest {
            at,
            method: method.to_owned(),
            path: path_and_query.to_owned(),
            status: status.as_u16(),
        });
    }

    /// One API call starts being served; it ends when the guard is dropped.
    fn enter(&self) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.counters.peak_in_flight = state.counters.peak_in_flight.max(state.in_flight);
        InFlight(self.clone())
    }

    /// Counts a created record under `key`.
    pub fn count_create(&self, key: &str) {
        *self
            .state()
            .counters
            .creates
            .entry(key.to_owned())
            .or_default() += 1;
    }

    /// How many times a record with `key` was created.
    pub fn creates_for(&self, key: &str) -> usize {
        self.state().counters.creates.get(key).copied().unwrap_or(0)
    }

    /// The request log.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// A copy of the counters.
    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }

    /// The `/_sandbox/` control API.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/_sandbox/requests",
                get(|State(c): State<Control>| async move { Json(c.requests()) }),
            )
            .route(
                "/_sandbox/counters",
                get(|State(c): State<Control>| async move { Json(c.counters()) }),
            )
            .route(
                "/_sandbox/faults",
                post(
                    |State(c): State<Control>, Json(rule): Json<FaultRule>| async move {
                        c.add_fault(rule);
                        StatusCode::NO_CONTENT
                    },
                )
                .delete(|State(c): State<Control>| async move {
                    c.clear_faults();
                    StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/_sandbox/outage",
                post(
                    |State(c): State<Control>, Json(body): Json<Seconds>| async move {
                        c.outage(Duration::from_secs_f64(body.seconds.max(0.0)));
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .route("/_sandbox/clock", get(clock_status).post(clock_change))
            .route(
                "/_sandbox/reset",
                post(|State(c): State<Control>| async move {
                    c.reset();
                    StatusCode::NO_CONTENT
                }),
            )
            .with_state(self.clone())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seconds {
    seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    #[serde(default)]
    advance_seconds: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
}

async fn clock_status(State(c): State<Control>) -> Response {
    Json(serde_json::json!({
        "now": c.clock.now().format(&Rfc3339).unwrap_or_default(),
        "scale": c.clock.scale(),
    }))
    .into_response()
}

async fn clock_change(State(c): State<Control>, Json(change): Json<ClockChange>) -> Response {
    if let Some(scale) = change.scale {
        c.clock.set_scale(scale);
    }
    if let Some(secs) = change.advance_seconds.filter(|s| s.is_finite() && *s > 0.0) {
        c.clock.advance(Duration::from_secs_f64(secs));
    }
    clock_status(State(c)).await
}

/// A call being served (counted in `peak_in_flight`), also when its client goes away.
struct InFlight(Control);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

/// Renders an injected error status the way one system shapes its errors.
pub type ErrorBody = fn(StatusCode) -> Response;

/// Wraps an emulator's API: applies faults, then logs every call. `error_body` renders an
/// injected error the way that system shapes its errors. `/_sandbox/` calls pass untouched.
pub fn instrument(
    api: Router,
    control: &Control,
    error_body: fn(StatusCode) -> Response,
) -> Router {
    let layer_state = (control.clone(), error_body);
    api.layer(axum::middleware::from_fn_with_state(layer_state, apply))
        .merge(control.router())
}

async fn apply(
    State((control, error_body)): State<(Control, ErrorBody)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let _in_flight = control.enter();
    let decision = control.decide(&method, &path);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let response = match decision.status {
        Some(status) => error_body(status),
        None => next.run(request).await,
    };
    control.record_request(&method, &path_and_query, response.status());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_applies_n_times_then_disappears() {
        let control = Control::new(Clock::real());
        control.add_fault(FaultRule::fail_next(
            "POST /api",
            2,
            StatusCode::BAD_GATEWAY,
        ));
        assert_eq!(
            control.decide("POST", "/api/x").status,
            Some(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(control.decide("GET", "/api/x").status, None, "other method");
        assert_eq!(
            control.decide("POST", "/api/x").status,
            Some(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(control.decide("POST", "/api/x").status, None);
    }

    #[test]
    fn an_outage_ends_with_virtual_time() {
        let control = Control::new(Clock::real());
        control.outage(Duration::from_secs(60));
        assert_eq!(
            control.decide("GET", "/x").status,
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        control.clock().advance(Duration::from_secs(61));
        assert_eq!(control.decide("GET", "/x").status, None);
    }

    #[test]
    fn counters_count_endpoints_statuses_and_creates() {
        let control = Control::new(Clock::real());
        control.record_request("GET", "/a?x=1", StatusCode::OK);
        control.record_request("GET", "/a?x=2", StatusCode::TOO_MANY_REQUESTS);
        control.count_create("k");
        let c = control.counters();
        assert_eq!(c.requests, 2);
        assert_eq!(c.by_endpoint["GET /a"], 2);
        assert_eq!(c.by_status[&429], 1);
        assert_eq!(control.creates_for("k"), 1);
        assert_eq!(control.requests()[1].path, "/a?x=2");
    }

    #[test]
    fn peak_in_flight_counts_calls_served_at_once() {
        let control = Control::new(Clock::real());
        let first = control.enter();
        let second = control.enter();
        drop(first);
        let _third = control.enter();
        drop(second);
        assert_eq!(control.counters().peak_in_flight, 2);
    }
}
