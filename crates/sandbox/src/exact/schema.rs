//! Schema switches: make the API drift the way a vendor's API does (a property renamed,
//! added, made mandatory, or sent with another JSON type), so a test can show what a
//! client does with a payload it did not expect.
//!
//! Each switch names the entity set it touches (`Accounts`, `SalesInvoices`, `Deleted`,
//! `Me`, `Divisions`); a switch on `Accounts` applies to `crm/Accounts` and to
//! `sync/CRM/Accounts` alike. Response switches change the rendered JSON only; the stored
//! record and `$filter`/`$select` keep the documented names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JSON type a [`SchemaChange::ChangeType`] turns a property into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    /// Numbers and booleans become their text; strings stay.
    String,
    /// Numeric strings become numbers; other values become null.
    Number,
    /// Always null.
    Null,
}

/// One schema switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchemaChange {
    /// Responses carry the property under a new name.
    RenameField {
        /// Entity set, e.g. `Accounts`.
        entity: String,
        /// Documented name.
        from: String,
        /// Name sent instead.
        to: String,
    },
    /// Responses carry an extra property with a fixed value.
    AddField {
        /// Entity set.
        entity: String,
        /// New property name.
        field: String,
        /// Its value in every record.
        value: Value,
    },
    /// POST bodies must carry this (documented, writable) property, else 400 `Mandatory`.
    RequireField {
        /// Entity set (`Accounts` or `SalesInvoices`).
        entity: String,
        /// The property.
        field: String,
    },
    /// Responses send the property as another JSON type.
    ChangeType {
        /// Entity set.
        entity: String,
        /// The property.
        field: String,
        /// Type it is sent as.
        to: JsonType,
    },
}

impl SchemaChange {
    fn entity(&self) -> &str {
        match self {
            SchemaChange::RenameField { entity, .. }
            | SchemaChange::AddField { entity, .. }
            | SchemaChange::RequireField { entity, .. }
            | SchemaChange::ChangeType { entity, .. } => entity,
        }
    }
}

/// Properties the switches make mandatory for POSTs to `set`.
pub(crate) fn required_fields(changes: &[SchemaChange], set: &str) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            SchemaChange::RequireField { entity, field } if entity == set => Some(field.clone()),
            _ => None,
        })
        .collect()
}

/// Applies the response switches for `set` to one rendered entity.
pub(crate) fn apply(changes: &[SchemaChange], set: &str, entity: &mut Value) {
    let Some(obj) = entity.as_object_mut() else {
        return;
    };
    for change in changes.iter().filter(|c| c.entity() == set) {
        match change {
            SchemaChange::RenameField { from, to, .. } => {
                if let Some(v) = obj.remove(from) {
                    obj.insert(to.clone(), v);
                }
            }
            SchemaChange::AddField { field, value, .. } => {
                obj.insert(field.clone(), value.clone());
            }
            SchemaChange::ChangeType { field, to, .. } => {
                if let Some(v) = obj.get_mut(field) {
                    *v = convert(v, *to);
                }
            }
            SchemaChange::RequireField { .. } => {}
        }
    }
}

fn convert(v: &Value, to: JsonType) -> Value {
    match (to, v) {
        (JsonType::Null, _) => Value::Null,
        (JsonType::String, Value::String(_) | Value::Null) => v.clone(),
        (JsonType::String, other) => Value::String(other.to_string()),
        (JsonType::Number, Value::Number(_)) => v.clone(),
        (JsonType::Number, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| s.trim().parse::<f64>().map(Value::from))
            .unwrap_or(Value::Null),
        (JsonType::Number, _) => Value::Null,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn switches_reshape_only_their_entity() {
        let changes: Vec<SchemaChange> = serde_json::from_value(json!([
            {"change": "rename_field", "entity": "Accounts", "from": "Name", "to": "AccountName"},
            {"change": "add_field", "entity": "Accounts", "field": "Segment", "value": "B2B"},
            {"change": "change_type", "entity": "Accounts", "field": "Code", "to": "number"},
            {"change": "change_type", "entity": "Accounts", "field": "Timestamp", "to": "string"},
            {"change": "require_field", "entity": "Accounts", "field": "Email"}
        ]))
        .unwrap();
        let mut a = json!({"Name": "Acme", "Code": "                25", "Timestamp": 7});
        apply(&changes, "Accounts", &mut a);
        assert_eq!(
            a,
            json!({"AccountName": "Acme", "Segment": "B2B", "Code": 25, "Timestamp": "7"})
        );
        let mut other = json!({"Name": "x"});
        apply(&changes, "SalesInvoices", &mut other);
        assert_eq!(other, json!({"Name": "x"}));
        assert_eq!(
            required_fields(&changes, "Accounts"),
            vec!["Email".to_owned()]
        );
    }
}
