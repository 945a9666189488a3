//! Schema switches: deliberate drift of the shapes the emulator sends, so a test can prove
//! that a connector notices (and survives) Pipedrive changing a payload under it.
//!
//! A switch is one change, e.g. `{"rename":{"from":"emails","to":"email"}}`,
//! `{"add":{"field":"lifecycle","value":"lead"}}` (a new required field) or
//! `{"change_type":{"field":"id","to":"string"}}`, optionally limited with
//! `"target":"webhooks"|"api"|"both"` (default both) and `"entity":"person"|
//! "organization"|"deal"`. It applies to record objects only: the webhook `data` and
//! `previous` (`add` only to `data`, since `previous` lists changed fields), and in API
//! answers `data` (one record or a list) and search `data.items[].item`. Envelopes, `meta`
//! and error bodies are never touched, so the drift looks like Pipedrive's own.
//!
//! Conversions for `change_type`: to `string` writes non-strings as their JSON text; to
//! `number` parses strings (0 when unparsable), maps booleans to 1/0 and containers to
//! their length; to `boolean` uses truthiness; to `array` wraps a non-array; to `object`
//! wraps a non-object as `{"value": ..}`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::events::Entity;
use super::state::Shared;

/// Where a switch applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaTarget {
    /// Webhook payloads and API answers.
    #[default]
    Both,
    /// Webhook payloads only.
    Webhooks,
    /// API answers only.
    Api,
}

/// A JSON type `change_type` converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    /// A string.
    String,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// Rename field `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The field's name today.
    pub from: String,
    /// The name it is sent under.
    pub to: String,
}

/// Add field `field` with `value` to every record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddField {
    /// The new field.
    pub field: String,
    /// Its value.
    pub value: Value,
}

/// Send field `field` as another JSON type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeType {
    /// The field.
    pub field: String,
    /// The type it is sent as.
    pub to: JsonType,
}

/// One schema change; exactly one of `rename`, `add`, `change_type` is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSwitch {
    /// Rename a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<Rename>,
    /// Add a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<AddField>,
    /// Change a field's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// Webhooks, API or both.
    #[serde(default)]
    pub target: SchemaTarget,
    /// Only this record type; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity>,
}

impl SchemaSwitch {
    /// Renames `from` to `to`, everywhere.
    pub fn rename(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            rename: Some(Rename {
                from: from.into(),
                to: to.into(),
            }),
            ..Self::default()
        }
    }

    /// Adds `field` with `value`, everywhere.
    pub fn add(field: impl Into<String>, value: Value) -> Self {
        Self {
            add: Some(AddField {
                field: field.into(),
                value,
            }),
            ..Self::default()
        }
    }

    /// Sends `field` as `to`, everywhere.
    pub fn change_type(field: impl Into<String>, to: JsonType) -> Self {
        Self {
            change_type: Some(ChangeType {
                field: field.into(),
                to,
            }),
            ..Self::default()
        }
    }

    /// Limits the switch to `target`.
    pub fn only(self, target: SchemaTarget) -> Self {
        Self { target, ..self }
    }

    /// Limits the switch to one record type.
    pub fn for_entity(self, entity: Entity) -> Self {
        Self {
            entity: Some(entity),
            ..self
        }
    }

    /// Exactly one change must be set.
    pub fn validate(&self) -> Result<(), String> {
        let set = [
            self.rename.is_some(),
            self.add.is_some(),
            self.change_type.is_some(),
        ];
        match set.iter().filter(|s| **s).count() {
            1 => Ok(()),
            _ => Err("a schema switch needs exactly one of rename, add, change_type".to_owned()),
        }
    }

    fn applies(&self, entity: Entity, webhooks: bool) -> bool {
        let target_ok = match self.target {
            SchemaTarget::Both => true,
            SchemaTarget::Webhooks => webhooks,
            SchemaTarget::Api => !webhooks,
        };
        target_ok && self.entity.is_none_or(|e| e == entity)
    }

    /// Applies the change to one record object; `previous` objects get no added fields.
    fn apply(&self, record: &mut Value, is_previous: bool) {
        let Some(obj) = record.as_object_mut() else {
            return;
        };
        if let Some(Rename { from, to }) = &self.rename
            && let Some(value) = obj.remove(from)
        {
            obj.insert(to.clone(), value);
        }
        if let Some(AddField { field, value }) = &self.add
            && !is_previous
        {
            obj.insert(field.clone(), value.clone());
        }
        if let Some(ChangeType { field, to }) = &self.change_type
            && let Some(value) = obj.get_mut(field)
        {
            *value = convert(value.take(), *to);
        }
    }
}

