//! The feed of [`Rates`]: an assigned consumer on `sb.deliveries`, started at the offsets
//! of an hour ago.
//!
//! Guarantee: it only reads. No topic is created (a missing topic is waited for, quietly,
//! every few seconds) and no offset is committed; a restarted console reads the hour again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::audit::DeliveryOutcome;
use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{client_config, kafka_error};
use switchboard_core::topics::Topics;
use tokio_util::sync::CancellationToken;

use super::{LONG_MS, Rates};

/// Wait between attempts to start reading (topic missing, broker away).
const RETRY: Duration = Duration::from_secs(5);

/// Reads `sb.deliveries` from an hour back into `rates` until `shutdown`. Waits quietly
/// while the topic does not exist yet (no sink ran) and starts over after a read error.
pub async fn feed(kafka: KafkaConfig, rates: Arc<Mutex<Rates>>, shutdown: CancellationToken) {
    let topic = Topics::new(&kafka.topic_prefix).deliveries();
    loop {
        let (k, t) = (kafka.clone(), topic.clone());
        match tokio::task::spawn_blocking(move || assigned(&k, &t)).await {
            Ok(Ok(Some(consumer))) => {
                tracing::info!(topic = %topic, "delivery outcomes read for the rates");
                read(&consumer, &rates, &shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
            }
            Ok(Ok(None)) => tracing::debug!(topic = %topic, "no delivery outcomes yet"),
            Ok(Err(e)) => tracing::debug!(topic = %topic, error = %e, "delivery outcomes not read"),
            Err(e) => tracing::warn!(error = %e, "rates task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Reads until `shutdown` or a fatal consumer error.
async fn read(consumer: &StreamConsumer, rates: &Mutex<Rates>, shutdown: &CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        match message {
            Ok(m) => {
                let Some(o) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<DeliveryOutcome>(p).ok())
                else {
                    continue;
                };
                if let Ok(mut rates) = rates.lock() {
                    rates.observe(&o, crate::now());
                }
            }
            Err(e) if consumer.client().fatal_error().is_some() => {
                tracing::warn!(error = %e, "delivery outcomes consumer failed");
                return;
            }
            // librdkafka reconnects by itself; the next recv resumes.
            Err(e) => tracing::debug!(error = %e, "delivery outcomes read error"),
        }
    }
}

/// A consumer assigned to every partition of `topic` at the offsets of an hour ago, or
/// `None` when the topic does not exist. Blocking.
///
/// Why assign, not subscribe: the console is a reader beside the sink, not a member of any
/// group; every console instance must see every outcome, and nothing is committed.
fn assigned(kafka: &KafkaConfig, topic: &str) -> Result<Option<StreamConsumer>, ClassifiedError> {
    let consumer: StreamConsumer = client_config(kafka)
        .set("group.id", "switchboard.ops.reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| kafka_error("rates consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| kafka_error("metadata", &e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(None);
    }
    let since = crate::now() - LONG_MS;
    let mut times = TopicPartitionList::new();
    for p in &partitions {
        times
            .add_partition_offset(topic, *p, Offset::Offset(since))
            .map_err(|e| kafka_error("offsets", &e))?;
    }
    // A partition with nothing newer than `since` comes back as `End`: read what comes.
    let start = consumer
        .offsets_for_times(times, Duration::from_secs(10))
        .map_err(|e| kafka_error("offsets for times", &e))?;
    consumer
        .assign(&start)
        .map_err(|e| kafka_error("assign", &e))?;
    Ok(Some(consumer))
}
