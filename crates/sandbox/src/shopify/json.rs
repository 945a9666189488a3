//! An order-preserving JSON value for everything the Shopify emulator renders.
//!
//! Why not `serde_json::Value`: without serde_json's `preserve_order` feature (not enabled
//! in this workspace, and turning it on would change every crate's maps through feature
//! unification) a `Value` sorts object keys. Shopify's payloads and responses list keys in
//! resource order (`id` first, `admin_graphql_api_id` last in the customer sample, §1.4),
//! and the schema switches edit rendered documents in place; going through `Value` would
//! reorder every body the moment a switch is on. Numbers stay `serde_json::Number`, so IDs
//! above 2^53 are written exactly.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

/// An object's members, in order.
pub(crate) type Members = Vec<(String, Json)>;

/// What [`Json::visit_parents`] calls with each parent object and the last path segment.
pub(crate) type ParentVisitor<'a> = dyn FnMut(&mut Members, &str) + 'a;

/// A JSON document whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Renders any serialisable value, keeping the key order of its `Serialize` impl.
    pub fn of<T: Serialize>(value: &T) -> Self {
        serde_json::to_string(value)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Self::Null)
    }

    /// An object from ordered pairs.
    pub fn object(pairs: Vec<(&str, Json)>) -> Self {
        Self::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// The compact JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Keeps only the named top-level keys of an object (Shopify's `fields` parameter and a
    /// webhook's `fields`/`include_fields`); anything else is left alone.
    pub fn retain_keys(&mut self, keys: &[String]) {
        if let Self::Object(pairs) = self {
            pairs.retain(|(k, _)| keys.iter().any(|want| want == k));
        }
    }

    /// Calls `f` with every object that is the parent of the dotted `path`'s last segment,
    /// walking into arrays element by element (`line_items.price` reaches every line item).
    pub fn visit_parents(&mut self, path: &str, f: &mut ParentVisitor<'_>) {
        let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        if let Some((last, parents)) = segments.split_last() {
            walk(self, parents, last, f);
        }
    }
}

fn walk(node: &mut Json, parents: &[&str], last: &str, f: &mut ParentVisitor<'_>) {
    match node {
        Json::Array(items) => items.iter_mut().for_each(|i| walk(i, parents, last, f)),
        Json::Object(pairs) => match parents.split_first() {
            None => f(pairs, last),
            Some((head, rest)) => {
                if let Some((_, child)) = pairs.iter_mut().find(|(k, _)| k == head) {
                    walk(child, rest, last, f);
                }
            }
        },
        _ => {}
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => Self::Number(n),
            Value::String(s) => Self::String(s),
            Value::Array(items) => Self::Array(items.into_iter().map(Self::from).collect()),
            Value::Object(map) => {
                Self::Object(map.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Number(n) => n.serialize(s),
            Self::String(text) => s.serialize_str(text),
            Self::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs: Vec<(String, Json)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            // A repeated key keeps its first position and its last value, as JSON parsers do.
            match pairs.iter_mut().find(|(existing, _)| *existing == k) {
                Some(slot) => slot.1 = v,
                None => pairs.push((k, v)),
            }
        }
        Ok(Json::Object(pairs))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_big_integers_survive_a_round_trip() {
        let text = r#"{"id":820982911946154508,"b":[1,{"z":1,"a":2}],"a":null,"price":"1.50"}"#;
        let doc: Json = serde_json::from_str(text).unwrap();
        assert_eq!(String::from_utf8(doc.to_bytes()).unwrap(), text);
    }

    #[test]
    fn parents_are_reached_through_objects_and_arrays() {
        let mut doc: Json =
            serde_json::from_str(r#"{"line_items":[{"price":"1"},{"price":"2"}],"x":{"y":1}}"#)
                .unwrap();
        let mut seen = Vec::new();
        doc.visit_parents("line_items.price", &mut |obj, key| {
            seen.push(obj.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()));
        });
        assert_eq!(seen.len(), 2);
        let mut hits = 0;
        doc.visit_parents("x.y", &mut |_, _| hits += 1);
        doc.visit_parents("missing.y", &mut |_, _| hits += 1);
        assert_eq!(hits, 1);
    }
}
