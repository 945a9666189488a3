//! The emulator's data: divisions with their accounts, sales invoices and deletion log,
//! the rowversion counters behind `Timestamp`, and a change log tests check sync clients
//! against.
//!
//! Contract facts followed (saas-contracts.md §3.4–§3.5):
//! - `Timestamp` is a rowversion (Int64) with no link to clock time: every insert or update
//!   gets a value higher than any existing one in its database. Deletes are recorded in
//!   `sync/Deleted` with a Timestamp from the same counter and `EntityType` 2 (Accounts) or
//!   13 (SalesInvoices).
//! - A division moved to another database gets new, unrelated timestamps, and clients
//!   must resync in full; `DivisionMoveDate` on `system/Divisions` shows it.
//!
//! Emulator choices: all divisions start in one database with one counter (a "global
//! rowversion"). The counter starts above `i32::MAX` so a client that stores the cursor in
//! a 32-bit integer breaks at once, as it eventually would against the real API. A move
//! puts the division in a new database whose counter restarts from the configured base,
//! i.e. **below** the values clients have seen (the hazardous case); the division's
//! deletion log does not move with it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::entities::{ENTITY_TYPE_ACCOUNTS, ENTITY_TYPE_SALES_INVOICES};
use super::query::Row;
use super::values::Val;

/// The two emulated entity kinds, as the change log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Entity {
    /// `crm/Accounts`.
    Account,
    /// `salesinvoice/SalesInvoices`.
    SalesInvoice,
}

impl Entity {
    /// `EntityType` in `sync/Deleted`.
    pub fn deleted_type(self) -> i64 {
        match self {
            Entity::Account => ENTITY_TYPE_ACCOUNTS,
            Entity::SalesInvoice => ENTITY_TYPE_SALES_INVOICES,
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    /// A new record.
    Insert,
    /// A changed record.
    Update,
    /// A deleted record (its `sync/Deleted` entry carries this Timestamp).
    Delete,
}

/// One entry of the emulator's change log: every insert, update and delete with the
/// Timestamp it was given, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The rowversion given to the change.
    pub timestamp: i64,
    /// The division the record lives in.
    pub division: i32,
    /// Which entity set.
    pub entity: Entity,
    /// The record's key (`ID` or `InvoiceID`).
    pub id: Uuid,
    /// Insert, update or delete.
    pub kind: ChangeKind,
}

/// A stored record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub fields: Row,
    pub timestamp: i64,
    /// Sales invoice lines as posted (not served; `SalesInvoiceLines` is deferred).
    pub lines: Vec<Value>,
}

/// One `sync/Deleted` entry.
#[derive(Debug, Clone)]
pub(crate) struct DeletedEntry {
    pub id: Uuid,
    pub entity_key: Uuid,
    pub entity_type: i64,
    pub timestamp: i64,
}

/// One division (administration).
#[derive(Debug)]
pub(crate) struct Division {
    pub description: String,
    db: usize,
    pub accounts: BTreeMap<Uuid, Record>,
    pub invoices: BTreeMap<Uuid, Record>,
    pub deleted: Vec<DeletedEntry>,
    pub next_invoice_number: i64,
    /// Wall-clock ms of the last move, if any.
    pub move_date: Option<i64>,
}

impl Division {
    pub fn records(&self, entity: Entity) -> &BTreeMap<Uuid, Record> {
        match entity {
            Entity::Account => &self.accounts,
            Entity::SalesInvoice => &self.invoices,
        }
    }

    fn records_mut(&mut self, entity: Entity) -> &mut BTreeMap<Uuid, Record> {
        match entity {
            Entity::Account => &mut self.accounts,
            Entity::SalesInvoice => &mut self.invoices,
        }
    }
}

/// Every division, the rowversion counters and the change log.
#[derive(Debug)]
pub(crate) struct Store {
    pub divisions: BTreeMap<i32, Division>,
    /// Last rowversion given out, per database.
    counters: Vec<i64>,
    base: i64,
    pub changes: Vec<Change>,
}

