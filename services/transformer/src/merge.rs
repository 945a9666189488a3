//! Conflict rules: how a change from one source is merged into the canonical record that
//! several sources write.
//!
//! Every field remembers where its value came from (source connection, source timestamp,
//! event). An incoming change is applied field by field under the field's
//! [`FieldPolicy`]; the decision depends on source timestamps and priorities only, never on
//! arrival order, so out-of-order delivery and replays converge on the same record.
//!
//! Two habits hold under every rule:
//! - a source that sends `null` for a field another source filled does not erase it (systems
//!   that do not know a field must not clear it); the same source can clear its own value;
//! - a change that leaves every value as it was is not a change: this is how an echo (a
//!   webhook that only reports what Switchboard wrote to that system) is recognised.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_core::policy::FieldPolicy;

/// One field's value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldVersion {
    /// The value (JSON as the mapping produced it).
    pub value: Value,
    /// Connection that wrote it (or `review` for a human decision).
    pub source: String,
    /// Source timestamp, epoch milliseconds.
    pub ts: i64,
    /// Event that carried it.
    pub event: String,
}

/// What the transformer knows about one canonical record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// Canonical entity.
    pub entity: String,
    /// Current fields with provenance.
    pub fields: BTreeMap<String, FieldVersion>,
    /// Fields held for review: the competing versions, oldest first.
    #[serde(default)]
    pub held: BTreeMap<String, Vec<FieldVersion>>,
    /// Mapping that last wrote this record, per source connection.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// Whether the record is deleted.
    #[serde(default)]
    pub deleted: bool,
    /// The source record of the last change, for records written without a source change
    /// (a review decision).
    #[serde(default)]
    pub last: Option<SourceRef>,
}

/// A source record at one point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Connection.
    pub connection: String,
    /// Source entity.
    pub entity: String,
    /// Native ID.
    pub record_id: String,
    /// Source timestamp, epoch milliseconds.
    pub ts: Option<i64>,
}

/// A change as the merge sees it.
pub struct Change<'a> {
    /// Source connection.
    pub source: &'a str,
    /// Source timestamp, epoch milliseconds.
    pub ts: i64,
    /// Event ID.
    pub event: &'a str,
    /// Mapping that produced `fields`.
    pub mapping: &'a str,
    /// The source deleted the record.
    pub deleted: bool,
    /// The mapped business fields.
    pub fields: &'a Map<String, Value>,
}

/// What a merge did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// The canonical record's content changed (a value, the deleted flag, or the mapping
    /// of this source): a new canonical record must be written.
    pub changed: bool,
    /// The state changed (possibly provenance only): the state must be written.
    pub state_changed: bool,
    /// Fields that became or stay held for review because of this change.
    pub held: Vec<String>,
}

/// Merges `change` into `state` under `policy(field)`.
pub fn merge<'p>(
    state: &mut RecordState,
    change: &Change<'_>,
    policy: impl Fn(&str) -> &'p FieldPolicy,
) -> Outcome {
    let mut outcome = Outcome::default();
    // A source's first mapping is only noted; a different mapping for a known source (a
    // rollout or a rollback) rewrites the record even when no value moves.
    let previous = state
        .mappings
        .insert(change.source.to_owned(), change.mapping.to_owned());
    if previous.as_deref() != Some(change.mapping) {
        outcome.state_changed = true;
        outcome.changed |= previous.is_some();
    }
    if state.deleted != change.deleted {
        state.deleted = change.deleted;
        outcome.changed = true;
        outcome.state_changed = true;
    }
    for (field, value) in change.fields {
        let incoming = FieldVersion {
            value: value.clone(),
            source: change.source.to_owned(),
            ts: change.ts,
            event: change.event.to_owned(),
        };
        if let Some(versions) = state.held.get_mut(field) {
            if !versions.iter().any(|v| v.event == incoming.event) {
                versions.push(incoming);
                outcome.state_changed = true;
            }
            outcome.held.push(field.clone());
            continue;
        }
        let Some(current) = state.fields.get(field) else {
            outcome.changed |= !value.is_null();
            outcome.state_changed = true;
            state.fields.insert(field.clone(), incoming);
            continue;
        };
        if *current == incoming {
            continue;
        }
        let same_value = current.value == incoming.value;
        if value.is_null() && current.source != change.source {
            continue;
        }
        match decide(current, &incoming, policy(field)) {
            Decision::Keep => {}
            Decision::Take => {
                outcome.changed |= !same_value;
                outcome.state_changed = true;
                state.fields.insert(field.clone(), incoming);
            }
            Decision::Hold if same_value => {}
            Decision::Hold => {
                state
                    .held
                    .insert(field.clone(), vec![current.clone(), incoming]);
                outcome.state_changed = true;
                outcome.held.push(field.clone());
            }
        }
    }
    outcome
}

