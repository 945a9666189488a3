//! Keys whose records wait behind a failed record: per-key order under failure.
//!
//! When a record of key K leaves the normal path (to a retry tier or the DLQ), K is blocked:
//! every later record of K follows it to where it is, in order, instead of overtaking it.
//! `pending` counts K's records that are not yet delivered (the blocker and its followers);
//! K is released when it reaches zero. The table is a compacted topic
//! (`sb.sink.<sink>.blocked`), written and acknowledged before the offset of the record
//! that changed it is stored, and read again whenever the sink is assigned partitions (the
//! former owner committed before it let them go). Other keys never wait.
//!
//! Records of one key are handled by one lane at a time (see `dispatch.rs`), so the changes
//! of one key never race; the map is shared only so that lanes can read it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};
use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{kafka_error, read_table};

/// Where a blocked key's first undelivered record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Location {
    /// In retry tier `n`.
    Tier(usize),
    /// In the DLQ, waiting for an operator (its followers are parked there too).
    Dlq,
}

/// One blocked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Blocked {
    /// Where the blocker is.
    pub location: Location,
    /// Records of the key not yet delivered, the blocker included.
    pub pending: u64,
}

/// The blocked keys of one sink connection.
pub(crate) struct BlockedKeys {
    topic: String,
    producer: FutureProducer,
    keys: Mutex<HashMap<String, Blocked>>,
}

impl BlockedKeys {
    /// An empty table; [`Self::reload`] fills it.
    pub(crate) fn new(topic: &str, producer: FutureProducer) -> Self {
        Self {
            topic: topic.to_owned(),
            producer,
            keys: Mutex::default(),
        }
    }

    /// Reads the table from its topic (blocking), replacing what it held.
    pub(crate) fn reload(&self, kafka: &KafkaConfig) -> Result<(), ClassifiedError> {
        *self.keys() = read_table(kafka, &self.topic, Duration::from_secs(120))?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect();
        Ok(())
    }

    /// The state of `key`, if blocked.
    pub(crate) fn get(&self, key: &str) -> Option<Blocked> {
        self.keys().get(key).copied()
    }

    /// Keys blocked now.
    pub(crate) fn len(&self) -> usize {
        self.keys().len()
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, Blocked>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets (or, with `None`, releases) `key`, durably.
    pub(crate) async fn set(
        &self,
        key: &str,
        state: Option<Blocked>,
    ) -> Result<(), ClassifiedError> {
        if self.get(key) == state {
            return Ok(());
        }
        let payload = state.map(|s| serde_json::json!(s).to_string());
        let mut record = FutureRecord::<str, str>::to(&self.topic).key(key);
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| kafka_error("blocked-keys write", &e))?;
        let mut keys = self.keys();
        match state {
            Some(s) => keys.insert(key.to_owned(), s),
            None => keys.remove(key),
        };
        Ok(())
    }
}
