//! Poller: source APIs → `sb.raw.<connection>.<entity>`: Exact Online's sync API, Pipedrive's
//! v2 lists (a fallback poller, or reconciliation next to webhooks), Shopify reconciliation,
//! and any REST API configured under a generic connection's `poll`.
//!
//! Guarantee: at-least-once, never a skipped change. A page's events are acknowledged by
//! Kafka before its cursor is committed to `<prefix>.cursors`; a restart resumes from the
//! committed cursor. Two replicas never poll the same connection at once (see [`leases`]).
//! Polling is paced under the source's limits, and rotating refresh tokens are kept durably
//! (`<prefix>.tokens`) so a restart never loses the newest one.
//!
//! Each system's poll jobs live in its folder in `switchboard_connectors`
//! ([`switchboard_connectors::poll`]); this service lends them the cursor store, the
//! reconciliation ledger and the publisher, and runs them on its leases and schedule.

mod cursors;
pub mod leases;
mod ledger;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_connectors::poll::PollContext;
use switchboard_core::Config;
use switchboard_core::audit::AuditLog;
use switchboard_core::avro::AvroCodec;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::progress::Progress;
use switchboard_core::raw::RawPublisher;
use switchboard_core::telemetry::Health;
use switchboard_core::topics::Topics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cursors::Cursors;
use crate::leases::Leases;
use crate::ledger::KafkaLedger;
use crate::schedule::poll_loop;

/// A started poller.
pub struct Started {
    /// Completes when every poll loop has stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the poller until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Prepares topics, cursors and leases, then polls every connection that has a schedule.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let connections = switchboard_connectors::connections(&config)?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let codec = AvroCodec::new(&config.registry)?;
    // A failed send fails the cycle, which is retried from the committed cursor; a short
    // delivery timeout lets a stuck producer be replaced after 25 s (`raw::stuck_after`).
    let publisher = RawPublisher::new(&config, codec.clone(), Duration::from_secs(5))?;
    let cursors = Arc::new(Cursors::new(&config.kafka, publisher.producer().clone()));

    let mut specs = vec![
        cursors.topic_spec(),
        Leases::topic_spec(&config.kafka.topic_prefix),
    ];
    let raw_spec = |name: &str, entity: &str| {
        TopicSpec::new(
            topics.raw(name, entity),
            Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
        )
    };
    let dedupe_spec = TopicSpec::new(
        topics.ingest_dedupe(),
        Cleanup::CompactDelete(Duration::from_secs(config.ingest.dedupe_window_secs)),
    );
    let context = PollContext {
        publisher: publisher.clone(),
        cursors: cursors.clone(),
        ledger: Arc::new(KafkaLedger::new(
            publisher.clone(),
            config.kafka.clone(),
            &topics,
        )),
    };
    let mut jobs = Vec::new();
    for (name, connection) in &connections {
        let polled = connection.polled_entities();
        for entity in &polled {
            specs.push(raw_spec(name, entity));
        }
        if polled.iter().any(|entity| connection.reconciles(entity)) {
            specs.push(dedupe_spec.clone());
        }
        jobs.extend(connection.pollers(name, &context)?);
    }
    // Every API call a poll cycle makes is audited, as the sink's are.
    let audit = AuditLog::new(&config.kafka, &topics)?;
    specs.push(audit.topic_spec());
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs.dedup_by(|a, b| a.name == b.name);

    let (listener, _) = switchboard_core::telemetry::bind(config.poller.admin_listen)
        .await
        .with_context(|| format!("bind poller.admin_listen {}", config.poller.admin_listen))?;
    let health = Arc::new(Health::default());
    let admin = tokio::spawn(switchboard_core::telemetry::serve(
        listener,
        switchboard_core::telemetry::admin_router(health.clone()),
        shutdown.clone(),
    ));

    let task = tokio::spawn(async move {
        let result = async {
            if !switchboard_core::service::prepare(&config.kafka, &specs, &codec, &shutdown).await {
                return Ok(());
            }
            cursors.load(&config.kafka).await?;
            let healing = publisher
                .producer()
                .watch("ingest-poller", shutdown.clone());
            let stall_after = config.health.stall_after();
            let watched = |name: &str| {
                let progress = Progress::new(format!("poller.{name}"), stall_after);
                health.watch(progress.clone());
                progress
            };
            let (leases, membership) = Leases::join(&config.kafka, shutdown.clone())?;
            let mut loops = Vec::new();
            for job in jobs {
                let progress = watched(job.name());
                loops.push(tokio::spawn(poll_loop(
                    job,
                    leases.clone(),
                    audit.clone(),
                    progress,
                    shutdown.clone(),
                )));
            }
            health.set_ready(true);
            tracing::info!(connections = loops.len(), "poller ready");
            for l in loops {
                l.await?;
            }
            switchboard_core::kafka::close_consumer(membership.await?, "poller leases").await;
            if let Ok(Some(why)) = healing.await {
                anyhow::bail!(why);
            }
            anyhow::Ok(())
        }
        .await;
        health.set_ready(false);
        shutdown.cancel();
        publisher.flush(Duration::from_secs(10));
        audit.flush(Duration::from_secs(5)).await;
        admin.await??;
        switchboard_core::service::log_stopped("poller", &result);
        result
    });
    Ok(Started { task })
}
