//! The reconciliation ledger. Webhooks get lost (Shopify deletes a subscription after
//! repeated failures, Pipedrive bans a failing one for 30 minutes and drops its events), so
//! a slow poll lists what changed since the last one and publishes every version no webhook
//! brought. A version is a record and its source timestamp; ingest marks each version it
//! published in `<prefix>.ingest.dedupe` ([`version_key`]), and the ledger lets a poll skip
//! those. Each version a poll does publish is a missed webhook, marked too (so the next poll
//! skips it) and counted in `switchboard_reconciliation_catches_total`.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use switchboard_connectors::Call;
use switchboard_connectors::poll::{Known, Ledger, telemetry};
use switchboard_core::config::KafkaConfig;
use switchboard_core::envelope::{ChangeEvent, version_key};
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::kafka::{self, read_table};
use switchboard_core::raw::{RawPublisher, now_millis};
use switchboard_core::topics::Topics;

/// The ledger on `<prefix>.ingest.dedupe`.
pub(crate) struct KafkaLedger {
    publisher: RawPublisher,
    kafka: KafkaConfig,
    topic: String,
}

impl KafkaLedger {
    pub(crate) fn new(publisher: RawPublisher, kafka: KafkaConfig, topics: &Topics) -> Self {
        Self {
            publisher,
            kafka,
            topic: topics.ingest_dedupe(),
        }
    }
}

impl Ledger for KafkaLedger {
    fn load(&self) -> Call<'_, Known> {
        Box::pin(async move {
            let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
            let table = tokio::task::spawn_blocking(move || {
                read_table(&kafka, &topic, Duration::from_secs(60))
            })
            .await
            .map_err(|e| ClassifiedError::new(ErrorClass::Transient, e.to_string()))??;
            Ok(Known::new(table))
        })
    }

    fn caught<'a>(&'a self, event: &'a ChangeEvent) -> Call<'a, ()> {
        Box::pin(async move {
            if let Some(ts) = event.source_timestamp {
                let version = version_key(&event.connection, &event.entity, &event.record_id, ts);
                let marker = now_millis().to_string();
                self.publisher
                    .producer()
                    .send(
                        FutureRecord::to(&self.topic).key(&version).payload(&marker),
                        Timeout::After(Duration::from_secs(30)),
                    )
                    .await
                    .map_err(|(e, _)| kafka::kafka_error("mark reconciled version", &e))?;
            }
            telemetry::caught(&event.connection, &event.entity, &event.record_id);
            Ok(())
        })
    }
}
