//! Logs, metrics and health, the same for every service.
//!
//! - Logs: JSON lines through `tracing`, level from `RUST_LOG` (default `info`).
//! - Metrics: Prometheus text at `/metrics`, names `switchboard_<noun>_<unit>`.
//! - Health: `/healthz` answers while the process lives; `/readyz` answers 200 only after
//!   the service finished starting (Kafka and registry reached, config valid), before it
//!   starts draining (so a load balancer stops sending first), and while none of its stages
//!   is stalled (`crate::progress`); a 503 names the reason.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Starts JSON logging. Safe to call more than once (tests start several services).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .try_init();
}

/// The process-wide Prometheus recorder. `metrics` has one global recorder by design, so
/// in-process tests running several services share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); then this
            // handle renders nothing, which only affects that harness.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Readiness of one service: started and not draining, and none of its stages stalled
/// ([`crate::progress`]).
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    stages: std::sync::Mutex<Vec<std::sync::Arc<crate::progress::Progress>>>,
}

impl Health {
    /// Marks the service ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Adds a stage whose stall makes the service not ready.
    pub fn watch(&self, stage: std::sync::Arc<crate::progress::Progress>) {
        if let Ok(mut stages) = self.stages.lock() {
            stages.push(stage);
        }
    }

    /// Why `/readyz` fails, or `None` when it answers 200.
    pub fn not_ready(&self) -> Option<String> {
        if !self.ready.load(Ordering::SeqCst) {
            return Some("not ready".to_owned());
        }
        let stages = self.stages.lock().ok()?;
        let reasons: Vec<String> = stages.iter().filter_map(|s| s.stalled()).collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn admin_router(health: std::sync::Arc<Health>) -> Router {
    let metrics = metrics_handle();
    Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                match health.not_ready() {
                    None => (StatusCode::OK, "ready".to_owned()),
                    Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                }
            }),
        )
}

/// Binds `addr`, returning the listener and the address actually bound (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
