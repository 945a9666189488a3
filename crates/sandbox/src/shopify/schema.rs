//! Schema switches: deliberate drift of Shopify's payloads, to prove a consumer notices.
//!
//! A switch renames a field, adds one, or changes a field's JSON type, in webhook bodies,
//! in API responses, or both, for customers, orders, or every resource. They model what an
//! API version bump or an unannounced change does to a pinned integration (§1.7: a pinned
//! app silently falls forward to a newer serialisation). The JSON form, accepted by
//! `POST /_sandbox/shopify/schema`, is one change plus optional filters:
//!
//! ```json
//! {"rename": {"from": "email", "to": "email_address"}}
//! {"add": {"field": "loyalty_tier", "value": "gold"}, "resource": "customer"}
//! {"retype": {"field": "id", "to": "string"}, "scope": "webhooks"}
//! ```
//!
//! Fields are dotted paths (`customer.email`, `line_items.price`); a path through an array
//! applies to each element. Switches apply in the order they were added, before a
//! response's `fields` filter or a subscription's `fields` (the client asks for names the
//! server now has, as it would against a drifted API).

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::json::Json;

/// Which resource a switch touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Customers (API responses and `customers/*` webhooks).
    #[serde(alias = "customers")]
    Customer,
    /// Orders (API responses and `orders/*` webhooks).
    #[serde(alias = "orders")]
    Order,
}

/// Where a switch applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Webhook bodies and API responses.
    #[default]
    Both,
    /// API responses only.
    Api,
    /// Webhook bodies only.
    Webhooks,
}

/// A JSON type a field can be changed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// Numbers become their decimal text (an ID keeps every digit), booleans `"true"`.
    String,
    /// Numeric strings become numbers; other strings become null.
    Number,
    /// `"true"`/non-zero become `true`.
    Boolean,
    /// The value wrapped in a one-element array.
    Array,
    /// The value wrapped as `{"value": ...}`.
    Object,
}

/// Rename `from` to `to`, keeping the field's position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// Dotted path of the existing field.
    pub from: String,
    /// New last segment (a name, not a path).
    pub to: String,
}

/// Add (or overwrite) `field` with `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddField {
    /// Dotted path of the new field.
    pub field: String,
    /// Its value.
    pub value: Value,
}

/// Change `field`'s JSON type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retype {
    /// Dotted path of the field.
    pub field: String,
    /// The new type.
    pub to: JsonType,
}

/// One schema switch: exactly one of `rename`, `add`, `retype`, plus filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub retype: Option<Retype>,
    /// Only this resource (default: every resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Webhooks, API responses, or both (default).
    #[serde(default)]
    pub scope: Scope,
}

impl SchemaSwitch {
    fn of(rename: Option<Rename>, add: Option<AddField>, retype: Option<Retype>) -> Self {
        Self {
            rename,
            add,
            retype,
            resource: None,
            scope: Scope::Both,
        }
    }

    /// Renames `from` (a dotted path) to `to` everywhere.
    pub fn rename(from: impl Into<String>, to: impl Into<String>) -> Self {
        let (from, to) = (from.into(), to.into());
        Self::of(Some(Rename { from, to }), None, None)
    }

    /// Adds `field` with `value` everywhere.
    pub fn add(field: impl Into<String>, value: Value) -> Self {
        let field = field.into();
        Self::of(None, Some(AddField { field, value }), None)
    }

    /// Changes `field`'s type to `to` everywhere.
    pub fn retype(field: impl Into<String>, to: JsonType) -> Self {
        let field = field.into();
        Self::of(None, None, Some(Retype { field, to }))
    }

    /// Restricts the switch to one resource.
    pub fn for_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Restricts the switch to webhooks or API responses.
    pub fn only(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Checks that exactly one change is given and its names are usable.
    pub fn validate(&self) -> Result<(), &'static str> {
        let changes = [
            self.rename.is_some(),
            self.add.is_some(),
            self.retype.is_some(),
        ];
        if changes.iter().filter(|c| **c).count() != 1 {
            return Err("give exactly one of rename, add, retype");
        }
        let names_ok = match (&self.rename, &self.add, &self.retype) {
            (Some(r), _, _) => !r.from.is_empty() && !r.to.is_empty() && !r.to.contains('.'),
            (_, Some(a), _) => !a.field.is_empty(),
            (_, _, Some(t)) => !t.field.is_empty(),
            _ => false,
        };
        if names_ok {
            Ok(())
        } else {
            Err("field names must be non-empty; rename.to is a name, not a path")
        }
    }

