//! Selective replay: the records of one key (or one record) read from a topic and written to
//! the same topic again, so every consumer of the topic sees them once more.
//!
//! Why re-publish instead of rewinding a group: a rewind replays every key of a partition;
//! re-publishing replays only the chosen records, for every group at once. It is safe
//! because every stage is idempotent (the transformer's deterministic IDs and echo
//! suppression, the sinks' xref and check-before-create), so a record seen twice changes
//! nothing the first time did not. Guarantee: records are re-published in their original
//! order per partition (one idempotent producer, each write acknowledged before the next),
//! with their key, value and headers, plus `sb.replayed.from: <partition>/<offset>`.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::{ClassifiedError, ErrorClass};
use crate::kafka::{client_config, kafka_error, producer};

/// Which records to replay.
#[derive(Debug, Clone)]
pub enum Select {
    /// Every record with this key.
    Key(String),
    /// A source record ID: records whose key is it (raw topics are keyed by it), or whose
    /// `sb.event.id` header is it (one change event).
    Record(String),
}

impl Select {
    /// Whether `m` is selected.
    pub fn matches(&self, m: &impl Message) -> bool {
        let key = m.key().map(String::from_utf8_lossy);
        match self {
            Self::Key(k) => key.as_deref() == Some(k.as_str()),
            Self::Record(id) => {
                key.as_deref() == Some(id.as_str())
                    || header(m, "sb.event.id").as_deref() == Some(id.as_str())
            }
        }
    }
}

/// Every committed record of `topic` from the beginning to the end seen at start, for which
/// `keep` holds, in offset order per partition. Blocking.
pub fn scan(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
    mut keep: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<Vec<OwnedMessage>, ClassifiedError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", "switchboard.ops.reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| kafka_error("consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| kafka_error("metadata", &e))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| kafka_error("watermarks", &e))?;
        if high > low {
            ends.insert(p.id(), high);
            assignment
                .add_partition_offset(topic, p.id(), Offset::Offset(low))
                .map_err(|e| kafka_error("assign", &e))?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_error("assign", &e))?;
    let deadline = std::time::Instant::now() + timeout;
    while !ends.is_empty() {
        if std::time::Instant::now() >= deadline {
            return Err(ClassifiedError::new(
                ErrorClass::Transient,
                format!("reading {topic} did not reach its end in time"),
            ));
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() < *end)
            && keep(&m)
        {
            out.push(m.detach());
        }
        // Positions move past transaction markers, which are never delivered.
        let positions = consumer
            .position()
            .map_err(|e| kafka_error("position", &e))?;
        ends.retain(|partition, end| {
            let at = positions
                .find_partition(topic, *partition)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            at.is_none_or(|at| at < *end)
        });
    }
    Ok(out)
}

/// Writes `records` to `topic` again, in order, each acknowledged before the next.
/// `extra` headers are appended to each record's own; `progress` is told after each write.
pub async fn republish(
    kafka: &KafkaConfig,
    topic: &str,
    records: &[OwnedMessage],
    extra: &[(&str, &str)],
    mut progress: impl FnMut(usize),
) -> Result<usize, ClassifiedError> {
    let producer =
        producer(kafka, Duration::from_secs(30)).map_err(|e| kafka_error("producer", &e))?;
    for (i, m) in records.iter().enumerate() {
        let from = format!("{}/{}", m.partition(), m.offset());
        let mut headers = m.headers().cloned().unwrap_or_default();
        for (key, value) in extra
            .iter()
            .copied()
            .chain([("sb.replayed.from", from.as_str())])
        {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(value) = m.payload() {
            record = record.payload(value);
        }
        producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| kafka_error(&format!("write to {topic}"), &e))?;
        progress(i + 1);
    }
    Ok(records.len())
}

/// The last value of header `name`, as text.
pub fn header(m: &impl Message, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
