//! Schema switches on outbound `Update`s: rename a field, add one, or change a field's JSON
//! type, so a test can prove its receiver survives (or loudly rejects) a Bot API change.
//!
//! Switches apply to every Update the emulator hands out from the moment they are set —
//! webhook deliveries and `getUpdates` results alike — and never to the stored update, so
//! clearing them restores the contract shape. Paths are dotted and start at the Update
//! object: `message.text`, `message.chat.id`, `update_id`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One change applied to outbound Updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchemaSwitch {
    /// Moves the field at `path` to the sibling name `to`.
    Rename {
        /// Dotted path of the field, e.g. `message.text`.
        path: String,
        /// New name of the field (same parent object).
        to: String,
    },
    /// Adds (or overwrites) the field at `path` with `value`.
    Add {
        /// Dotted path of the new field, e.g. `message.business_connection_id`.
        path: String,
        /// Its value.
        value: Value,
    },
    /// Changes the JSON type of the field at `path`: a number or boolean becomes a string,
    /// a numeric string becomes a number, any other string becomes a one-element array,
    /// an object or array becomes its JSON text.
    ChangeType {
        /// Dotted path of the field, e.g. `message.chat.id`.
        path: String,
    },
}

impl SchemaSwitch {
    /// Applies the switch to `update`; a path that does not exist changes nothing (except
    /// `Add`, which creates missing parents).
    pub fn apply(&self, update: &mut Value) {
        match self {
            Self::Rename { path, to } => {
                if let Some((parent, field)) = parent_of(update, path, false)
                    && let Some(v) = parent.remove(field)
                {
                    parent.insert(to.clone(), v);
                }
            }
            Self::Add { path, value } => {
                if let Some((parent, field)) = parent_of(update, path, true) {
                    parent.insert(field.to_owned(), value.clone());
                }
            }
            Self::ChangeType { path } => {
                if let Some((parent, field)) = parent_of(update, path, false)
                    && let Some(v) = parent.get_mut(field)
                {
                    *v = changed_type(v);
                }
            }
        }
    }
}

fn changed_type(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::String(s) => match serde_json::from_str::<serde_json::Number>(s) {
            Ok(n) => Value::Number(n),
            Err(_) => Value::Array(vec![Value::String(s.clone())]),
        },
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

/// The object holding the last segment of `path`, and that segment.
fn parent_of<'a, 'p>(
    root: &'a mut Value,
    path: &'p str,
    create: bool,
) -> Option<(&'a mut Map<String, Value>, &'p str)> {
    let (parents, field) = match path.rsplit_once('.') {
        Some((parents, field)) => (Some(parents), field),
        None => (None, path),
    };
    let mut node = root;
    for seg in parents.into_iter().flat_map(|p| p.split('.')) {
        let obj = node.as_object_mut()?;
        if create && !obj.contains_key(seg) {
            obj.insert(seg.to_owned(), Value::Object(Map::new()));
        }
        node = obj.get_mut(seg)?;
    }
    Some((node.as_object_mut()?, field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"update_id": 5, "message": {"message_id": 1, "chat": {"id": 42}, "text": "hi"}})
    }

    #[test]
    fn rename_add_and_change_type() {
        let mut u = sample();
        SchemaSwitch::Rename {
            path: "message.text".into(),
            to: "body".into(),
        }
        .apply(&mut u);
        SchemaSwitch::Add {
            path: "message.extra.flag".into(),
            value: json!(true),
        }
        .apply(&mut u);
        SchemaSwitch::ChangeType {
            path: "message.chat.id".into(),
        }
        .apply(&mut u);
        assert_eq!(
            u,
            json!({"update_id": 5, "message": {"message_id": 1, "chat": {"id": "42"},
                   "body": "hi", "extra": {"flag": true}}})
        );
    }

    #[test]
    fn missing_paths_change_nothing_and_switches_parse_from_json() {
        let mut u = sample();
        SchemaSwitch::Rename {
            path: "edited_message.text".into(),
            to: "x".into(),
        }
        .apply(&mut u);
        assert_eq!(u, sample());
        let s: SchemaSwitch = serde_json::from_value(
            json!({"op": "change_type", "path": "update_id"}),
        )
        .unwrap_or(SchemaSwitch::Add {
            path: String::new(),
            value: Value::Null,
        });
        s.apply(&mut u);
        assert_eq!(u["update_id"], json!("5"));
    }
}
