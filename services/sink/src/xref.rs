//! The sink's side of `sb.xref`: which native record at this target is a canonical record.
//!
//! Two entries per link: `target/<connection>/<entity>/<canonical id>` → the native ID (what
//! check-before-create looks up first), and `<connection>/<entity>/<native id>` → the
//! canonical ID (what the transformer resolves when this target later reports a change of
//! the record). The link is written and acknowledged before the record's offset is stored;
//! a crash between create and link is closed by the target search on redelivery.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::json;
use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{kafka_error, read_table_uncommitted};

use crate::upsert::Record;

/// Links of one target connection: read from `topic` whenever the sink is assigned
/// partitions (another replica may have linked records meanwhile), and kept up to date by
/// this sink between.
pub(crate) struct TargetXref {
    topic: String,
    connection: String,
    producer: FutureProducer,
    links: Mutex<HashMap<String, String>>,
}

impl TargetXref {
    /// An empty table; [`Self::reload`] fills it.
    pub(crate) fn new(topic: &str, connection: &str, producer: FutureProducer) -> Self {
        Self {
            topic: topic.to_owned(),
            connection: connection.to_owned(),
            producer,
            links: Mutex::default(),
        }
    }

    /// Reads the connection's links from the topic (blocking), replacing what it held.
    pub(crate) fn reload(&self, kafka: &KafkaConfig) -> Result<(), ClassifiedError> {
        let prefix = format!("target/{}/", self.connection);
        // Sinks write their links outside transactions; the transformer's transactional
        // entries of the same topic (other keys) must not hold this read up.
        let links = read_table_uncommitted(kafka, &self.topic, Duration::from_secs(120))?
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| {
                let value: serde_json::Value = serde_json::from_slice(&v).ok()?;
                Some((k, value["native_id"].as_str()?.to_owned()))
            })
            .collect();
        *self.links.lock().unwrap_or_else(PoisonError::into_inner) = links;
        Ok(())
    }

    fn key(&self, entity: &str, canonical_id: &str) -> String {
        format!("target/{}/{entity}/{canonical_id}", self.connection)
    }

    /// The native ID of `canonical_id` as an `entity` of this target, if linked.
    pub(crate) fn native_id(&self, entity: &str, canonical_id: &str) -> Option<String> {
        let key = self.key(entity, canonical_id);
        self.links.lock().ok()?.get(&key).cloned()
    }

    /// Records that `record` is `native_id` at this target; returns once Kafka acknowledged.
    pub(crate) async fn link(
        &self,
        entity: &str,
        canonical_entity: &str,
        record: &Record,
        native_id: &str,
    ) -> Result<(), ClassifiedError> {
        let forward = self.key(entity, &record.id);
        let reverse = format!("{}/{entity}/{native_id}", self.connection);
        let entries = [
            (forward.clone(), json!({"native_id": native_id})),
            (
                reverse,
                json!({"canonical_id": record.id, "entity": canonical_entity}),
            ),
        ];
        // Both entries in flight at once: one round trip, not two.
        let payloads: Vec<(String, String)> = entries
            .into_iter()
            .map(|(key, value)| (key, value.to_string()))
            .collect();
        let sends = payloads.iter().map(|(key, payload)| {
            self.producer.send(
                FutureRecord::to(&self.topic).key(key).payload(payload),
                Timeout::After(Duration::from_secs(30)),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| kafka_error("xref write", &e))?;
        }
        if let Ok(mut links) = self.links.lock() {
            links.insert(forward, native_id.to_owned());
        }
        Ok(())
    }
}
