//! Switchboard's console: an HTML dashboard (one row per connection), a page per
//! connection, the DLQ with redrive and discard behind a confirmation, the record trace,
//! a JSON API under `/api/v1`, consumer-lag gauges on `/metrics`, and alerts from
//! `sb.alerts` to Telegram.
//!
//! Guarantee: the console only reads Kafka, except for the admin actions (redrive, discard,
//! replay), which need the admin token (see [`auth`]); no configured secret is ever written
//! into a page, an API answer or a log line. The overview is gathered every few seconds in
//! the background, so a page never waits for Kafka.

pub mod alerts;
pub mod auth;
pub mod html;
pub mod overview;
mod routes;
pub mod trace;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_core::avro::AvroCodec;
use switchboard_core::telemetry::{self, Health};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::overview::Overview;

/// How often the overview is gathered.
const REFRESH: Duration = Duration::from_secs(5);
/// Points kept per sparkline (an hour at the refresh interval).
const HISTORY: usize = 720;

/// What the request handlers share.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) codec: AvroCodec,
    pub(crate) overview: RwLock<Overview>,
    pub(crate) history: Mutex<HashMap<String, VecDeque<f64>>>,
}

/// A started console.
pub struct Started {
    /// The address it listens on (the configured port, or the one picked for port 0).
    pub addr: SocketAddr,
    /// Completes when the console stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the console until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Starts the console: HTTP server, overview refresher and alert forwarder. Returns once
/// it listens and the alert consumer has joined its group.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let codec = AvroCodec::new(&config.registry)?;
    let listen = config.console.listen;
    let (listener, addr) = telemetry::bind(listen)
        .await
        .with_context(|| format!("bind console.listen {listen}"))?;
    let health = Arc::new(Health::default());
    let state = Arc::new(AppState {
        config: config.clone(),
        codec,
        overview: RwLock::new(Overview::default()),
        history: Mutex::new(HashMap::new()),
    });
    let router = routes::router(state.clone()).merge(telemetry::admin_router(health.clone()));
    let server = tokio::spawn(telemetry::serve(listener, router, shutdown.clone()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let alerts = tokio::spawn(alerts::forward(
        config.clone(),
        config.console.clone(),
        ready_tx,
        shutdown.clone(),
    ));
    let refresher = tokio::spawn(refresh(state, health.clone(), shutdown.clone()));
    // Alerts written after start() returns must reach the chat.
    let _ = tokio::time::timeout(Duration::from_secs(30), ready_rx).await;
    tracing::info!(%addr, "console listening");
    let task = tokio::spawn(async move {
        let alerts = alerts.await?;
        if let Err(e) = &alerts {
            tracing::error!(error = %e, "alert forwarding stopped");
        }
        refresher.await?;
        server.await??;
        health.set_ready(false);
        alerts.map_err(anyhow::Error::from)
    });
    Ok(Started { addr, task })
}

async fn refresh(state: Arc<AppState>, health: Arc<Health>, shutdown: CancellationToken) {
    loop {
        let config = state.config.clone();
        match tokio::task::spawn_blocking(move || overview::collect(&config)).await {
            Ok(Ok(o)) => {
                if let Ok(mut history) = state.history.lock() {
                    for c in &o.connections {
                        let points = history.entry(c.name.clone()).or_default();
                        points.push_back(c.lag as f64);
                        if points.len() > HISTORY {
                            points.pop_front();
                        }
                    }
                }
                if let Ok(mut current) = state.overview.write() {
                    *current = o;
                }
                health.set_ready(true);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "overview not gathered"),
            Err(e) => tracing::warn!(error = %e, "overview task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now() -> i64 {
    switchboard_core::lag::now_millis()
}

/// `at` (epoch ms) as RFC 3339, or `-`.
pub(crate) fn rfc3339(at: Option<i64>) -> String {
    at.and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
}
