//! Moving a record on from the normal path: to a retry tier with a due time, to the DLQ with
//! Connect-style error headers, or parked behind an earlier record of its key. Each write is
//! acknowledged by Kafka before the caller stores the record's offset.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{ErrorHeaders, kafka_error};
use switchboard_core::topics::Topics;

use crate::blocked::Location;

/// Header: when a record in a retry tier is due, epoch milliseconds.
const DUE: &str = "sb.retry.due";
/// Header: an operator's redrive (`redrive`) or discard (`discard`) of a blocked key's record.
pub(crate) const ACTION: &str = "sb.redrive.action";
/// Header: the record waits behind an earlier record of its key.
const PARKED: &str = "sb.parked";

/// Where one connection's failed and parked records go.
pub(crate) struct Handoff {
    connection: String,
    producer: FutureProducer,
    /// Retry tier topics and their delays.
    tiers: Vec<(String, Duration)>,
    dlq_topic: String,
}

impl Handoff {
    pub(crate) fn new(
        connection: &str,
        topics: &Topics,
        retry_tiers_secs: &[u64],
        producer: FutureProducer,
    ) -> Self {
        Self {
            connection: connection.to_owned(),
            producer,
            tiers: retry_tiers_secs
                .iter()
                .enumerate()
                .map(|(i, secs)| (topics.retry(connection, i), Duration::from_secs(*secs)))
                .collect(),
            dlq_topic: topics.dlq(connection),
        }
    }

    /// The retry tier topics, first tier first.
    pub(crate) fn tier_topics(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().map(|(t, _)| t.as_str())
    }

    /// The tier `topic` is, if it is one.
    pub(crate) fn tier_of(&self, topic: &str) -> Option<usize> {
        self.tiers.iter().position(|(t, _)| t == topic)
    }

    /// For a retry-tier record that is not due yet: when it is (epoch ms).
    pub(crate) fn not_due(&self, message: &impl Message) -> Option<i64> {
        self.tier_of(message.topic())?;
        let due = header(message, DUE)
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(0);
        (due > now_millis()).then_some(due)
    }

    /// Where a record that failed with `error` (class `data`/`conflict` when `terminal`)
    /// goes next, from `tier` (`None`: the normal path).
    pub(crate) fn next(&self, terminal: bool, tier: Option<usize>) -> Location {
        match tier {
            _ if terminal => Location::Dlq,
            None if !self.tiers.is_empty() => Location::Tier(0),
            Some(t) if t + 1 < self.tiers.len() => Location::Tier(t + 1),
            _ => Location::Dlq,
        }
    }

    /// Writes the record in `message` to `to` and waits for Kafka's acknowledgement.
    /// `failure` is the error and attempts when the record itself failed; without it the
    /// record is parked behind an earlier record of its key.
    pub(crate) async fn send(
        &self,
        message: &OwnedMessage,
        to: Location,
        failure: Option<(&ClassifiedError, u32)>,
    ) -> anyhow::Result<()> {
        let (topic, due) = match to {
            Location::Tier(n) => {
                // A blocked-key entry can name a tier the configuration no longer has.
                let (topic, delay) = self.tiers.get(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "retry tier {n} is not configured (sink.retry_tiers_secs has {})",
                        self.tiers.len()
                    )
                })?;
                let due = match failure {
                    Some(_) => now_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                    None => 0,
                };
                (topic.as_str(), Some(due))
            }
            Location::Dlq => (self.dlq_topic.as_str(), None),
        };
        let mut headers = message.headers().cloned().unwrap_or_default();
        if let Some((error, attempts)) = failure {
            let first = header(message, "sb.first.failed.at").unwrap_or_else(now_rfc3339);
            let total = attempts
                + header(message, "sb.error.attempts")
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0);
            let original = original_topic(message);
            let partition = header(message, "sb.original.partition")
                .and_then(|p| p.parse().ok())
                .unwrap_or(message.partition());
            let offset = header(message, "sb.original.offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(message.offset());
            headers = ErrorHeaders {
                error,
                stage: &self.connection,
                attempts: total,
                original_topic: &original,
                original_partition: partition,
                original_offset: offset,
                first_failed_at: &first,
            }
            .apply(headers);
            let label = match to {
                Location::Tier(_) => "retry",
                Location::Dlq => "dlq",
            };
            metrics::counter!("switchboard_dead_letters_total", "stage" => self.connection.clone(), "error_class" => error.class.as_str(), "route" => label).increment(1);
            tracing::warn!(connection = %self.connection, to = topic, error_class = %error.class, error = %error.message, attempts = total, "record handed on");
        } else {
            headers = headers.insert(Header {
                key: PARKED,
                value: Some("true"),
            });
            if header(message, "sb.original.topic").is_none() {
                headers = headers.insert(Header {
                    key: "sb.original.topic",
                    value: Some(message.topic()),
                });
            }
            tracing::info!(connection = %self.connection, to = topic, "record parked behind an earlier record of its key");
        }
        if let Some(due) = due {
            let due = due.to_string();
            headers = headers.insert(Header {
                key: DUE,
                value: Some(due.as_str()),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| kafka_error(&format!("write to {topic}"), &e))?;
        Ok(())
    }
}

/// The last value of header `name`, as text.
pub(crate) fn header(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The canonical topic a record came from, also after it moved through retry tiers.
pub(crate) fn original_topic(message: &impl Message) -> String {
    header(message, "sb.original.topic").unwrap_or_else(|| message.topic().to_owned())
}

pub(crate) fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
