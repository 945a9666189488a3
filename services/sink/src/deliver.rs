//! The delivery loop of one target connection.

use std::time::Duration;

use rand::Rng;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_core::avro::AvroCodec;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{self, ErrorHeaders};
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio_util::sync::CancellationToken;

use crate::targets::{Record, Target};
use crate::xref::TargetXref;

/// Which canonical records go to which target connection, from the flows.
pub(crate) struct Routes {
    routes: Vec<Route>,
}

struct Route {
    /// Source `<connection>.<entity>` of the flow.
    from: String,
    /// Canonical topic the flow writes.
    topic: String,
    /// Target connection.
    connection: String,
    /// Target entity, e.g. `persons`.
    entity: String,
    /// Canonical entity, e.g. `contact`.
    canonical: String,
}

impl Routes {
    pub(crate) fn from_config(config: &Config, topics: &Topics) -> Self {
        let routes = config
            .flows
            .iter()
            .flat_map(|flow| {
                flow.sinks.iter().filter_map(move |sink| {
                    let (connection, entity) = sink.target.split_once('.')?;
                    Some(Route {
                        from: flow.from.clone(),
                        topic: topics.canonical(&flow.to),
                        connection: connection.to_owned(),
                        entity: entity.to_owned(),
                        canonical: flow.to.clone(),
                    })
                })
            })
            .collect();
        Self { routes }
    }