fn convert(value: Value, to: JsonType) -> Value {
    match (to, value) {
        (JsonType::String, Value::String(s)) => Value::String(s),
        (JsonType::String, other) => Value::String(other.to_string()),
        (JsonType::Number, Value::Number(n)) => Value::Number(n),
        (JsonType::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(json!(0), Value::Number),
        (JsonType::Number, Value::Bool(b)) => json!(u8::from(b)),
        (JsonType::Number, Value::Array(a)) => json!(a.len()),
        (JsonType::Number, Value::Object(o)) => json!(o.len()),
        (JsonType::Number, Value::Null) => json!(0),
        (JsonType::Boolean, v) => Value::Bool(match v {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        }),
        (JsonType::Array, Value::Array(a)) => Value::Array(a),
        (JsonType::Array, other) => json!([other]),
        (JsonType::Object, Value::Object(o)) => Value::Object(o),
        (JsonType::Object, other) => json!({ "value": other }),
    }
}

/// The active switches.
#[derive(Debug, Default)]
pub(crate) struct SchemaSwitches(Mutex<Vec<SchemaSwitch>>);

impl SchemaSwitches {
    fn lock(&self) -> MutexGuard<'_, Vec<SchemaSwitch>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a switch after checking it.
    pub fn add(&self, switch: SchemaSwitch) -> Result<(), String> {
        switch.validate()?;
        self.lock().push(switch);
        Ok(())
    }

    /// Removes every switch.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The active switches, in the order added.
    pub fn list(&self) -> Vec<SchemaSwitch> {
        self.lock().clone()
    }

    /// The switches that touch webhook payloads.
    pub fn for_webhooks(&self) -> Vec<SchemaSwitch> {
        self.lock()
            .iter()
            .filter(|s| s.target != SchemaTarget::Api)
            .cloned()
            .collect()
    }

    fn for_api(&self, entity: Entity) -> Vec<SchemaSwitch> {
        self.lock()
            .iter()
            .filter(|s| s.applies(entity, false))
            .cloned()
            .collect()
    }
}

/// Applies the webhook switches to a payload's `data` and `previous`.
pub(crate) fn apply_to_webhook(
    switches: &[SchemaSwitch],
    entity: Entity,
    data: &mut Option<Value>,
    previous: &mut Option<Value>,
) {
    for switch in switches.iter().filter(|s| s.applies(entity, true)) {
        if let Some(data) = data.as_mut() {
            switch.apply(data, false);
        }
        if let Some(previous) = previous.as_mut() {
            switch.apply(previous, true);
        }
    }
}

/// Applies API switches to a success body: `data`, `data[]` or `data.items[].item`.
fn apply_to_api_body(switches: &[SchemaSwitch], body: &mut Value) {
    if body.get("success") != Some(&Value::Bool(true)) {
        return;
    }
    let Some(data) = body.get_mut("data") else {
        return;
    };
    let records: Vec<&mut Value> = match data {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(obj) if obj.contains_key("items") => obj
            .get_mut("items")
            .and_then(Value::as_array_mut)
            .map(|items| items.iter_mut().filter_map(|i| i.get_mut("item")).collect())
            .unwrap_or_default(),
        other => vec![other],
    };
    for record in records {
        for switch in switches {
            switch.apply(record, false);
        }
    }
}

/// Middleware rewriting API answers when API switches are active for the path's entity.
pub(crate) async fn api_layer(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let switches = Entity::from_path(req.uri().path())
        .map(|entity| shared.schema.for_api(entity))
        .unwrap_or_default();
    let response = next.run(req).await;
    if switches.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    apply_to_api_body(&switches, &mut json);
    let rewritten = serde_json::to_vec(&json).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewritten))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn switches_parse_from_the_documented_json() {
        let s: SchemaSwitch =
            serde_json::from_value(json!({"rename": {"from": "emails", "to": "email"}})).unwrap();
        assert_eq!(s, SchemaSwitch::rename("emails", "email"));
        assert!(s.validate().is_ok());
        assert!(SchemaSwitch::default().validate().is_err());
        assert!(serde_json::from_value::<SchemaSwitch>(json!({"drop": "x"})).is_err());
    }

    #[test]
    fn webhook_switches_touch_data_and_previous_but_add_only_to_data() {
        let switches = [
            SchemaSwitch::rename("name", "full_name"),
            SchemaSwitch::add("lifecycle", json!("lead")),
            SchemaSwitch::change_type("id", JsonType::String),
            SchemaSwitch::rename("title", "name").for_entity(Entity::Deal),
        ];
        let mut data = Some(json!({"id": 8, "name": "New", "title": "t"}));
        let mut previous = Some(json!({"name": "Old"}));
        apply_to_webhook(&switches, Entity::Person, &mut data, &mut previous);
        assert_eq!(
            data.unwrap(),
            json!({"id": "8", "full_name": "New", "title": "t", "lifecycle": "lead"})
        );
        assert_eq!(previous.unwrap(), json!({"full_name": "Old"}));
    }

    #[test]
    fn api_switches_reach_records_in_every_answer_shape() {
        let switches = [SchemaSwitch::change_type("visible_to", JsonType::String)];
        for (mut body, path) in [
            (
                json!({"success": true, "data": {"visible_to": 3}}),
                "/data/visible_to",
            ),
            (
                json!({"success": true, "data": [{"visible_to": 3}]}),
                "/data/0/visible_to",
            ),
            (
                json!({"success": true, "data": {"items": [{"result_score": 1, "item": {"visible_to": 3}}]}}),
                "/data/items/0/item/visible_to",
            ),
        ] {
            apply_to_api_body(&switches, &mut body);
            assert_eq!(body.pointer(path), Some(&json!("3")), "{body}");
        }
        let mut error = json!({"success": false, "data": {"visible_to": 3}});
        apply_to_api_body(&switches, &mut error);
        assert_eq!(error["data"]["visible_to"], json!(3));
    }

    #[test]
    fn conversions() {
        assert_eq!(convert(json!("12.5"), JsonType::Number), json!(12.5));
        assert_eq!(convert(json!("x"), JsonType::Number), json!(0));
        assert_eq!(
            convert(json!([{"v": 1}]), JsonType::String),
            json!("[{\"v\":1}]")
        );
        assert_eq!(convert(json!(0), JsonType::Boolean), json!(false));
        assert_eq!(convert(json!("a"), JsonType::Array), json!(["a"]));
        assert_eq!(convert(json!(1), JsonType::Object), json!({"value": 1}));
    }
}