    /// True when the switch applies to `resource` in webhooks (`webhook`) or the API.
    pub(crate) fn applies(&self, resource: Resource, webhook: bool) -> bool {
        let scope_ok = match self.scope {
            Scope::Both => true,
            Scope::Api => !webhook,
            Scope::Webhooks => webhook,
        };
        scope_ok && self.resource.is_none_or(|r| r == resource)
    }

    /// Applies the change to one rendered resource.
    pub(crate) fn apply(&self, doc: &mut Json) {
        if let Some(r) = &self.rename {
            doc.visit_parents(&r.from, &mut |obj, key| {
                if let Some(slot) = obj.iter_mut().find(|(k, _)| k == key) {
                    slot.0 = r.to.clone();
                }
            });
        }
        if let Some(a) = &self.add {
            doc.visit_parents(&a.field, &mut |obj, key| {
                let value = Json::from(a.value.clone());
                match obj.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => obj.push((key.to_owned(), value)),
                }
            });
        }
        if let Some(t) = &self.retype {
            doc.visit_parents(&t.field, &mut |obj, key| {
                if let Some(slot) = obj.iter_mut().find(|(k, _)| k == key) {
                    let old = std::mem::replace(&mut slot.1, Json::Null);
                    slot.1 = convert(old, t.to);
                }
            });
        }
    }
}

fn convert(value: Json, to: JsonType) -> Json {
    match (to, value) {
        (JsonType::String, Json::Number(n)) => Json::String(n.to_string()),
        (JsonType::String, Json::Bool(b)) => Json::String(b.to_string()),
        (JsonType::String, v @ (Json::Array(_) | Json::Object(_))) => {
            Json::String(String::from_utf8(v.to_bytes()).unwrap_or_default())
        }
        (JsonType::Number, Json::String(s)) => parse_number(&s).map_or(Json::Null, Json::Number),
        (JsonType::Number, Json::Bool(b)) => Json::Number(u64::from(b).into()),
        (JsonType::Number, Json::Array(_) | Json::Object(_)) => Json::Null,
        (JsonType::Boolean, Json::String(s)) => Json::Bool(!s.is_empty() && s != "false"),
        (JsonType::Boolean, Json::Number(n)) => Json::Bool(n.as_f64().is_some_and(|f| f != 0.0)),
        (JsonType::Array, Json::Null) => Json::Array(Vec::new()),
        (JsonType::Array, v) if !matches!(v, Json::Array(_)) => Json::Array(vec![v]),
        (JsonType::Object, v) if !matches!(v, Json::Object(_)) => {
            Json::Object(vec![("value".to_owned(), v)])
        }
        (_, v) => v,
    }
}

fn parse_number(s: &str) -> Option<Number> {
    let s = s.trim();
    if let Ok(u) = s.parse::<u64>() {
        return Some(u.into());
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    fn text(doc: &Json) -> String {
        String::from_utf8(doc.to_bytes()).unwrap()
    }

    #[test]
    fn rename_keeps_position_add_appends_retype_converts() {
        let mut d = doc(r#"{"id":706405506930370084,"email":"a@b.c","tags":""}"#);
        SchemaSwitch::rename("email", "email_address").apply(&mut d);
        SchemaSwitch::add("loyalty", json!({"tier": 2})).apply(&mut d);
        SchemaSwitch::retype("id", JsonType::String).apply(&mut d);
        assert_eq!(
            text(&d),
            r#"{"id":"706405506930370084","email_address":"a@b.c","tags":"","loyalty":{"tier":2}}"#
        );
    }

    #[test]
    fn paths_reach_into_arrays() {
        let mut d = doc(r#"{"line_items":[{"price":"1.50"},{"price":"2"}]}"#);
        SchemaSwitch::retype("line_items.price", JsonType::Number).apply(&mut d);
        assert_eq!(text(&d), r#"{"line_items":[{"price":1.5},{"price":2}]}"#);
    }

    #[test]
    fn the_json_form_and_its_validation() {
        let s: SchemaSwitch = serde_json::from_value(
            json!({"retype": {"field": "id", "to": "string"}, "resource": "customers", "scope": "api"}),
        )
        .unwrap();
        assert!(s.validate().is_ok());
        assert!(s.applies(Resource::Customer, false));
        assert!(!s.applies(Resource::Customer, true));
        assert!(!s.applies(Resource::Order, false));
        let two: SchemaSwitch = serde_json::from_value(json!({
            "rename": {"from": "a", "to": "b"}, "add": {"field": "x", "value": 1}
        }))
        .unwrap();
        assert!(two.validate().is_err());
        assert!(serde_json::from_value::<SchemaSwitch>(json!({"renam": {}})).is_err());
    }
}
