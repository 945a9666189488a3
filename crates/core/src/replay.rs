//! Rewinding a consumer group, with the semantics of `kafka-consumer-groups --reset-offsets`:
//! a plan first (current and new offset per partition, and how many records that replays),
//! then, only if the group has no active members, the commit.
//!
//! Replaying raw topics through the transformer is how a mapping change or a rollback is
//! applied to history; replaying a canonical topic to a sink redelivers after an outage.
//! Both are safe because every stage is idempotent (transactions, xref, check-before-create).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::{ClassifiedError, ErrorClass};
use crate::kafka::{client_config, kafka_error};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Where to rewind to.
#[derive(Debug, Clone, Copy)]
pub enum ResetTo {
    /// The first offset whose record timestamp is at or after this time (epoch ms); the end
    /// when no record is that new.
    Time(i64),
    /// The earliest offset still retained.
    Earliest,
    /// This offset on every partition, clamped to what the partition retains (as Kafka's
    /// `--to-offset` does).
    Offset(i64),
}

/// One partition of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset now, if any.
    pub current: Option<i64>,
    /// The offset the group will resume from.
    pub new: i64,
    /// The partition's end (high watermark).
    pub end: i64,
}

impl PartitionPlan {
    /// Records the reset makes the group read again (or skip, if negative).
    pub fn replayed(&self) -> i64 {
        self.current.unwrap_or(self.end) - self.new
    }
}

/// The plan for resetting `group` on `topics` to `to`.
pub fn plan(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
    to: ResetTo,
) -> Result<Vec<PartitionPlan>, ClassifiedError> {
    let consumer = group_client(kafka, group)?;
    let mut wanted = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| kafka_error("metadata", &e))?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let offset = match to {
                ResetTo::Time(ms) => Offset::Offset(ms),
                ResetTo::Earliest | ResetTo::Offset(_) => Offset::Beginning,
            };
            wanted
                .add_partition_offset(topic, p.id(), offset)
                .map_err(|e| kafka_error("plan", &e))?;
        }
    }
    let committed = consumer
        .committed_offsets(wanted.clone(), TIMEOUT)
        .map_err(|e| kafka_error("committed offsets", &e))?;
    let targets = match to {
        ResetTo::Time(_) => consumer
            .offsets_for_times(wanted.clone(), TIMEOUT)
            .map_err(|e| kafka_error("offsets for times", &e))?,
        ResetTo::Earliest | ResetTo::Offset(_) => wanted.clone(),
    };
    let mut plan = Vec::new();
    for element in wanted.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (low, end) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| kafka_error("watermarks", &e))?;
        let current = committed
            .find_partition(topic, partition)
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let new = match (
            to,
            targets.find_partition(topic, partition).map(|p| p.offset()),
        ) {
            (ResetTo::Offset(o), _) => o.clamp(low, end),
            (_, Some(Offset::Offset(o))) => o.max(low),
            (_, Some(Offset::Beginning)) => low,
            _ => end,
        };
        plan.push(PartitionPlan {
            topic: topic.to_owned(),
            partition,
            current,
            new,
            end,
        });
    }
    Ok(plan)
}

/// Commits `plan` for `group`. Refused while the group has active members: their commits
/// would overwrite the reset (stop the consumers first, as Kafka's own tool requires).
pub fn apply(
    kafka: &KafkaConfig,
    group: &str,
    plan: &[PartitionPlan],
) -> Result<(), ClassifiedError> {
    let consumer = group_client(kafka, group)?;
    let members = crate::lag::members(kafka, group)?;
    if members > 0 {
        return Err(ClassifiedError::new(
            ErrorClass::Conflict,
            format!("group {group} has {members} active member(s); stop them before a reset"),
        ));
    }
    let mut offsets = TopicPartitionList::new();
    for p in plan {
        offsets
            .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.new))
            .map_err(|e| kafka_error("reset", &e))?;
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .map_err(|e| kafka_error("commit", &e))
}

fn group_client(kafka: &KafkaConfig, group: &str) -> Result<BaseConsumer, ClassifiedError> {
    client_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| kafka_error("consumer", &e))
}
