//! Switchboard's console: an HTML dashboard (one row per connection, with sparklines, and
//! the flow instances that need review), a page per connection, the DLQ with redrive and
//! discard behind a confirmation, the record trace (with the API calls from `sb.audit`), a
//! JSON API under `/api/v1`, consumer-lag gauges on `/metrics`, success rates and p95
//! latency per target from `sb.deliveries` ([`rates`]), its own alert rules
//! ([`rules`]) and alerts from `sb.alerts` to Telegram.
//!
//! Guarantee: the console only reads Kafka, except for the admin actions (redrive, discard,
//! replay), which need the admin token (see [`auth`]), and the alerts its rules raise, which
//! it writes to `sb.alerts`; no configured secret is ever written into a page, an API
//! answer or a log line. The overview is gathered every few seconds in the background, so a
//! page never waits for Kafka.

pub mod alerts;
pub mod auth;
pub mod charts;
pub mod html;
pub mod overview;
pub mod partial;
pub mod rates;
mod routes;
pub mod rules;
pub mod trace;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_core::Config;
use switchboard_core::avro::AvroCodec;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::telemetry::{self, Health};
use switchboard_core::topics::Topics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::charts::Charts;
use crate::overview::{Alert, Overview};
use crate::partial::PartialFailure;
use crate::rates::Rates;
use crate::rules::Rules;

/// How often the overview is gathered and the rules evaluated.
const REFRESH: Duration = Duration::from_secs(5);

/// What the request handlers share.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) codec: AvroCodec,
    pub(crate) overview: RwLock<Overview>,
    pub(crate) charts: Mutex<Charts>,
    /// Flow instances that need review; `None` until `sb.deliveries` could be read.
    pub(crate) partial: RwLock<Option<Vec<PartialFailure>>>,
    /// Success rates and latency per target, fed from `sb.deliveries` by [`rates::feed`].
    pub(crate) rates: Arc<Mutex<Rates>>,
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

/// Starts the console: HTTP server, overview refresher, rates feed and alert forwarder.
/// Returns once it listens and the alert consumer has joined its group.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let codec = AvroCodec::new(&config.registry)?;
    let listen = config.console.listen;
    let (listener, addr) = telemetry::bind(listen)
        .await
        .with_context(|| format!("bind console.listen {listen}"))?;
    // The rules write to it and the forwarder reads it, whether or not a sink ran yet. Not
    // fatal: on a cluster where the console may not create topics it usually exists already.
    let topics = Topics::new(&config.kafka.topic_prefix);
    if let Err(e) = switchboard_core::kafka::ensure_topics(
        &config.kafka,
        &[TopicSpec::new(
            topics.alerts(),
            Cleanup::Delete(Duration::from_secs(30 * 24 * 3600)),
        )],
    )
    .await
    {
        tracing::warn!(error = %e, "alerts topic not ensured");
    }
    let producer = switchboard_core::kafka::eager_producer(&config.kafka, Duration::from_secs(30))
        .context("alerts producer")?;
    let health = Arc::new(Health::default());
    let state = Arc::new(AppState {
        config: config.clone(),
        codec,
        overview: RwLock::new(Overview::default()),
        charts: Mutex::new(Charts::default()),
        partial: RwLock::new(None),
        rates: Arc::new(Mutex::new(Rates::default())),
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
    let rates = tokio::spawn(rates::feed(
        config.kafka.clone(),
        state.rates.clone(),
        shutdown.clone(),
    ));
    let rules = Rules::new(&config);
    let refresher = tokio::spawn(refresh(
        state,
        rules,
        producer,
        health.clone(),
        shutdown.clone(),
    ));
    // Alerts written after start() returns must reach the chat.
    let _ = tokio::time::timeout(Duration::from_secs(30), ready_rx).await;
    tracing::info!(%addr, "console listening");
    let task = tokio::spawn(async move {
        let alerts = alerts.await?;
        if let Err(e) = &alerts {
            tracing::error!(error = %e, "alert forwarding stopped");
        }
        refresher.await?;
        rates.await?;
        server.await??;
        health.set_ready(false);
        alerts.map_err(anyhow::Error::from)
    });
    Ok(Started { addr, task })
}

/// Every [`REFRESH`]: gathers the overview, samples it for the charts, evaluates the rules
/// and writes their transitions, and reads the partial failures.
async fn refresh(
    state: Arc<AppState>,
    mut rules: Rules,
    producer: FutureProducer,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let alerts_topic = Topics::new(&state.config.kafka.topic_prefix).alerts();
    loop {
        let config = state.config.clone();
        match tokio::task::spawn_blocking(move || overview::collect(&config)).await {
            Ok(Ok(mut o)) => {
                if let Ok(mut rates) = state.rates.lock() {
                    rates::fill(&mut o, &mut rates);
                }
                if let Ok(mut charts) = state.charts.lock() {
                    charts.observe(&o);
                }
                rules.mark_stalled(&mut o.connections, o.at);
                for alert in rules.transitions(&o.connections, o.at) {
                    match write_alert(&producer, &alerts_topic, &alert).await {
                        Ok(()) => {
                            tracing::info!(connection = %alert.connection, kind = %alert.kind, status = %alert.status, "rule alert written");
                            rules.made(&alert);
                        }
                        Err(e) => {
                            tracing::warn!(connection = %alert.connection, kind = %alert.kind, error = %e, "rule alert not written");
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
        // Apart from the overview: a failure of one must not hide the other.
        let kafka = state.config.kafka.clone();
        match tokio::task::spawn_blocking(move || partial::collect(&kafka)).await {
            Ok(Ok(p)) => {
                if let Ok(mut current) = state.partial.write() {
                    *current = Some(p);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "partial failures not read"),
            Err(e) => tracing::warn!(error = %e, "partial failures task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Writes `alert` to `sb.alerts`, keyed by its connection like the sink's alerts.
async fn write_alert(
    producer: &FutureProducer,
    topic: &str,
    alert: &Alert,
) -> Result<(), switchboard_core::error::ClassifiedError> {
    let payload = serde_json::to_string(alert).map_err(|e| {
        switchboard_core::error::ClassifiedError::new(
            switchboard_core::ErrorClass::Data,
            e.to_string(),
        )
    })?;
    producer
        .send(
            FutureRecord::to(topic)
                .key(&alert.connection)
                .payload(&payload),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| switchboard_core::kafka::kafka_error("alert write", &e))
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
