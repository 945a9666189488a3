//! Poll cursors in the compacted topic `<prefix>.cursors`, keyed `<connection>/<entity>`.
//!
//! A cursor is written (and acknowledged by Kafka) only after every event of the page it
//! covers was acknowledged, so a crash repeats a page at worst and never skips one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use switchboard_connectors::Call;
use switchboard_connectors::poll::Cursor;
use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::healing::HealingProducer;
use switchboard_core::kafka::{self, Cleanup, TopicSpec};

/// All cursors of this deployment.
pub(crate) struct Cursors {
    producer: HealingProducer,
    topic: String,
    table: Mutex<HashMap<String, Cursor>>,
}

impl Cursors {
    pub(crate) fn new(kafka: &KafkaConfig, producer: HealingProducer) -> Self {
        Self {
            producer,
            topic: format!("{}.cursors", kafka.topic_prefix),
            table: Mutex::default(),
        }
    }

    pub(crate) fn topic_spec(&self) -> TopicSpec {
        TopicSpec::new(self.topic.clone(), Cleanup::Compact)
    }

    /// Reads every stored cursor (at start, before polling).
    pub(crate) async fn load(&self, kafka: &KafkaConfig) -> Result<(), ClassifiedError> {
        let (kafka, topic) = (kafka.clone(), self.topic.clone());
        let raw = tokio::task::spawn_blocking(move || {
            kafka::read_table(&kafka, &topic, Duration::from_secs(60))
        })
        .await
        .map_err(|e| {
            ClassifiedError::new(switchboard_core::ErrorClass::Transient, e.to_string())
        })??;
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, value) in raw {
            match serde_json::from_slice(&value) {
                Ok(cursor) => {
                    table.insert(key, cursor);
                }
                Err(e) => tracing::warn!(key, error = %e, "unreadable cursor ignored"),
            }
        }
        Ok(())
    }
}

impl switchboard_connectors::poll::Cursors for Cursors {
    fn get(&self, key: &str) -> Option<Cursor> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Stores a cursor and waits for Kafka's acknowledgement.
    fn commit<'a>(&'a self, key: &'a str, cursor: &'a Cursor) -> Call<'a, ()> {
        Box::pin(async move {
            let value = serde_json::to_vec(&cursor).unwrap_or_default();
            self.producer
                .send(
                    FutureRecord::to(&self.topic).key(key).payload(&value),
                    Timeout::After(Duration::from_secs(30)),
                )
                .await
                .map_err(|(e, _)| kafka::kafka_error("commit cursor", &e))?;
            self.table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key.to_owned(), cursor.clone());
            Ok(())
        })
    }
}
