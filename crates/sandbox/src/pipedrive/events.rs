//! Change events of persons, organizations and deals, and their webhook v2 shapes.
//!
//! Contract facts followed (saas-contracts.md §2.1, Pipedrive's "Guide for Webhooks v2"
//! and "Webhooks v2 migration guide"):
//! - `data`/`previous` by action: create → current state / null; change → current state /
//!   **only the fields that changed** (with their old values); delete → null / last state.
//!   One edit fires one `change` event.
//! - `data` holds the key fields; custom fields sit in `data.custom_fields` as typed objects
//!   such as `{"type":"varchar","value":"..."}` or `{"type":"monetary","value":200,
//!   "currency":"EUR"}`; the official person example carries `visible_to` as a string
//!   (`"3"`) and a `label` field.
//!
//! Emulator choices: `data` is the v2 API object minus `is_deleted` (the action says it),
//! with `visible_to` as a string and typed custom fields; persons also get `label` (their
//! first label ID, or null) as in the official example. `update_time` never counts as a
//! change on its own, so an edit that changes nothing fires no event; `previous.
//! custom_fields` holds only the changed keys. Without a field registry the custom-field
//! type is guessed from the value: string → `varchar`, number → `double`, boolean →
//! `boolean`, array → `set` of option IDs, object with `currency` → `monetary`, any other
//! object is passed through (it is assumed to be typed already).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::deal_model::Deal;
use super::model::Person;
use super::org_model::Organization;

/// The record types the emulator serves and sends webhooks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// A person (`/api/v2/persons`).
    Person,
    /// An organization (`/api/v2/organizations`).
    Organization,
    /// A deal (`/api/v2/deals`).
    Deal,
}

impl Entity {
    /// The webhook `meta.entity` / `event_object` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Organization => "organization",
            Self::Deal => "deal",
        }
    }

    /// The entity an API path serves, if any.
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/api/v2/")?;
        let collection = rest.split('/').next()?;
        match collection {
            "persons" => Some(Self::Person),
            "organizations" => Some(Self::Organization),
            "deals" => Some(Self::Deal),
            _ => None,
        }
    }
}

/// What happened to a record (`meta.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Created.
    Create,
    /// Changed.
    Change,
    /// Deleted.
    Delete,
}

impl Action {
    /// The webhook `meta.action` / `event_action` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Change => "change",
            Self::Delete => "delete",
        }
    }
}

/// Who made the change (`meta.change_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// Through the API.
    Api,
    /// In the web app (the emulator's demo triggers).
    App,
}

impl ChangeSource {
    /// The `meta.change_source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::App => "app",
        }
    }
}

/// One change, ready to be sent to every matching webhook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// `meta.id`: the event's UUID, the same on every attempt.
    pub id: Uuid,
    /// `meta.correlation_id`.
    pub correlation_id: Uuid,
    pub entity: Entity,
    pub action: Action,
    pub entity_id: u64,
    pub data: Option<Value>,
    pub previous: Option<Value>,
    pub change_source: ChangeSource,
    pub at: OffsetDateTime,
}

impl Event {
    fn new(
        entity: Entity,
        action: Action,
        entity_id: u64,
        source: ChangeSource,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            entity,
            action,
            entity_id,
            data: None,
            previous: None,
            change_source: source,
            at,
        }
    }

    /// A create: `data` is the new state, `previous` null.
    pub fn created(
        entity: Entity,
        id: u64,
        data: Value,
        source: ChangeSource,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            data: Some(data),
            ..Self::new(entity, Action::Create, id, source, at)
        }
    }

    /// A change, or none when nothing but `update_time` differs.
    pub fn changed(
        entity: Entity,
        id: u64,
        before: &Value,
        after: Value,
        source: ChangeSource,
        at: OffsetDateTime,
    ) -> Option<Self> {
        let previous = changed_fields(before, &after)?;
        Some(Self {
            data: Some(after),
            previous: Some(previous),
            ..Self::new(entity, Action::Change, id, source, at)
        })
    }

    /// A delete: `data` null, `previous` the last state.
    pub fn deleted(
        entity: Entity,
        id: u64,
        last: Value,
        source: ChangeSource,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            previous: Some(last),
            ..Self::new(entity, Action::Delete, id, source, at)
        }
    }
}

/// The webhook `data` of a person.
pub(crate) fn person_data(person: &Person) -> Value {
    let mut data = webhook_shape(serde_json::to_value(person).unwrap_or(Value::Null));
    if let Some(obj) = data.as_object_mut() {
        obj.insert("label".to_owned(), json!(person.label_ids.first()));
    }
    data
}

/// The webhook `data` of an organization.
pub(crate) fn organization_data(org: &Organization) -> Value {
    webhook_shape(serde_json::to_value(org).unwrap_or(Value::Null))
}

