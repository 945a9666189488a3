//! Publishing raw change events to `sb.raw.<connection>.<entity>`, keyed by record ID, and
//! waiting for Kafka's acknowledgement. Shared by webhook ingest and the pollers, so both
//! write the same envelope the same way.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use crate::avro::AvroCodec;
use crate::config::Config;
use crate::envelope::{CHANGE_EVENT_SCHEMA, ChangeEvent};
use crate::error::{ClassifiedError, ErrorClass};
use crate::healing::HealingProducer;
use crate::kafka;
use crate::topics::Topics;

/// Writes raw change events; cheap to clone.
#[derive(Clone)]
pub struct RawPublisher {
    producer: HealingProducer,
    codec: AvroCodec,
    topics: Topics,
    ack_timeout: Duration,
}

impl RawPublisher {
    /// A publisher whose sends are acknowledged or failed within `ack_timeout`. Its
    /// producer is rebuilt once sends have only timed out for [`stuck_after`]`(ack_timeout)`.
    pub fn new(
        config: &Config,
        codec: AvroCodec,
        ack_timeout: Duration,
    ) -> Result<Self, ClassifiedError> {
        let kafka_config = config.kafka.clone();
        let producer = HealingProducer::new(
            move || kafka::producer(&kafka_config, ack_timeout),
            stuck_after(ack_timeout),
        )
        .map_err(|e| kafka::kafka_error("producer", &e))?;
        Ok(Self {
            producer,
            codec,
            topics: Topics::new(&config.kafka.topic_prefix),
            ack_timeout,
        })
    }

    /// The underlying producer (for state topics written next to the events).
    pub fn producer(&self) -> &HealingProducer {
        &self.producer
    }

    /// The codec.
    pub fn codec(&self) -> &AvroCodec {
        &self.codec
    }

    /// Publishes `event` and returns once Kafka acknowledged it.
    pub async fn publish(&self, event: &ChangeEvent) -> Result<(), ClassifiedError> {
        let topic = self.topics.raw(&event.connection, &event.entity);
        let value = self
            .codec
            .encode(&topic, CHANGE_EVENT_SCHEMA, event)
            .await?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "sb.event.id",
            value: Some(event.event_id.as_str()),
        });
        let record = FutureRecord::to(&topic)
            .key(event.record_id.as_str())
            .payload(&value)
            .headers(headers);
        // The delivery is bounded by message.timeout.ms = ack_timeout; the outer timeout
        // only guards against a future that never resolves.
        let sent = tokio::time::timeout(
            self.ack_timeout + Duration::from_secs(1),
            self.producer.send(record, Timeout::After(self.ack_timeout)),
        )
        .await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(kafka::kafka_error("produce", &e)),
            Err(_) => {
                self.producer.timed_out();
                Err(ClassifiedError::new(
                    ErrorClass::Transient,
                    "kafka produce timed out",
                ))
            }
        }
    }

    /// Waits for queued records at shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
}

/// How long a raw publisher's sends may only time out before its producer is rebuilt:
/// five delivery timeouts, and at least 15 s. A broker that takes longer to come back costs
/// a rebuild it did not need, which is only a reconnect.
pub fn stuck_after(ack_timeout: Duration) -> Duration {
    (ack_timeout * 5).max(Duration::from_secs(15))
}

/// Now as Unix epoch milliseconds.
pub fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}