impl Store {
    pub fn new(divisions: &[i32], timestamp_base: i64) -> Self {
        Self {
            divisions: divisions
                .iter()
                .map(|code| {
                    let division = Division {
                        description: format!("Sandbox administration {code}"),
                        db: 0,
                        accounts: BTreeMap::new(),
                        invoices: BTreeMap::new(),
                        deleted: Vec::new(),
                        next_invoice_number: 1,
                        move_date: None,
                    };
                    (*code, division)
                })
                .collect(),
            counters: vec![timestamp_base],
            base: timestamp_base,
            changes: Vec::new(),
        }
    }

    fn next_timestamp(&mut self, division: i32) -> i64 {
        let db = self.divisions.get(&division).map_or(0, |d| d.db);
        let counter = &mut self.counters[db];
        *counter += 1;
        *counter
    }

    fn log(&mut self, timestamp: i64, division: i32, entity: Entity, id: Uuid, kind: ChangeKind) {
        self.changes.push(Change {
            timestamp,
            division,
            entity,
            id,
            kind,
        });
    }

    /// Stores a new record (fields complete, key included) and logs the insert.
    pub fn insert(
        &mut self,
        division: i32,
        entity: Entity,
        id: Uuid,
        fields: Row,
        lines: Vec<Value>,
    ) {
        let timestamp = self.next_timestamp(division);
        if let Some(d) = self.divisions.get_mut(&division) {
            d.records_mut(entity).insert(
                id,
                Record {
                    fields,
                    timestamp,
                    lines,
                },
            );
        }
        self.log(timestamp, division, entity, id, ChangeKind::Insert);
    }

    /// Merges `patch` into a record and logs the update; false when there is none.
    pub fn update(&mut self, division: i32, entity: Entity, id: Uuid, patch: Row) -> bool {
        let exists = self
            .divisions
            .get(&division)
            .is_some_and(|d| d.records(entity).contains_key(&id));
        if !exists {
            return false;
        }
        let timestamp = self.next_timestamp(division);
        if let Some(record) = self
            .divisions
            .get_mut(&division)
            .and_then(|d| d.records_mut(entity).get_mut(&id))
        {
            record.fields.extend(patch);
            record.timestamp = timestamp;
        }
        self.log(timestamp, division, entity, id, ChangeKind::Update);
        true
    }

    /// Removes a record, adds its `sync/Deleted` entry and logs the delete.
    pub fn delete(&mut self, division: i32, entity: Entity, id: Uuid) -> bool {
        let removed = self
            .divisions
            .get_mut(&division)
            .and_then(|d| d.records_mut(entity).remove(&id))
            .is_some();
        if !removed {
            return false;
        }
        let timestamp = self.next_timestamp(division);
        if let Some(d) = self.divisions.get_mut(&division) {
            d.deleted.push(DeletedEntry {
                id: Uuid::new_v4(),
                entity_key: id,
                entity_type: entity.deleted_type(),
                timestamp,
            });
        }
        self.log(timestamp, division, entity, id, ChangeKind::Delete);
        true
    }

    /// Moves a division to a new database: fresh, lower timestamps for every record, an
    /// empty deletion log, and `DivisionMoveDate` set. False for an unknown division.
    pub fn move_division(&mut self, division: i32, now_local_ms: i64) -> bool {
        let Some(d) = self.divisions.get_mut(&division) else {
            return false;
        };
        self.counters.push(self.base);
        d.db = self.counters.len() - 1;
        d.deleted.clear();
        d.move_date = Some(now_local_ms);
        let mut next = self.base;
        // Re-stamp in the old order, so relative order survives while values restart.
        let mut all: Vec<(i64, Entity, Uuid)> = Vec::new();
        for entity in [Entity::Account, Entity::SalesInvoice] {
            all.extend(
                d.records(entity)
                    .iter()
                    .map(|(id, r)| (r.timestamp, entity, *id)),
            );
        }
        all.sort();
        for (_, entity, id) in all {
            next += 1;
            if let Some(r) = d.records_mut(entity).get_mut(&id) {
                r.timestamp = next;
            }
        }
        self.counters[d.db] = next;
        true
    }

