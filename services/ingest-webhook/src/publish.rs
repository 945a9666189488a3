//! Publishing a verified delivery as a `ChangeEvent` and waiting for Kafka's ack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_connectors::Connection;
use switchboard_connectors::webhook::Received;
use switchboard_core::avro::AvroCodec;
use switchboard_core::envelope::{ChangeEvent, version_key};
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::raw::{RawPublisher, now_millis};
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio_util::sync::CancellationToken;

use crate::dedupe::{Claim, Dedupe};

/// Raw topics keep a week (DESIGN.md).
const RAW_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What became of a delivery that passed verification.
pub(crate) enum Published {
    /// Acknowledged by Kafka under this event ID.
    Accepted(String),
    /// Its delivery ID was published before, within the dedupe window.
    Duplicate,
}

pub(crate) struct Publisher {
    pub(crate) dedupe: Arc<Dedupe>,
    raw: RawPublisher,
    topic_specs: Vec<TopicSpec>,
    kafka: switchboard_core::config::KafkaConfig,
}

impl Publisher {
    pub(crate) fn new(
        config: &Config,
        connections: &BTreeMap<String, Connection>,
    ) -> anyhow::Result<Self> {
        let ack_timeout = Duration::from_millis(config.ingest.ack_timeout_ms);
        let topics = Topics::new(&config.kafka.topic_prefix);
        let mut topic_specs: Vec<TopicSpec> = connections
            .iter()
            .flat_map(|(name, connection)| {
                connection.webhook_entities().into_iter().map(|entity| {
                    TopicSpec::new(topics.raw(name, &entity), Cleanup::Delete(RAW_RETENTION))
                })
            })
            .collect();
        let raw = RawPublisher::new(config, AvroCodec::new(&config.registry)?, ack_timeout)?;
        let dedupe = Arc::new(Dedupe::new(
            raw.producer().clone(),
            topics.ingest_dedupe(),
            Duration::from_secs(config.ingest.dedupe_window_secs),
        ));
        topic_specs.push(dedupe.topic_spec());
        Ok(Self {
            dedupe,
            raw,
            topic_specs,
            kafka: config.kafka.clone(),
        })
    }

    /// Waits for Kafka, the registry and the raw topics; `false` if shutdown came first.
    pub(crate) async fn prepare(&self, shutdown: &CancellationToken) -> bool {
        switchboard_core::service::prepare(
            &self.kafka,
            &self.topic_specs,
            self.raw.codec(),
            shutdown,
        )
        .await
    }

    /// Publishes one delivery and returns its event ID once Kafka acknowledged it.
    pub(crate) async fn publish(
        &self,
        connection: &str,
        source: &Connection,
        received: Received,
        body: &[u8],
    ) -> Result<Published, ClassifiedError> {
        let system = source.system();
        let Some(delivery_id) = received.delivery_id.clone() else {
            return self
                .publish_event(connection, system, received, body)
                .await
                .map(Published::Accepted);
        };
        let key = format!("{connection}/{delivery_id}");
        match self.dedupe.claim(&key, now_millis()).await {
            Claim::Duplicate => Ok(Published::Duplicate),
            Claim::New(claim) => {
                // Only a reconciled entity needs its versions marked: one more write each.
                let version = received
                    .source_timestamp
                    .filter(|_| source.reconciles(&received.entity))
                    .map(|ts| version_key(connection, &received.entity, &received.record_id, ts));
                let event_id = self
                    .publish_event(connection, system, received, body)
                    .await?;
                claim.published(now_millis());
                // Lets a reconciliation poll recognise this version as already delivered.
                if let Some(version) = version {
                    self.dedupe.mark(&version, now_millis());
                }
                Ok(Published::Accepted(event_id))
            }
        }
    }

    async fn publish_event(
        &self,
        connection: &str,
        system: &str,
        received: Received,
        body: &[u8],
    ) -> Result<String, ClassifiedError> {
        let payload = std::str::from_utf8(body)
            .map_err(|_| ClassifiedError::new(ErrorClass::Data, "body is not UTF-8"))?;
        let event = ChangeEvent {
            event_id: ChangeEvent::derive_event_id(
                connection,
                &received.entity,
                &received.record_id,
                received
                    .delivery_id
                    .as_deref()
                    .filter(|_| !received.version_identified),
                received.source_timestamp,
            ),
            connection: connection.to_owned(),
            system: system.to_owned(),
            entity: received.entity,
            record_id: received.record_id,
            operation: received.operation,
            source_timestamp: received.source_timestamp,
            received_at: now_millis(),
            api_version: received.api_version,
            delivery_id: received.delivery_id,
            payload: payload.to_owned(),
        };
        self.raw.publish(&event).await?;
        tracing::debug!(connection, record_id = %event.record_id, event_id = %event.event_id, "webhook published");
        Ok(event.event_id)
    }

    /// The producer every write of this service goes through.
    pub(crate) fn producer(&self) -> &switchboard_core::healing::HealingProducer {
        self.raw.producer()
    }

    pub(crate) fn flush(&self, timeout: Duration) {
        self.dedupe.flush(timeout);
        self.raw.flush(timeout);
    }
}
