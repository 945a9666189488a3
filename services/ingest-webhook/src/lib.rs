//! Webhook ingest: `POST /webhooks/<connection>` → `sb.raw.<connection>.<entity>`.
//!
//! Guarantee: a delivery is answered 2xx only after Kafka acknowledged the record
//! (idempotent producer, `acks=all`); if Kafka does not acknowledge within
//! `ingest.ack_timeout_ms` the answer is 503 with `Retry-After`, and the source retries. So a
//! webhook is never lost; a duplicate is possible and harmless downstream.
//!
//! Every refusal has one status and one metric reason: unknown connection 404, wrong content
//! type 415, body over `ingest.max_body_bytes` 413, bad signature 401, malformed 400.

mod dedupe;
mod publish;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use switchboard_connectors::Connection;
use switchboard_connectors::webhook::WebhookError;
use switchboard_core::telemetry::{self, Health};
use switchboard_core::{Config, ErrorClass};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::publish::{Published, Publisher};

/// A started ingest service.
pub struct Started {
    /// Address the webhook server listens on.
    pub addr: SocketAddr,
    /// Completes when the service has drained and stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Binds, prepares topics and starts serving; returns once the service is ready.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let connections = switchboard_connectors::connections(&config)?;
    let publisher = Publisher::new(&config, &connections)?;
    let (listener, addr) = telemetry::bind(config.ingest.listen)
        .await
        .with_context(|| format!("bind ingest.listen {}", config.ingest.listen))?;

    let health = Arc::new(Health::default());
    let app = Arc::new(App {
        connections,
        publisher,
    });
    let router = Router::new()
        .route("/webhooks/{connection}", post(receive))
        .layer(DefaultBodyLimit::max(config.ingest.max_body_bytes))
        .with_state(app.clone())
        .merge(telemetry::admin_router(health.clone()));

    let kafka = config.kafka.clone();
    // On shutdown readiness fails first, and the server keeps answering for `drain_ms` so
    // load balancers stop sending here before it stops accepting; then in-flight requests
    // finish (graceful shutdown) and the producer is flushed.
    let stop_serving = CancellationToken::new();
    tokio::spawn({
        let (shutdown, stop_serving, health) =
            (shutdown.clone(), stop_serving.clone(), health.clone());
        let drain = Duration::from_millis(config.ingest.drain_ms);
        async move {
            shutdown.cancelled().await;
            health.set_ready(false);
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "not ready; draining before the listener closes"
            );
            tokio::time::sleep(drain).await;
            stop_serving.cancel();
        }
    });
    let task = tokio::spawn(async move {
        let serve = tokio::spawn(telemetry::serve(listener, router, stop_serving));
        let healing = app
            .publisher
            .producer()
            .watch("ingest-webhook", shutdown.clone());
        let mut follower = None;
        if app.publisher.prepare(&shutdown).await {
            // Ready only once the dedupe state is loaded, so a restart still dedupes.
            let loaded = Arc::new(tokio::sync::Notify::new());
            let mut task = tokio::spawn(app.publisher.dedupe.clone().load_and_follow(
                kafka.clone(),
                loaded.clone(),
                shutdown.clone(),
            ));
            tokio::select! {
                _ = loaded.notified() => {
                    health.set_ready(true);
                    tracing::info!(%addr, "ingest-webhook ready");
                    follower = Some(task);
                }
                // The follower ended before loading: without its state ingest cannot
                // dedupe, so stop (and let the orchestrator restart) rather than hang unready.
                ended = &mut task => {
                    shutdown.cancel();
                    let error = match ended {
                        Ok(Ok(())) => anyhow::anyhow!("dedupe follower stopped before loading"),
                        Ok(Err(e)) => e,
                        Err(e) => e.into(),
                    };
                    tracing::error!(error = %error, "dedupe state could not be loaded");
                    serve.await??;
                    return Err(error);
                }
                _ = shutdown.cancelled() => follower = Some(task),
            }
        }
        shutdown.cancelled().await;
        health.set_ready(false);
        serve.await??;
        if let Some(follower) = follower {
            follower.await??;
        }
        // Requests still in flight were answered by the graceful shutdown above; flush
        // whatever the producer still holds before the process ends.
        app.publisher.flush(Duration::from_secs(10));
        if let Ok(Some(why)) = healing.await {
            tracing::error!(error = %why, "ingest-webhook stopped on an error");
            return Err(anyhow::anyhow!(why));
        }
        tracing::info!("ingest-webhook stopped");
        Ok(())
    });
    Ok(Started { addr, task })
}

struct App {
    connections: BTreeMap<String, Connection>,
    publisher: Publisher,
}

async fn receive(
    State(app): State<Arc<App>>,
    Path(connection_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(connection) = app.connections.get(&connection_name) else {
        // Not the path's name as a label: anyone could mint label values with it.
        return reject(
            "_unknown",
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "unknown connection",
        );
    };
    if !is_json(&headers) {
        return reject(
            &connection_name,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "expected Content-Type: application/json",
        );
    }
    metrics::counter!("switchboard_webhooks_received_total", "connection" => connection_name.clone()).increment(1);
    let now_secs = time::OffsetDateTime::now_utc().unix_timestamp();
    let received = match connection.receive_webhook(&headers, &body, now_secs) {
        Ok(received) => {
            metrics::counter!("switchboard_webhooks_verified_total", "connection" => connection_name.clone()).increment(1);
            received
        }
        Err(e) => {
            let status = match e {
                WebhookError::Unauthorized => StatusCode::UNAUTHORIZED,
                WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
                WebhookError::NotAccepted => StatusCode::NOT_FOUND,
            };
            return reject(&connection_name, status, e.reason(), &e.to_string());
        }
    };
    let started = std::time::Instant::now();
    let published = app
        .publisher
        .publish(&connection_name, connection, received, &body)
        .await;
    metrics::histogram!("switchboard_webhook_publish_seconds", "connection" => connection_name.clone())
        .record(started.elapsed().as_secs_f64());
    match published {
        Ok(Published::Accepted(event_id)) => {
            metrics::counter!("switchboard_webhooks_accepted_total", "connection" => connection_name.clone())
                .increment(1);
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": "accepted", "event_id": event_id})),
            )
                .into_response()
        }
        Ok(Published::Duplicate) => {
            metrics::counter!("switchboard_webhooks_duplicates_total", "connection" => connection_name.clone())
                .increment(1);
            tracing::debug!(connection = %connection_name, "duplicate delivery acknowledged, not republished");
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": "duplicate"})),
            )
                .into_response()
        }
        Err(e) if e.class == ErrorClass::Data => {
            tracing::error!(connection = %connection_name, error = %e, "webhook could not be encoded");
            reject(
                &connection_name,
                StatusCode::BAD_REQUEST,
                "encoding",
                &e.message,
            )
        }
        Err(e) => {
            tracing::warn!(connection = %connection_name, error = %e, "Kafka did not acknowledge; answering 503");
            let mut response = reject(
                &connection_name,
                StatusCode::SERVICE_UNAVAILABLE,
                "kafka_unavailable",
                "event store unavailable, retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            response
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn reject(connection: &str, status: StatusCode, reason: &'static str, message: &str) -> Response {
    metrics::counter!("switchboard_webhooks_rejected_total", "connection" => connection.to_owned(), "reason" => reason)
        .increment(1);
    tracing::info!(
        connection,
        status = status.as_u16(),
        reason,
        "webhook rejected"
    );
    (
        status,
        axum::Json(serde_json::json!({"error": message, "reason": reason})),
    )
        .into_response()
}