/// Applies a human decision: `field` takes `value` and is released.
pub fn decide_review(state: &mut RecordState, field: &str, value: Value, event: &str) -> bool {
    let Some(versions) = state.held.remove(field) else {
        return false;
    };
    let ts = versions.iter().map(|v| v.ts).max().unwrap_or_default();
    state.fields.insert(
        field.to_owned(),
        FieldVersion {
            value,
            source: "review".to_owned(),
            ts,
            event: event.to_owned(),
        },
    );
    true
}

enum Decision {
    Keep,
    Take,
    Hold,
}

fn decide(current: &FieldVersion, incoming: &FieldVersion, policy: &FieldPolicy) -> Decision {
    // Ties go to the incoming version: a replay of the same event must be able to rewrite
    // its own output (for example after a mapping rollback).
    let newer = || {
        if incoming.ts >= current.ts {
            Decision::Take
        } else {
            Decision::Keep
        }
    };
    match policy {
        FieldPolicy::LastWriteWins => newer(),
        FieldPolicy::SourcePriority { order } => {
            let rank = |source: &str| order.iter().position(|s| s == source).unwrap_or(usize::MAX);
            let (mine, theirs) = (rank(&incoming.source), rank(&current.source));
            if current.value.is_null() || mine < theirs {
                Decision::Take
            } else if mine == theirs {
                newer()
            } else {
                Decision::Keep
            }
        }
        FieldPolicy::Review { window_secs } => {
            let window = i64::try_from(*window_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000);
            if incoming.source != current.source
                && (incoming.ts - current.ts).abs() <= window
                && !current.value.is_null()
            {
                Decision::Hold
            } else {
                newer()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change<'a>(
        source: &'a str,
        ts: i64,
        event: &'a str,
        fields: &'a Map<String, Value>,
    ) -> Change<'a> {
        Change {
            source,
            ts,
            event,
            mapping: "m.v1",
            deleted: false,
            fields,
        }
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn value<'a>(state: &'a RecordState, field: &str) -> &'a Value {
        &state.fields[field].value
    }

    #[test]
    fn last_write_wins_by_source_time_not_arrival() {
        let lww = FieldPolicy::LastWriteWins;
        let mut state = RecordState::default();
        let newer = fields(json!({"email": "new@x.com"}));
        let older = fields(json!({"email": "old@x.com"}));
        assert!(merge(&mut state, &change("shop", 2000, "e2", &newer), |_| &lww).changed);
        let late = merge(&mut state, &change("crm", 1000, "e1", &older), |_| &lww);
        assert!(!late.changed);
        assert_eq!(value(&state, "email"), "new@x.com");
    }

    #[test]
    fn source_priority_holds_against_newer_lower_sources() {
        let rule = FieldPolicy::SourcePriority {
            order: vec!["crm".into(), "shop".into()],
        };
        let mut state = RecordState::default();
        let shop = fields(json!({"phone": "+31 1"}));
        let crm = fields(json!({"phone": "+31 2"}));
        let shop_later = fields(json!({"phone": "+31 3"}));
        merge(&mut state, &change("shop", 1000, "a", &shop), |_| &rule);
        assert!(merge(&mut state, &change("crm", 500, "b", &crm), |_| &rule).changed);
        assert!(
            !merge(&mut state, &change("shop", 9000, "c", &shop_later), |_| {
                &rule
            })
            .changed
        );
        assert_eq!(value(&state, "phone"), "+31 2");
    }

    #[test]
    fn a_lower_source_fills_a_field_the_higher_one_left_empty() {
        let rule = FieldPolicy::SourcePriority {
            order: vec!["crm".into(), "shop".into()],
        };
        let mut state = RecordState::default();
        let crm = fields(json!({"phone": null}));
        let shop = fields(json!({"phone": "+31 1"}));
        merge(&mut state, &change("crm", 1000, "a", &crm), |_| &rule);
        assert!(merge(&mut state, &change("shop", 900, "b", &shop), |_| &rule).changed);
        assert_eq!(value(&state, "phone"), "+31 1");
    }

    #[test]
    fn review_holds_a_field_edited_by_two_sources_within_the_window() {
        let rule = FieldPolicy::Review { window_secs: 60 };
        let mut state = RecordState::default();
        let shop = fields(json!({"last_name": "Lovelace"}));
        let crm = fields(json!({"last_name": "King"}));
        let crm_again = fields(json!({"last_name": "Byron"}));
        merge(&mut state, &change("shop", 10_000, "a", &shop), |_| &rule);
        let out = merge(&mut state, &change("crm", 40_000, "b", &crm), |_| &rule);
        assert_eq!(out.held, vec!["last_name".to_owned()]);
        assert!(!out.changed);
        assert_eq!(value(&state, "last_name"), "Lovelace");
        // Held: later edits join the review instead of winning.
        merge(&mut state, &change("crm", 900_000, "c", &crm_again), |_| {
            &rule
        });
        assert_eq!(value(&state, "last_name"), "Lovelace");
        assert_eq!(state.held["last_name"].len(), 3);
        assert!(decide_review(&mut state, "last_name", json!("King"), "d"));
        assert_eq!(value(&state, "last_name"), "King");
        assert!(state.held.is_empty());
    }

    #[test]
    fn review_outside_the_window_is_last_write_wins() {
        let rule = FieldPolicy::Review { window_secs: 60 };
        let mut state = RecordState::default();
        let shop = fields(json!({"last_name": "Lovelace"}));
        let crm = fields(json!({"last_name": "King"}));
        merge(&mut state, &change("shop", 0, "a", &shop), |_| &rule);
        let out = merge(&mut state, &change("crm", 61_000, "b", &crm), |_| &rule);
        assert!(out.changed && out.held.is_empty());
    }

    #[test]
    fn an_echo_of_the_same_values_changes_nothing() {
        let lww = FieldPolicy::LastWriteWins;
        let mut state = RecordState::default();
        let shop = fields(json!({"email": "a@x.com", "first_name": "Ada", "phone": "1"}));
        merge(&mut state, &change("shop", 1000, "a", &shop), |_| &lww);
        // The target system reports what Switchboard wrote, minus a field it does not keep.
        let echo = fields(json!({"email": "a@x.com", "first_name": "Ada", "phone": null}));
        let out = merge(&mut state, &change("crm", 2000, "b", &echo), |_| &lww);
        assert!(!out.changed);
        assert_eq!(value(&state, "phone"), "1");
        assert_eq!(
            state.fields["email"].source, "crm",
            "provenance moves to the newer source"
        );
        let again = merge(&mut state, &change("crm", 3000, "c", &echo), |_| &lww);
        assert!(!again.changed);
    }

    #[test]
    fn a_replay_with_another_mapping_rewrites_the_record() {
        let lww = FieldPolicy::LastWriteWins;
        let mut state = RecordState::default();
        let v2 = fields(json!({"email": "A@X.COM"}));
        let v1 = fields(json!({"email": "a@x.com"}));
        let mut first = change("shop", 1000, "a", &v2);
        first.mapping = "m.v2";
        merge(&mut state, &first, |_| &lww);
        let out = merge(&mut state, &change("shop", 1000, "a", &v1), |_| &lww);
        assert!(out.changed);
        assert_eq!(value(&state, "email"), "a@x.com");
        assert_eq!(state.mappings["shop"], "m.v1");
    }
}
