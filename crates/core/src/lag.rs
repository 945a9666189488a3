//! Consumer lag, per group, topic and partition: the group's committed offset against the
//! partition's high watermark (messages), and the age of the first record the group has
//! not consumed yet (seconds).
//!
//! Guarantee: the numbers are measured, never interpolated. Messages are `end - committed`,
//! exactly what `kafka-consumer-groups --describe` prints as LAG; seconds are `now -
//! timestamp` of the record at the committed offset, read from the partition, and 0 when
//! the group is caught up. Blocking: call from `spawn_blocking` in async code.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::error::ClassifiedError;
use crate::kafka::{client_config, kafka_error};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Lag of one group on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (the next record it will read).
    pub committed: i64,
    /// The partition's high watermark.
    pub end: i64,
    /// Records between the committed offset and the end.
    pub lag: i64,
    /// Age of the first unconsumed record, in seconds; 0 when caught up.
    pub lag_seconds: i64,
}

/// Groups on the cluster, by name (only those whose name starts with `prefix`, if given).
pub fn groups(kafka: &KafkaConfig, prefix: Option<&str>) -> Result<Vec<String>, ClassifiedError> {
    let consumer = plain_client(kafka)?;
    let list = consumer
        .fetch_group_list(None, TIMEOUT)
        .map_err(|e| kafka_error("group list", &e))?;
    let mut names: Vec<String> = list
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
        .collect();
    names.sort();
    Ok(names)
}

/// Active members of `group` now (0 when it is empty or unknown).
pub fn members(kafka: &KafkaConfig, group: &str) -> Result<usize, ClassifiedError> {
    let consumer = plain_client(kafka)?;
    let list = consumer
        .fetch_group_list(Some(group), TIMEOUT)
        .map_err(|e| kafka_error("group list", &e))?;
    Ok(list.groups().iter().map(|g| g.members().len()).sum())
}

