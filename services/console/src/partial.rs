//! Partial failures: flow instances (one canonical record routed to several targets) that
//! reached some targets and are dead-lettered at another, read from the compacted
//! `sb.deliveries` topic the sink writes.
//!
//! Guarantee: an instance is listed while at least one of its targets is `dead_lettered`
//! in the latest outcome per target, and no longer once each of those was delivered again
//! (after a redrive) or discarded. Read from the topic at each refresh, never cached
//! across refreshes. Blocking: run [`collect`] from `spawn_blocking`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use switchboard_core::audit::{DeliveryOutcome, DeliveryState};
use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::read_table;
use switchboard_core::topics::Topics;

/// One flow instance that needs review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartialFailure {
    /// The canonical record ID.
    pub canonical_id: String,
    /// The canonical entity.
    pub entity: String,
    /// The source record ID, if known (for the trace).
    pub record_id: Option<String>,
    /// Latest outcome time over its targets, epoch ms.
    pub at: i64,
    /// Targets that have it, with their native IDs.
    pub delivered: Vec<DeliveryOutcome>,
    /// Targets where it is dead-lettered, with the reason.
    pub failed: Vec<DeliveryOutcome>,
    /// Targets where it is still retrying or was discarded.
    pub other: Vec<DeliveryOutcome>,
}

/// Groups outcomes by canonical ID and keeps the instances with a dead-lettered target,
/// newest first. Targets are in connection order.
pub fn group(outcomes: impl IntoIterator<Item = DeliveryOutcome>) -> Vec<PartialFailure> {
    let mut by_id: BTreeMap<String, Vec<DeliveryOutcome>> = BTreeMap::new();
    for o in outcomes {
        by_id.entry(o.canonical_id.clone()).or_default().push(o);
    }
    let mut out: Vec<PartialFailure> = by_id
        .into_iter()
        .filter(|(_, targets)| {
            targets
                .iter()
                .any(|t| t.state == DeliveryState::DeadLettered)
        })
        .map(|(canonical_id, mut targets)| {
            targets.sort_by(|a, b| a.connection.cmp(&b.connection));
            let first = &targets[0];
            let mut p = PartialFailure {
                canonical_id,
                entity: first.entity.clone(),
                record_id: targets.iter().find_map(|t| t.record_id.clone()),
                at: targets.iter().map(|t| t.at).max().unwrap_or(0),
                delivered: Vec::new(),
                failed: Vec::new(),
                other: Vec::new(),
            };
            for t in targets {
                match t.state {
                    DeliveryState::Delivered => p.delivered.push(t),
                    DeliveryState::DeadLettered => p.failed.push(t),
                    DeliveryState::Retrying | DeliveryState::Discarded => p.other.push(t),
                }
            }
            p
        })
        .collect();
    out.sort_by(|a, b| b.at.cmp(&a.at).then(a.canonical_id.cmp(&b.canonical_id)));
    out
}

/// Reads `sb.deliveries` and groups it. Records that are not outcomes are skipped.
pub fn collect(kafka: &KafkaConfig) -> Result<Vec<PartialFailure>, ClassifiedError> {
    let topic = Topics::new(&kafka.topic_prefix).deliveries();
    let table = read_table(kafka, &topic, Duration::from_secs(30))?;
    Ok(group(table.values().filter_map(|v| {
        serde_json::from_slice::<DeliveryOutcome>(v).ok()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, connection: &str, state: DeliveryState, at: i64) -> DeliveryOutcome {
        DeliveryOutcome {
            at,
            canonical_id: id.into(),
            entity: "order".into(),
            record_id: Some(format!("src-{id}")),
            connection: connection.into(),
            state,
            native_id: (state == DeliveryState::Delivered).then(|| format!("{connection}-1")),
            reason: (state == DeliveryState::DeadLettered).then(|| "data: bad vat".to_owned()),
            source_at: None,
        }
    }

    #[test]
    fn an_instance_with_a_dead_lettered_target_needs_review_until_redelivered() {
        use DeliveryState::*;
        let mut outcomes = vec![
            outcome("a", "shop", Delivered, 1),
            outcome("a", "exact", DeadLettered, 2),
            outcome("a", "crm", Delivered, 1),
            outcome("b", "crm", Delivered, 5),
            outcome("b", "exact", Retrying, 5),
            outcome("c", "exact", DeadLettered, 9),
            outcome("c", "crm", Discarded, 9),
        ];
        let review = group(outcomes.clone());
        let ids: Vec<&str> = review.iter().map(|p| p.canonical_id.as_str()).collect();
        assert_eq!(ids, ["c", "a"], "newest first; b only retries");
        let a = &review[1];
        let delivered: Vec<(&str, Option<&str>)> = a
            .delivered
            .iter()
            .map(|t| (t.connection.as_str(), t.native_id.as_deref()))
            .collect();
        assert_eq!(
            delivered,
            [("crm", Some("crm-1")), ("shop", Some("shop-1"))]
        );
        assert_eq!(a.failed.len(), 1);
        assert_eq!(a.failed[0].reason.as_deref(), Some("data: bad vat"));
        assert_eq!(a.record_id.as_deref(), Some("src-a"));
        assert_eq!(review[0].other[0].state, Discarded);

        // The redrive delivered `a` at exact: the compacted topic keeps the newest outcome.
        outcomes[1] = outcome("a", "exact", Delivered, 20);
        let ids: Vec<String> = group(outcomes)
            .into_iter()
            .map(|p| p.canonical_id)
            .collect();
        assert_eq!(ids, ["c"]);
    }
}
