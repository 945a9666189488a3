//! The transformer's state tables, materialized in memory from compacted topics:
//! `sb.xref` (identity) and `sb.transformer.state` (field provenance for the conflict rules).
//!
//! Both are loaded at start from committed records only, and every change to them is
//! written in the same Kafka transaction as the canonical record it explains. Changes made
//! while a transaction is open are logged, so an aborted transaction is undone in memory
//! too: the tables always equal what the topics hold.
//!
//! Limit: each replica keeps its own copy and only sees its own changes after start. Two
//! replicas can work on one canonical record when its sources' raw partitions are owned by
//! different replicas; then the last writer's view of that record wins. Run one replica per
//! flow set when strict cross-source merging matters (SMB volumes fit one replica easily).

use std::collections::HashMap;
use std::time::Duration;

use switchboard_core::config::KafkaConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::read_table;

use crate::identity::XrefEntry;
use crate::merge::RecordState;

/// In-memory copies of the state topics, with an undo log for the open transaction.
#[derive(Default)]
pub struct Tables {
    /// Identity links.
    pub xref: HashMap<String, XrefEntry>,
    /// Merge state per canonical ID.
    pub records: HashMap<String, RecordState>,
    undo: Vec<Undo>,
}

enum Undo {
    Xref(String, Option<XrefEntry>),
    Record(String, Option<RecordState>),
}

impl Tables {
    /// Loads both tables from their topics (blocking; at start-up).
    pub fn load(
        kafka: &KafkaConfig,
        xref_topic: &str,
        state_topic: &str,
    ) -> Result<Self, ClassifiedError> {
        let timeout = Duration::from_secs(120);
        let xref = read_table(kafka, xref_topic, timeout)?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect();
        let records = read_table(kafka, state_topic, timeout)?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect();
        Ok(Self {
            xref,
            records,
            undo: Vec::new(),
        })
    }

    /// Sets an xref entry inside the open transaction.
    pub fn set_xref(&mut self, key: String, entry: XrefEntry) {
        let old = self.xref.insert(key.clone(), entry);
        self.undo.push(Undo::Xref(key, old));
    }

    /// Replaces a record's state inside the open transaction.
    pub fn set_record(&mut self, id: String, state: RecordState) {
        let old = self.records.insert(id.clone(), state);
        self.undo.push(Undo::Record(id, old));
    }

    /// The open transaction committed: its changes stay.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The open transaction aborted: its changes are undone, newest first.
    pub fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Xref(k, Some(v)) => {
                    self.xref.insert(k, v);
                }
                Undo::Xref(k, None) => {
                    self.xref.remove(&k);
                }
                Undo::Record(k, Some(v)) => {
                    self.records.insert(k, v);
                }
                Undo::Record(k, None) => {
                    self.records.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_what_the_topics_hold() {
        let mut tables = Tables::default();
        let entry = |id: &str| XrefEntry {
            canonical_id: id.into(),
            entity: "contact".into(),
        };
        tables.set_xref("a".into(), entry("1"));
        tables.commit();
        tables.set_xref("a".into(), entry("2"));
        tables.set_xref("b".into(), entry("3"));
        tables.set_record("1".into(), RecordState::default());
        tables.rollback();
        assert_eq!(tables.xref.len(), 1);
        assert_eq!(tables.xref["a"].canonical_id, "1");
        assert!(tables.records.is_empty());
    }
}