/// Lag of `group` on every partition it has committed an offset for. `topics` narrows the
/// search (all non-internal topics when empty).
pub fn group_lag(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
    now_ms: i64,
) -> Result<Vec<PartitionLag>, ClassifiedError> {
    let (consumer, committed) = committed(kafka, group, topics)?;
    let mut rows = Vec::new();
    for e in committed.elements() {
        let Offset::Offset(at) = e.offset() else {
            continue;
        };
        let (_, end) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .map_err(|err| kafka_error("watermarks", &err))?;
        rows.push(PartitionLag {
            group: group.to_owned(),
            topic: e.topic().to_owned(),
            partition: e.partition(),
            committed: at,
            end,
            lag: (end - at).max(0),
            lag_seconds: 0,
        });
    }
    let ages = first_unconsumed_timestamps(kafka, &rows)?;
    for row in &mut rows {
        if let Some(ts) = ages.get(&(row.topic.clone(), row.partition)) {
            row.lag_seconds = ((now_ms - ts) / 1000).max(0);
        }
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(rows)
}

/// Records of `topics` that `group` has not consumed yet: from its committed offset, or from
/// the start of a partition it never committed on (unlike [`group_lag`], which, like
/// Kafka's own tool, shows no lag there). A topic that does not exist counts 0.
pub fn backlog(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
) -> Result<i64, ClassifiedError> {
    if topics.is_empty() {
        return Ok(0);
    }
    Ok(unconsumed(kafka, group, topics, None)?
        .iter()
        .map(|r| r.lag)
        .sum())
}

/// Per partition of `topics` (of `only`, when given), what `group` has not consumed yet:
/// from its committed offset, or from the partition's start where it never committed.
fn unconsumed(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
    only: Option<&[(String, i32)]>,
) -> Result<Vec<PartitionLag>, ClassifiedError> {
    let (consumer, committed) = committed(kafka, group, topics)?;
    let mut rows = Vec::new();
    for e in committed.elements() {
        if only.is_some_and(|o| !o.iter().any(|(t, p)| t == e.topic() && *p == e.partition())) {
            continue;
        }
        let (start, end) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .map_err(|err| kafka_error("watermarks", &err))?;
        let from = match e.offset() {
            Offset::Offset(at) => at.max(start),
            _ => start,
        };
        rows.push(PartitionLag {
            group: group.to_owned(),
            topic: e.topic().to_owned(),
            partition: e.partition(),
            committed: from,
            end,
            lag: (end - from).max(0),
            lag_seconds: 0,
        });
    }
    Ok(rows)
}

/// How long, in seconds, the oldest record of `topics` that `group` has not consumed yet has
/// waited (0: none waits), counted from the committed offset, or from the start of a
/// partition the group never committed on (a stage stuck before its first commit waits
/// too). `only`, when given, narrows it to those partitions (a member's assignment).
pub fn oldest_waiting(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
    only: Option<&[(String, i32)]>,
    now_ms: i64,
) -> Result<i64, ClassifiedError> {
    if topics.is_empty() {
        return Ok(0);
    }
    let rows = unconsumed(kafka, group, topics, only)?;
    let ages = first_unconsumed_timestamps(kafka, &rows)?;
    Ok(ages
        .values()
        .map(|ts| ((now_ms - ts) / 1000).max(0))
        .max()
        .unwrap_or(0))
}

/// `group`'s committed offsets on every partition of `topics` (all non-internal topics when
/// empty), and the client that asked, for watermarks. A partition it never committed on is
/// listed with an offset that is not `Offset::Offset`.
fn committed(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[String],
) -> Result<(BaseConsumer, TopicPartitionList), ClassifiedError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| kafka_error("consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| kafka_error("metadata", &e))?;
    let mut wanted = TopicPartitionList::new();
    for t in metadata.topics() {
        let internal = t.name().starts_with("__");
        if internal || (!topics.is_empty() && !topics.iter().any(|w| w == t.name())) {
            continue;
        }
        for p in t.partitions() {
            wanted.add_partition(t.name(), p.id());
        }
    }
    if wanted.count() == 0 {
        return Ok((consumer, wanted));
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .map_err(|e| kafka_error("committed offsets", &e))?;
    Ok((consumer, committed))
}

/// Lag of every group (whose name starts with `prefix`, if given).
pub fn all_lag(
    kafka: &KafkaConfig,
    prefix: Option<&str>,
    now_ms: i64,
) -> Result<Vec<PartitionLag>, ClassifiedError> {
    let mut rows = Vec::new();
    for group in groups(kafka, prefix)? {
        rows.extend(group_lag(kafka, &group, &[], now_ms)?);
    }
    Ok(rows)
}

/// The timestamp of the record at the committed offset of every lagging partition. A
/// partition whose remaining offsets hold no record (transaction markers only) gets none.
fn first_unconsumed_timestamps(
    kafka: &KafkaConfig,
    rows: &[PartitionLag],
) -> Result<BTreeMap<(String, i32), i64>, ClassifiedError> {
    let mut found = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for r in rows.iter().filter(|r| r.lag > 0) {
        assignment
            .add_partition_offset(&r.topic, r.partition, Offset::Offset(r.committed))
            .map_err(|e| kafka_error("assign", &e))?;
    }
    let wanted = assignment.count();
    if wanted == 0 {
        return Ok(found);
    }
    // No group: this reader never commits and never joins the group it measures.
    let reader = plain_client(kafka)?;
    reader
        .assign(&assignment)
        .map_err(|e| kafka_error("assign", &e))?;
    let mut open: BTreeMap<(String, i32), i64> = rows
        .iter()
        .filter(|r| r.lag > 0)
        .map(|r| ((r.topic.clone(), r.partition), r.end))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while found.len() < wanted && !open.is_empty() && std::time::Instant::now() < deadline {
        // A partition whose position passed its end without a record holds only
        // transaction markers after the committed offset: nothing to age.
        if let Ok(positions) = reader.position() {
            open.retain(|(topic, partition), end| {
                !positions
                    .find_partition(topic, *partition)
                    .is_some_and(|p| matches!(p.offset(), Offset::Offset(o) if o >= *end))
            });
        }
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            open.remove(&(m.topic().to_owned(), m.partition()));
            let key = (m.topic().to_owned(), m.partition());
            if let Some(ts) = m.timestamp().to_millis() {
                found.entry(key).or_insert(ts);
            }
            let mut done = TopicPartitionList::new();
            done.add_partition(m.topic(), m.partition());
            // One record per partition is all we need.
            let _ = reader.pause(&done);
        }
    }
    Ok(found)
}

fn plain_client(kafka: &KafkaConfig) -> Result<BaseConsumer, ClassifiedError> {
    client_config(kafka)
        .set("group.id", "switchboard.ops.reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| kafka_error("consumer", &e))
}

/// Exports `rows` as the gauges `switchboard_consumergroup_lag` (messages) and
/// `switchboard_consumergroup_lag_seconds`, labelled like kafka-lag-exporter's
/// (`group`, `topic`, `partition`).
pub fn export(rows: &[PartitionLag]) {
    for r in rows {
        let labels = [
            ("group", r.group.clone()),
            ("topic", r.topic.clone()),
            ("partition", r.partition.to_string()),
        ];
        metrics::gauge!("switchboard_consumergroup_lag", &labels).set(r.lag as f64);
        metrics::gauge!("switchboard_consumergroup_lag_seconds", &labels).set(r.lag_seconds as f64);
    }
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
