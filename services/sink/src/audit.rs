//! What the sink writes for the console besides deliveries: every API call a target makes
//! (`<prefix>.audit`, through `core::audit::AuditLog`) and the outcome of each record at
//! each target (`<prefix>.deliveries`).
//!
//! Guarantees differ on purpose. API calls are best-effort: they go through a lingering
//! producer without waiting for Kafka, so a slow or absent broker never delays or fails a
//! delivery; what could not be written is counted (`switchboard_audit_dropped_total`).
//! Outcomes are durable before the record's offset is stored (the caller awaits the ack, as
//! for a DLQ write), because the console's view of partial failures is built from them.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_connectors::audit::Scope;
pub(crate) use switchboard_core::audit::AuditLog;
use switchboard_core::audit::{DeliveryOutcome, DeliveryState};
use switchboard_core::kafka::kafka_error;

use crate::upsert::Record;

/// The scope of one delivery attempt of `record` (or, without one, of calls that serve the
/// connection as a whole, such as a token refresh) at `connection`.
pub(crate) fn scope(
    log: &AuditLog,
    connection: &str,
    record: Option<&Record>,
    attempt: u32,
) -> Scope {
    Scope {
        record_id: record.and_then(|r| r.str("source_id")).map(str::to_owned),
        canonical_id: record.map(|r| r.id.clone()),
        attempt,
        ..Scope::logging_to(log, "sink", connection)
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
