//! A sink connection's dead-letter queue as operators see it, and the two ways out of it:
//! redrive (try the record again) and discard (give it up).
//!
//! Both speak the sink's header protocol: a record written to the tier-0 retry topic
//! `<prefix>.retry.<conn>.0` with `sb.redrive.action: redrive|discard` and `sb.retry.due: 0`
//! is taken by the sink as an operator's decision on that key's blocked record. The
//! followers of a failed record (same key, `sb.parked: true`, later in the same DLQ
//! partition) are always redriven after it, in DLQ order, so per-key order survives.
//!
//! Guarantee: a DLQ record is sent back at most once per decision. Each one sent is
//! remembered in the compacted `<prefix>.dlq.<conn>.handled` (key `<partition>/<offset>`)
//! right after the retry topic acknowledged it, and later runs skip it; a crash between
//! the two writes resends one record, which the sink's idempotent delivery absorbs.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Header, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::error::ClassifiedError;
use crate::kafka::{Cleanup, TopicSpec, ensure_topics, kafka_error, producer, read_table};
use crate::republish::{header, scan};
use crate::topics::Topics;

/// One DLQ record, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqEntry {
    /// DLQ partition.
    pub partition: i32,
    /// DLQ offset.
    pub offset: i64,
    /// Record key (the canonical ID for sinks).
    pub key: String,
    /// Error class (`sb.error.class`); parked followers carry their blocker's none.
    pub class: Option<String>,
    /// Error message, already redacted by the stage that wrote it.
    pub message: Option<String>,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// First failure, RFC 3339.
    pub first_failed_at: Option<String>,
    /// When the record entered the DLQ, epoch milliseconds.
    pub timestamp: i64,
    /// Whether it waits behind an earlier failed record of its key.
    pub parked: bool,
    /// The topic it came from.
    pub original_topic: Option<String>,
    /// `redrive` or `discard` if an operator already decided.
    pub handled: Option<String>,
}

impl DlqEntry {
    /// The key of this record in the handled table.
    pub fn id(&self) -> String {
        format!("{}/{}", self.partition, self.offset)
    }
}

/// Which failed records an operator means.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Error class.
    pub class: Option<String>,
    /// Record key.
    pub key: Option<String>,
    /// Entered the DLQ at or after this time, epoch milliseconds.
    pub since: Option<i64>,
    /// One record, `<partition>/<offset>`.
    pub id: Option<String>,
}

impl Filter {
    /// Whether `e` is selected (parked followers are never selected on their own).
    pub fn matches(&self, e: &DlqEntry) -> bool {
        !e.parked
            && self
                .class
                .as_ref()
                .is_none_or(|c| e.class.as_ref() == Some(c))
            && self.key.as_ref().is_none_or(|k| &e.key == k)
            && self.since.is_none_or(|s| e.timestamp >= s)
            && self.id.as_ref().is_none_or(|id| &e.id() == id)
    }
}

/// What to do with a selected failed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Try it again (and its followers after it).
    Redrive,
    /// Give it up (its followers are redriven).
    Discard,
}

impl Action {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redrive => "redrive",
            Self::Discard => "discard",
        }
    }
}

/// A connection's DLQ, read once.
pub struct Dlq {
    kafka: KafkaConfig,
    dlq_topic: String,
    retry_topic: String,
    handled_topic: String,
    records: Vec<(DlqEntry, OwnedMessage)>,
}

impl Dlq {
    /// Reads `connection`'s DLQ and handled table (creates the handled topic if needed).
    pub async fn load(kafka: &KafkaConfig, connection: &str) -> Result<Self, ClassifiedError> {
        let topics = Topics::new(&kafka.topic_prefix);
        let handled_topic = topics.dlq_handled(connection);
        let spec = [TopicSpec::new(&handled_topic, Cleanup::Compact).with_partitions(1)];
        ensure_topics(kafka, &spec).await?;
        let (kafka, connection) = (kafka.clone(), connection.to_owned());
        tokio::task::spawn_blocking(move || Self::read(&kafka, &connection))
            .await
            .map_err(|e| ClassifiedError::new(crate::ErrorClass::Transient, e.to_string()))?
    }