    pub(crate) fn target_connections(&self) -> Vec<String> {
        let mut names: Vec<String> = self.routes.iter().map(|r| r.connection.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn input_topics(&self, target: &str) -> Vec<String> {
        let mut topics: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.connection == target)
            .map(|r| r.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The target entity a record from `source` on `topic` becomes at `target`, if the
    /// record is for `target` at all. A record never goes back to the connection it came
    /// from (echo suppression).
    fn entity(&self, target: &str, topic: &str, source: &str) -> Option<(&str, &str)> {
        if source.split_once('.').map(|(c, _)| c) == Some(target) {
            return None;
        }
        self.routes
            .iter()
            .find(|r| r.from == source && r.topic == topic && r.connection == target)
            .map(|r| (r.entity.as_str(), r.canonical.as_str()))
    }
}

/// Delivers one target connection's records, in order per partition.
pub(crate) struct Delivery {
    connection: String,
    consumer: StreamConsumer,
    dlq: FutureProducer,
    dlq_topic: String,
    codec: AvroCodec,
    target: Target,
    routes: std::sync::Arc<Routes>,
    xref: TargetXref,
    max_backoff: Duration,
}

/// Why a record's delivery ended.
enum Done {
    /// Delivered, skipped or dead-lettered: the offset may be stored.
    Finished,
    /// Shutdown came first: the offset must not be stored.
    Interrupted,
}

impl Delivery {
    pub(crate) fn new(
        config: &Config,
        topics: &Topics,
        connection: &str,
        target: Target,
        routes: std::sync::Arc<Routes>,
        input_topics: &[String],
        codec: AvroCodec,
    ) -> anyhow::Result<Self> {
        let consumer = kafka::consumer(&config.kafka, &topics.sink_group(connection))?;
        let subscribed: Vec<&str> = input_topics.iter().map(String::as_str).collect();
        consumer.subscribe(&subscribed)?;
        let producer = kafka::producer(&config.kafka, Duration::from_secs(30))?;
        let xref = tokio::task::block_in_place(|| {
            TargetXref::load(&config.kafka, &topics.xref(), connection, producer.clone())
        })?;
        Ok(Self {
            connection: connection.to_owned(),
            consumer,
            xref,
            dlq: producer,
            dlq_topic: topics.dlq(connection),
            codec,
            target,
            routes,
            max_backoff: Duration::from_millis(config.sink.max_backoff_ms),
        })
    }

    pub(crate) async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = self.consumer.recv() => m,
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // Broker errors repeat while it is away; do not spin on them.
                    tracing::warn!(connection = %self.connection, error = %e, "consume failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match self.handle(&message, shutdown).await? {
                Done::Finished => self.consumer.store_offset_from_message(&message)?,
                Done::Interrupted => break,
            }
        }
        // Commit what is done before leaving the group, so the next owner starts right
        // after it (and not earlier, which would only cost an idempotent redelivery).
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(connection = %self.connection, error = %e, "final commit (nothing stored?)");
        }
        Ok(())
    }

    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Done> {
        let mut attempts = 0u32;
        let mut first_failure: Option<String> = None;
        loop {
            let error = match self.attempt(message).await {
                Ok(()) => return Ok(Done::Finished),
                Err(e) => e,
            };
            let wait = match error.class {
                ErrorClass::RateLimit => {
                    metrics::counter!("switchboard_sink_throttled_total", "connection" => self.connection.clone()).increment(1);
                    error.retry_after.unwrap_or(Duration::from_secs(1))
                }
                ErrorClass::Transient | ErrorClass::Auth => {
                    attempts += 1;
                    first_failure.get_or_insert_with(now_rfc3339);
                    metrics::counter!("switchboard_sink_errors_total", "connection" => self.connection.clone(), "error_class" => error.class.as_str()).increment(1);
                    let wait = backoff(attempts, self.max_backoff);
                    tracing::warn!(connection = %self.connection, attempt = attempts, error_class = %error.class, error = %error.message, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                    wait
                }
                ErrorClass::Data | ErrorClass::Conflict => {
                    attempts += 1;
                    let first = first_failure.unwrap_or_else(now_rfc3339);
                    self.dead_letter(message, &error, attempts, &first).await?;
                    return Ok(Done::Finished);
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Done::Interrupted),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(&self, message: &BorrowedMessage<'_>) -> Result<(), ClassifiedError> {
        let bytes = message
            .payload()
            .ok_or_else(|| ClassifiedError::new(ErrorClass::Data, "record has no value"))?;
        let record = Record::from_json(self.codec.decode(bytes).await?)?;
        let Some((entity, canonical)) =
            self.routes
                .entity(&self.connection, message.topic(), &record.source())
        else {
            return Ok(());
        };
        let known = self.xref.native_id(entity, &record.id);
        let delivered = self
            .target
            .deliver(entity, &record, known.as_deref())
            .await?;
        if let Some(native) = &delivered.native_id
            && known.as_deref() != Some(native)
        {
            self.xref.link(entity, canonical, &record, native).await?;
        }
        let outcome = delivered.outcome;
        metrics::counter!("switchboard_sink_deliveries_total", "connection" => self.connection.clone(), "outcome" => outcome.as_str()).increment(1);
        metrics::gauge!("switchboard_sink_last_success_timestamp_seconds", "connection" => self.connection.clone())
            .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
        tracing::info!(connection = %self.connection, entity, record_id = record.str("source_id").unwrap_or_default(), canonical_id = %record.id, event_id = record.str("source_event_id").unwrap_or_default(), native_id = ?delivered.native_id, outcome = outcome.as_str(), "delivered");
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        error: &ClassifiedError,
        attempts: u32,
        first_failed_at: &str,
    ) -> anyhow::Result<()> {
        tracing::warn!(connection = %self.connection, topic = message.topic(), offset = message.offset(), error_class = %error.class, error = %error.message, "dead-lettering record");
        metrics::counter!("switchboard_dead_letters_total", "stage" => self.connection.clone(), "error_class" => error.class.as_str()).increment(1);
        let original = message.headers().map(|h| h.detach()).unwrap_or_default();
        let headers = ErrorHeaders {
            error,
            stage: &self.connection,
            attempts,
            original_topic: message.topic(),
            original_partition: message.partition(),
            original_offset: message.offset(),
            first_failed_at,
        }
        .apply(original);
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        self.dlq
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("could not write to {}: {e}", self.dlq_topic))?;
        Ok(())
    }
}

/// Exponential backoff with jitter: between half and all of 200 ms × 2^(n−1), capped.
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let ceiling = Duration::from_millis(200)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(5);
        assert!(backoff(1, cap) <= Duration::from_millis(200));
        assert!(backoff(4, cap) >= Duration::from_millis(800));
        for _ in 0..50 {
            assert!(backoff(30, cap) <= cap);
        }
    }
}
