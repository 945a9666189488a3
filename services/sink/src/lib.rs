//! Sink: `sb.canonical.<entity>` → target APIs, one consumer group per target connection
//! (`sb.sink.<connection>`).
//!
//! Guarantee: at-least-once delivery made effectively-once by check-before-create. An offset
//! is stored only after the target acknowledged the record, or after the record was durably
//! handed to `sb.dlq.<connection>`; a crash therefore redelivers, and the redelivery finds
//! the record already at the target (search by natural key) and updates it instead of
//! creating it again.
//!
//! Routes by error class: `rate_limit` waits as the target says and is not a failure;
//! `transient` retries in place with exponential backoff and jitter, then through the retry
//! tiers; `auth` refreshes once, then pauses the connection; `data` and `conflict` go to the
//! DLQ at once with the target's (redacted) answer. A key with a record off the normal path
//! is blocked: its later records wait behind it, in order.
//!
//! Each connection delivers up to `sink.concurrency` records at once, of different keys;
//! one key's records go one at a time, in order (`dispatch.rs`). A connection's loop that
//! fails is rebuilt and resumes at its last commit (`supervise.rs`); `/readyz` fails while
//! canonical records wait and none was done for `health.stall_after_secs`.

mod audit;
mod blocked;
mod circuit;
mod claims;
mod credentials;
mod deliver;
mod dispatch;
mod handoff;
mod offsets;
mod rebalance;
mod routes;
mod status;
mod supervise;
mod upsert;
mod xref;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::membership::Assigned;
use switchboard_core::progress::Progress;
use switchboard_core::telemetry::{self, Health};
use switchboard_core::topics::Topics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A started sink.
pub struct Started {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub admin: std::net::SocketAddr,
    /// Completes when every connection's loop has drained, committed and stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the sink until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Starts one delivery loop per target connection.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let connections = switchboard_connectors::connections(&config)?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let routes = routes::Routes::from_config(&config, &topics)?;
    let served: Vec<String> = if config.sink.connections.is_empty() {
        routes.target_connections()
    } else {
        config.sink.connections.clone()
    };

    let mut loops = Vec::new();
    let mut specs = Vec::new();
    for (i, name) in served.iter().enumerate() {
        let connection = connections.get(name).ok_or_else(|| {
            switchboard_core::config::ConfigError::invalid(
                format!("sink.connections[{i}]"),
                format!("connection `{name}` is not defined"),
            )
        })?;
        // Refused here, at start, if it cannot be a target.
        upsert::target(name, connection)?;
        let input_topics = routes.input_topics(name);
        specs.extend(input_topics.iter().map(|t| {
            TopicSpec::new(
                t.clone(),
                Cleanup::CompactDelete(Duration::from_secs(30 * 24 * 3600)),
            )
        }));
        specs.push(TopicSpec::new(topics.xref(), Cleanup::Compact));
        specs.push(TopicSpec::new(topics.sink_blocked(name), Cleanup::Compact));
        specs.push(TopicSpec::new(topics.status(), Cleanup::Compact));
        specs.push(TopicSpec::new(
            topics.alerts(),
            Cleanup::Delete(Duration::from_secs(30 * 24 * 3600)),
        ));
        for tier in 0..config.sink.retry_tiers_secs.len() {
            specs.push(TopicSpec::new(
                topics.retry(name, tier),
                Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
            ));
        }
        specs.push(TopicSpec::new(
            topics.dlq(name),
            Cleanup::Delete(Duration::from_secs(30 * 24 * 3600)),
        ));
        loops.push((name.clone(), connection.clone(), input_topics));
    }
    let audit = audit::AuditLog::new(&config.kafka, &topics)?;
    specs.push(audit.topic_spec());
    specs.push(TopicSpec::new(topics.deliveries(), Cleanup::Compact));
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs.dedup_by(|a, b| a.name == b.name);

    let (listener, admin_addr) = telemetry::bind(config.sink.admin_listen)
        .await
        .with_context(|| format!("bind sink.admin_listen {}", config.sink.admin_listen))?;
    let health = Arc::new(Health::default());
    let admin = tokio::spawn(telemetry::serve(
        listener,
        telemetry::admin_router(health.clone()),
        shutdown.clone(),
    ));
    let routes = Arc::new(routes);

    let task = tokio::spawn(async move {
        let result = async {
            let codec = switchboard_core::avro::AvroCodec::new(&config.registry)?;
            if !switchboard_core::service::prepare(&config.kafka, &specs, &codec, &shutdown).await {
                return Ok(());
            }
            let mut running = BTreeMap::new();
            let config = Arc::new(config);
            for (name, connection, input_topics) in loops {
                let progress = Progress::new(format!("sink.{name}"), config.health.stall_after());
                health.watch(progress.clone());
                let assigned = Assigned::default();
                let probe = switchboard_core::progress::watch_group(
                    config.kafka.clone(),
                    topics.sink_group(&name),
                    // Retry tiers hold records that are not due yet: they wait on purpose.
                    assigned.clone(),
                    input_topics.clone(),
                    progress.clone(),
                    shutdown.clone(),
                );
                let rejoin = switchboard_core::membership::watch_rejoin(
                    config.kafka.clone(),
                    topics.sink_group(&name),
                    assigned.clone(),
                    shutdown.clone(),
                );
                let delivery_loop = supervise::Loop {
                    config: config.clone(),
                    topics: topics.clone(),
                    name: name.clone(),
                    connection,
                    routes: routes.clone(),
                    codec: codec.clone(),
                    audit: audit.clone(),
                    input_topics,
                    progress,
                    assigned,
                };
                // Settings that cannot build a loop stop the sink here, at start.
                let first = delivery_loop.build()?;
                let token = shutdown.clone();
                running.insert(
                    name,
                    (
                        tokio::spawn(delivery_loop.run(first, token)),
                        [probe, rejoin],
                    ),
                );
            }
            health.set_ready(true);
            tracing::info!(connections = ?running.keys().collect::<Vec<_>>(), "sink ready");
            let mut first_error = None;
            for (name, (handle, probes)) in running {
                if let Err(e) = handle.await {
                    tracing::error!(connection = %name, error = %e, "delivery loop failed");
                    shutdown.cancel();
                    first_error.get_or_insert(anyhow::Error::from(e));
                }
                probes.iter().for_each(JoinHandle::abort);
            }
            audit.flush(Duration::from_secs(5)).await;
            first_error.map_or(Ok(()), Err)
        }
        .await;
        health.set_ready(false);
        shutdown.cancel();
        admin.await??;
        switchboard_core::service::log_stopped("sink", &result);
        result
    });
    Ok(Started {
        admin: admin_addr,
        task,
    })
}