    fn read(kafka: &KafkaConfig, connection: &str) -> Result<Self, ClassifiedError> {
        let topics = Topics::new(&kafka.topic_prefix);
        let handled_topic = topics.dlq_handled(connection);
        let dlq_topic = topics.dlq(connection);
        let handled: HashMap<String, String> =
            read_table(kafka, &handled_topic, Duration::from_secs(30))?
                .into_iter()
                .map(|(k, v)| {
                    let action = serde_json::from_slice::<serde_json::Value>(&v)
                        .ok()
                        .and_then(|v| v["action"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    (k, action)
                })
                .collect();
        let messages = if topic_exists(kafka, &dlq_topic)? {
            scan(kafka, &dlq_topic, Duration::from_secs(60), |_| true)?
        } else {
            Vec::new()
        };
        let records = messages
            .into_iter()
            .map(|m| {
                let mut entry = entry(&m);
                entry.handled = handled.get(&entry.id()).cloned();
                (entry, m)
            })
            .collect();
        Ok(Self {
            kafka: kafka.clone(),
            dlq_topic,
            retry_topic: topics.retry(connection, 0),
            handled_topic,
            records,
        })
    }

    /// The DLQ topic.
    pub fn topic(&self) -> &str {
        &self.dlq_topic
    }

    /// Every record, in partition and offset order.
    pub fn entries(&self) -> Vec<&DlqEntry> {
        self.records.iter().map(|(e, _)| e).collect()
    }

    /// Records nobody decided on yet (the DLQ depth an operator cares about).
    pub fn open(&self) -> Vec<&DlqEntry> {
        self.records
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.handled.is_none())
            .collect()
    }

    /// The raw record of `id` (`<partition>/<offset>`).
    pub fn message(&self, id: &str) -> Option<&OwnedMessage> {
        self.records
            .iter()
            .find(|(e, _)| e.id() == id)
            .map(|(_, m)| m)
    }

    /// What `action` on the records `filter` selects would send, in order: each failed
    /// record with its action, then its parked followers as redrives. Handled ones are left
    /// out.
    pub fn plan(&self, filter: &Filter, action: Action) -> Vec<(DlqEntry, Action)> {
        let mut out = Vec::new();
        for (i, (failed, _)) in self.records.iter().enumerate() {
            if !filter.matches(failed) || failed.handled.is_some() {
                continue;
            }
            out.push((failed.clone(), action));
            let followers = self.records[i + 1..]
                .iter()
                .map(|(e, _)| e)
                .filter(|e| e.partition == failed.partition && e.key == failed.key)
                .take_while(|e| e.parked);
            out.extend(
                followers
                    .filter(|e| e.handled.is_none())
                    .map(|e| (e.clone(), Action::Redrive)),
            );
        }
        out
    }

    /// Sends `plan` to the tier-0 retry topic, in order, and remembers each record as
    /// handled. `progress` is told after each record.
    pub async fn execute(
        &self,
        plan: &[(DlqEntry, Action)],
        mut progress: impl FnMut(usize),
    ) -> Result<usize, ClassifiedError> {
        let producer = producer(&self.kafka, Duration::from_secs(30))
            .map_err(|e| kafka_error("producer", &e))?;
        for (i, (entry, action)) in plan.iter().enumerate() {
            let Some(m) = self.message(&entry.id()) else {
                continue;
            };
            let headers = m.headers().cloned().unwrap_or_default();
            let headers = [
                ("sb.redrive.action", action.as_str()),
                ("sb.retry.due", "0"),
            ]
            .into_iter()
            .fold(headers, |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            });
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.retry_topic).headers(headers);
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            if let Some(value) = m.payload() {
                record = record.payload(value);
            }
            producer
                .send(record, Timeout::After(Duration::from_secs(30)))
                .await
                .map_err(|(e, _)| kafka_error("redrive write", &e))?;
            let mark =
                serde_json::json!({"action": action, "at": crate::lag::now_millis()}).to_string();
            let id = entry.id();
            producer
                .send(
                    FutureRecord::to(&self.handled_topic)
                        .key(&id)
                        .payload(&mark),
                    Timeout::After(Duration::from_secs(30)),
                )
                .await
                .map_err(|(e, _)| kafka_error("handled write", &e))?;
            progress(i + 1);
        }
        Ok(plan.len())
    }
}