/// The webhook `data` of a deal.
pub(crate) fn deal_data(deal: &Deal) -> Value {
    webhook_shape(serde_json::to_value(deal).unwrap_or(Value::Null))
}

fn webhook_shape(mut api: Value) -> Value {
    if let Some(obj) = api.as_object_mut() {
        obj.remove("is_deleted");
        if let Some(vis) = obj.get("visible_to").and_then(Value::as_u64) {
            obj.insert("visible_to".to_owned(), Value::String(vis.to_string()));
        }
        if let Some(Value::Object(fields)) = obj.get("custom_fields") {
            let typed: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), typed_custom_field(v)))
                .collect();
            obj.insert("custom_fields".to_owned(), Value::Object(typed));
        }
    }
    api
}

fn typed_custom_field(value: &Value) -> Value {
    match value {
        Value::String(_) => json!({ "type": "varchar", "value": value }),
        Value::Number(_) => json!({ "type": "double", "value": value }),
        Value::Bool(_) => json!({ "type": "boolean", "value": value }),
        Value::Array(items) => {
            let values: Vec<Value> = items.iter().map(|id| json!({ "id": id })).collect();
            json!({ "type": "set", "values": values })
        }
        Value::Object(obj) if obj.contains_key("currency") && !obj.contains_key("type") => {
            let mut typed = obj.clone();
            typed.insert("type".to_owned(), json!("monetary"));
            Value::Object(typed)
        }
        other => other.clone(),
    }
}

/// The old values of the fields that differ between two webhook shapes; `update_time`
/// alone is no change. Custom fields are compared key by key.
pub(crate) fn changed_fields(before: &Value, after: &Value) -> Option<Value> {
    let (Some(old), Some(new)) = (before.as_object(), after.as_object()) else {
        return None;
    };
    let mut previous = Map::new();
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    for key in keys {
        if key == "update_time" {
            continue;
        }
        let (was, now) = (old.get(key), new.get(key));
        if was == now {
            continue;
        }
        if key == "custom_fields"
            && let (Some(Value::Object(was)), Some(Value::Object(now))) = (was, now)
        {
            let mut fields = Map::new();
            for k in was
                .keys()
                .chain(now.keys().filter(|k| !was.contains_key(*k)))
            {
                if was.get(k) != now.get(k) {
                    fields.insert(k.clone(), was.get(k).cloned().unwrap_or(Value::Null));
                }
            }
            previous.insert(key.clone(), Value::Object(fields));
            continue;
        }
        previous.insert(key.clone(), was.cloned().unwrap_or(Value::Null));
    }
    (!previous.is_empty()).then_some(Value::Object(previous))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn previous_holds_only_the_changed_fields_with_old_values() {
        let before = json!({"id": 8, "name": "Sample", "first_name": "Sample", "org_id": 1,
            "update_time": "2022-11-24T13:18:55Z", "custom_fields": {"a": {"type": "varchar", "value": "x"}, "b": null}});
        let after = json!({"id": 8, "name": "Sample Person", "first_name": "Sample Person", "org_id": 1,
            "update_time": "2022-11-24T15:18:35Z", "custom_fields": {"a": {"type": "varchar", "value": "y"}, "b": null}});
        assert_eq!(
            changed_fields(&before, &after).unwrap(),
            json!({"name": "Sample", "first_name": "Sample",
                   "custom_fields": {"a": {"type": "varchar", "value": "x"}}})
        );
        let touched = json!({"id": 8, "update_time": "2030-01-01T00:00:00Z"});
        let same = json!({"id": 8, "update_time": "2022-01-01T00:00:00Z"});
        assert_eq!(changed_fields(&same, &touched), None);
    }

    #[test]
    fn custom_fields_are_typed_and_visible_to_is_a_string() {
        let api = json!({"id": 1, "is_deleted": false, "visible_to": 3, "custom_fields": {
            "s": "sb-1", "n": 200, "set": [13, 14], "m": {"value": 200, "currency": "EUR"}}});
        let shaped = webhook_shape(api);
        assert_eq!(shaped["visible_to"], json!("3"));
        assert!(shaped.get("is_deleted").is_none());
        assert_eq!(
            shaped["custom_fields"],
            json!({"s": {"type": "varchar", "value": "sb-1"},
                   "n": {"type": "double", "value": 200},
                   "set": {"type": "set", "values": [{"id": 13}, {"id": 14}]},
                   "m": {"type": "monetary", "value": 200, "currency": "EUR"}})
        );
    }

    #[test]
    fn entities_come_from_api_paths() {
        assert_eq!(Entity::from_path("/api/v2/persons/3"), Some(Entity::Person));
        assert_eq!(
            Entity::from_path("/api/v2/organizations/search"),
            Some(Entity::Organization)
        );
        assert_eq!(Entity::from_path("/api/v2/deals"), Some(Entity::Deal));
        assert_eq!(Entity::from_path("/v1/webhooks"), None);
    }
}