    /// Rows of live records, with `Timestamp` added when `with_timestamp`.
    pub fn rows(&self, division: i32, entity: Entity, with_timestamp: bool) -> Vec<Row> {
        let Some(d) = self.divisions.get(&division) else {
            return Vec::new();
        };
        d.records(entity)
            .values()
            .map(|r| {
                let mut row = r.fields.clone();
                if with_timestamp {
                    row.insert("Timestamp", Val::Int(r.timestamp));
                }
                row
            })
            .collect()
    }

    /// `sync/Deleted` rows of a division.
    pub fn deleted_rows(&self, division: i32) -> Vec<Row> {
        let Some(d) = self.divisions.get(&division) else {
            return Vec::new();
        };
        d.deleted
            .iter()
            .map(|e| {
                Row::from([
                    ("Timestamp", Val::Int(e.timestamp)),
                    ("Division", Val::Int(i64::from(division))),
                    ("EntityKey", Val::Guid(e.entity_key)),
                    ("EntityType", Val::Int(e.entity_type)),
                    ("ID", Val::Guid(e.id)),
                ])
            })
            .collect()
    }

    /// One record's fields.
    pub fn get(&self, division: i32, entity: Entity, id: Uuid) -> Option<&Record> {
        self.divisions.get(&division)?.records(entity).get(&id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_change_gets_a_higher_timestamp_and_deletes_are_logged() {
        let mut s = Store::new(&[1, 2], 100);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        s.insert(1, Entity::Account, a, Row::new(), Vec::new());
        s.insert(2, Entity::Account, b, Row::new(), Vec::new());
        assert!(s.update(
            1,
            Entity::Account,
            a,
            Row::from([("Name", Val::Str("x".into()))])
        ));
        assert!(
            !s.update(1, Entity::Account, b, Row::new()),
            "b lives in division 2"
        );
        assert!(s.delete(1, Entity::Account, a));
        assert!(!s.delete(1, Entity::Account, a));
        let stamps: Vec<i64> = s.changes.iter().map(|c| c.timestamp).collect();
        assert_eq!(stamps, vec![101, 102, 103, 104]);
        let deleted = s.deleted_rows(1);
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0]["Timestamp"], Val::Int(104));
        assert_eq!(deleted[0]["EntityType"], Val::Int(2));
    }

    #[test]
    fn a_division_move_restarts_its_timestamps_lower() {
        let mut s = Store::new(&[1, 2], 100);
        for i in 0..3 {
            s.insert(
                1,
                Entity::Account,
                Uuid::from_u128(i),
                Row::new(),
                Vec::new(),
            );
        }
        s.insert(
            2,
            Entity::Account,
            Uuid::from_u128(9),
            Row::new(),
            Vec::new(),
        );
        assert!(s.move_division(1, 0));
        let stamps: Vec<_> = s
            .rows(1, Entity::Account, true)
            .iter()
            .map(|r| r["Timestamp"].clone())
            .collect();
        assert_eq!(stamps, vec![Val::Int(101), Val::Int(102), Val::Int(103)]);
        s.insert(
            1,
            Entity::Account,
            Uuid::from_u128(5),
            Row::new(),
            Vec::new(),
        );
        assert_eq!(s.changes.last().unwrap().timestamp, 104);
        s.insert(
            2,
            Entity::Account,
            Uuid::from_u128(6),
            Row::new(),
            Vec::new(),
        );
        assert_eq!(
            s.changes.last().unwrap().timestamp,
            105,
            "division 2 stays on the old counter"
        );
    }
}