fn entry(m: &OwnedMessage) -> DlqEntry {
    DlqEntry {
        partition: m.partition(),
        offset: m.offset(),
        key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        class: header(m, "sb.error.class"),
        message: header(m, "sb.error.message"),
        attempts: header(m, "sb.error.attempts").and_then(|a| a.parse().ok()),
        first_failed_at: header(m, "sb.first.failed.at"),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        parked: header(m, "sb.parked").as_deref() == Some("true"),
        original_topic: header(m, "sb.original.topic"),
        handled: None,
    }
}

fn topic_exists(kafka: &KafkaConfig, topic: &str) -> Result<bool, ClassifiedError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = crate::kafka::client_config(kafka)
        .create()
        .map_err(|e| kafka_error("consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| kafka_error("metadata", &e))?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.error().is_none() && !t.partitions().is_empty()))
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedHeaders;

    use super::*;

    fn record(offset: i64, key: &str, parked: bool) -> OwnedMessage {
        let (k, v) = if parked {
            ("sb.parked", "true")
        } else {
            ("sb.error.class", "data")
        };
        let headers = OwnedHeaders::new().insert(Header {
            key: k,
            value: Some(v),
        });
        OwnedMessage::new(
            Some(b"v".to_vec()),
            Some(key.as_bytes().to_vec()),
            "sb.dlq.crm".to_owned(),
            Timestamp::CreateTime(1000 + offset),
            0,
            offset,
            Some(headers),
        )
    }

    fn dlq(records: Vec<OwnedMessage>, handled: &[&str]) -> Dlq {
        let kafka = crate::Config::from_yaml(
            "kafka: {bootstrap_servers: '127.0.0.1:1'}\nregistry: {url: 'http://r'}\n",
        )
        .unwrap()
        .kafka;
        Dlq {
            kafka,
            dlq_topic: "sb.dlq.crm".into(),
            retry_topic: "sb.retry.crm.0".into(),
            handled_topic: "sb.dlq.crm.handled".into(),
            records: records
                .into_iter()
                .map(|m| {
                    let mut e = entry(&m);
                    e.handled = handled.contains(&e.id().as_str()).then(|| "redrive".into());
                    (e, m)
                })
                .collect(),
        }
    }

    fn ids(plan: &[(DlqEntry, Action)]) -> Vec<(i64, Action)> {
        plan.iter().map(|(e, a)| (e.offset, *a)).collect()
    }

    #[test]
    fn a_failed_record_is_followed_by_its_own_parked_records_only() {
        let d = dlq(
            vec![
                record(0, "A", false),
                record(1, "A", true),
                record(2, "B", false),
                record(3, "A", true),
                record(4, "A", false),
                record(5, "A", true),
            ],
            &["0/5"],
        );
        let key_a = Filter {
            key: Some("A".into()),
            ..Filter::default()
        };
        use Action::{Discard, Redrive};
        assert_eq!(
            ids(&d.plan(&key_a, Redrive)),
            [(0, Redrive), (1, Redrive), (3, Redrive), (4, Redrive)],
            "two failures of A, each with its followers; 0/5 was handled"
        );
        let only = Filter {
            id: Some("0/0".into()),
            ..Filter::default()
        };
        assert_eq!(
            ids(&d.plan(&only, Discard)),
            [(0, Discard), (1, Redrive), (3, Redrive)]
        );
        let parked = Filter {
            id: Some("0/1".into()),
            ..Filter::default()
        };
        assert!(
            d.plan(&parked, Redrive).is_empty(),
            "followers never go alone"
        );
    }
}
