//! What the sink writes for the console besides deliveries: every API call a target makes
//! (`<prefix>.audit`) and the outcome of each record at each target (`<prefix>.deliveries`).
//!
//! Guarantees differ on purpose. API calls are best-effort: they go through a lingering
//! producer without waiting for Kafka, so a slow or absent broker never delays or fails a
//! delivery; what could not be written is counted (`switchboard_audit_dropped_total`).
//! Outcomes are durable before the record's offset is stored (the caller awaits the ack, as
//! for a DLQ write), because the console's view of partial failures is built from them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use switchboard_connectors::audit::Scope;
use switchboard_core::audit::{ApiCall, DeliveryOutcome, DeliveryState};
use switchboard_core::config::KafkaConfig;
use switchboard_core::kafka::{self, kafka_error};
use switchboard_core::topics::Topics;

use crate::targets::Record;

/// Writes API calls to `<prefix>.audit`; cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditLog {
    producer: FutureProducer,
    topic: Arc<str>,
}

impl AuditLog {
    pub(crate) fn new(config: &KafkaConfig, topics: &Topics) -> anyhow::Result<Self> {
        // Like `kafka::producer`, with a small queue: while the broker is away, calls go on
        // and their records would otherwise pile up in memory (librdkafka allows 1 GiB);
        // past the bound they are dropped and counted instead.
        let producer = kafka::idempotent(config, Duration::from_secs(30), 20)
            .set("queue.buffering.max.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .create()?;
        Ok(Self {
            producer,
            topic: topics.audit().into(),
        })
    }

    /// The scope of one delivery attempt of `record` (or, without one, of calls that serve
    /// the connection as a whole, such as a token refresh) at `connection`.
    pub(crate) fn scope(&self, connection: &str, record: Option<&Record>, attempt: u32) -> Scope {
        let log = self.clone();
        let label = connection.to_owned();
        Scope {
            service: "sink".to_owned(),
            connection: connection.to_owned(),
            record_id: record.and_then(|r| r.str("source_id")).map(str::to_owned),
            canonical_id: record.map(|r| r.id.clone()),
            attempt,
            sink: Arc::new(move |call| log.write(&label, &call)),
        }
    }

    /// Queues `call` without waiting; a refusal now or a failure later is counted.
    fn write(&self, connection: &str, call: &ApiCall) {
        let dropped = || {
            metrics::counter!("switchboard_audit_dropped_total", "connection" => connection.to_owned())
                .increment(1);
        };
        let Ok(json) = serde_json::to_vec(call) else {
            return dropped();
        };
        let key = call.record_id.as_deref().unwrap_or(&call.connection);
        let record = FutureRecord::to(&self.topic).key(key).payload(&json);
        match self.producer.send_result(record) {
            Ok(ack) => {
                let connection = connection.to_owned();
                tokio::spawn(async move {
                    if !matches!(ack.await, Ok(Ok(_))) {
                        metrics::counter!("switchboard_audit_dropped_total", "connection" => connection)
                            .increment(1);
                    }
                });
            }
            Err((e, _)) => {
                tracing::debug!(connection, error = %e, "audit record dropped");
                dropped();
            }
        }
    }

    /// Sends what is still queued, for at most `wait` (at shutdown).
    pub(crate) async fn flush(&self, wait: Duration) {
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(wait))).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "audit records not flushed at shutdown");
        }
    }
}

/// The outcome of `record` (canonical entity `entity`) at `connection`, as of now.
pub(crate) fn outcome(
    connection: &str,
    entity: &str,
    record: &Record,
    state: DeliveryState,
    native_id: Option<String>,
    reason: Option<String>,
) -> DeliveryOutcome {
    DeliveryOutcome {
        at: switchboard_connectors::http::now_millis(),
        canonical_id: record.id.clone(),
        entity: entity.to_owned(),
        record_id: record.str("source_id").map(str::to_owned),
        connection: connection.to_owned(),
        state,
        native_id,
        reason,
        source_at: record
            .fields
            .get("source_updated_at")
            .and_then(serde_json::Value::as_i64),
    }
}

/// Writes `outcome` to `topic` (`<prefix>.deliveries`) and waits for Kafka's ack.
pub(crate) async fn publish(
    producer: &FutureProducer,
    topic: &str,
    outcome: &DeliveryOutcome,
) -> anyhow::Result<()> {
    let json = serde_json::to_vec(outcome)?;
    let key = outcome.key();
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&json),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| kafka_error(&format!("write to {topic}"), &e))?;
    Ok(())
}
