//! Source schema drift: is this payload still the shape its API version promised?
//!
//! Shapes live in `schemas/source/<system>/<entity>.<api version>.json`:
//!
//! ```json
//! {"fields": {"id": {"type": "integer", "required": true},
//!             "email": {"type": ["string", "null"]}}}
//! ```
//!
//! A payload is checked against the shape of its own API version, or, for a version
//! without a shape, against the newest shape of that entity (the one the mappings were
//! written for). A missing required field or a field of another type is drift: the event
//! goes to the DLQ with class `data` and reason `schema_drift`, and the partition moves on.
//! Fields the shape does not know are fine (APIs add fields all the time); each is counted
//! and logged once, so an operator sees the API moving before it breaks anything.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The expected shape of one source entity at one API version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// What the shape describes and where it comes from.
    #[serde(default)]
    pub doc: Option<String>,
    /// Top-level fields by name.
    pub fields: BTreeMap<String, FieldShape>,
}

/// One expected field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldShape {
    /// JSON type or types: `string`, `integer`, `number`, `boolean`, `object`, `array`,
    /// `null`.
    #[serde(rename = "type")]
    pub kind: OneOrMany,
    /// The field must be present.
    #[serde(default)]
    pub required: bool,
}

/// A type or a list of types.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One type.
    One(String),
    /// Any of these.
    Many(Vec<String>),
}

impl OneOrMany {
    fn allows(&self, value: &Value) -> bool {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = |t: &str| t == kind || (t == "number" && kind == "integer");
        match self {
            Self::One(t) => ok(t),
            Self::Many(ts) => ts.iter().any(|t| ok(t)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::One(t) => t.clone(),
            Self::Many(ts) => ts.join("|"),
        }
    }
}

/// How a payload compares to its shape.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No shape is known for this entity: nothing to check.
    Unchecked,
    /// The payload fits; these fields are not in the shape.
    Fits {
        /// Unknown top-level fields.
        unknown: Vec<String>,
    },
    /// The payload drifted.
    Drift(String),
}

/// Every shape under `<schemas_dir>/source`, by system and entity, then API version.
#[derive(Debug, Default)]
pub struct Shapes {
    by_entity: HashMap<(String, String), BTreeMap<String, Shape>>,
}

impl Shapes {
    /// Loads `<dir>/source/<system>/<entity>.<version>.json`; a missing directory means no
    /// shapes. A shape file that does not parse is an error naming the file.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut shapes = Self::default();
        let root = dir.join("source");
        let Ok(systems) = std::fs::read_dir(&root) else {
            return Ok(shapes);
        };
        for system in systems.flatten() {
            let system_name = system.file_name().to_string_lossy().into_owned();
            let files = std::fs::read_dir(system.path()).map_err(|e| e.to_string())?;
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".json") else {
                    continue;
                };
                let Some((entity, version)) = stem.split_once('.') else {
                    return Err(format!(
                        "{}: name a shape `<entity>.<api version>.json`",
                        file.path().display()
                    ));
                };
                let text = std::fs::read_to_string(file.path()).map_err(|e| e.to_string())?;
                let shape: Shape = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", file.path().display()))?;
                shapes
                    .by_entity
                    .entry((system_name.clone(), entity.to_owned()))
                    .or_default()
                    .insert(version.to_owned(), shape);
            }
        }
        Ok(shapes)
    }

    /// Checks a payload of `system`/`entity` at `version`.
    pub fn check(
        &self,
        system: &str,
        entity: &str,
        version: Option<&str>,
        payload: &Value,
    ) -> Verdict {
        let Some(versions) = self.by_entity.get(&(system.to_owned(), entity.to_owned())) else {
            return Verdict::Unchecked;
        };
        let shape = version
            .and_then(|v| versions.get(v))
            .or_else(|| versions.values().next_back());
        let Some(shape) = shape else {
            return Verdict::Unchecked;
        };
        let Some(object) = payload.as_object() else {
            return Verdict::Drift("payload is not a JSON object".to_owned());
        };
        for (name, field) in &shape.fields {
            match object.get(name) {
                None if field.required => {
                    return Verdict::Drift(format!("required field `{name}` is missing"));
                }
                Some(value) if !field.kind.allows(value) => {
                    return Verdict::Drift(format!(
                        "field `{name}` should be {} but is {}",
                        field.kind.describe(),
                        short(value)
                    ));
                }
                _ => {}
            }
        }
        let unknown = object
            .keys()
            .filter(|k| !shape.fields.contains_key(*k))
            .cloned()
            .collect();
        Verdict::Fits { unknown }
    }
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shapes() -> Shapes {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("source/shopify");
        std::fs::create_dir_all(&system).unwrap();
        std::fs::write(
            system.join("customers.2025-01.json"),
            r#"{"fields": {"id": {"type": "integer", "required": true},
                           "email": {"type": ["string", "null"]}}}"#,
        )
        .unwrap();
        Shapes::load(dir.path()).unwrap()
    }

    #[test]
    fn unknown_fields_fit_and_are_reported() {
        let v = shapes().check(
            "shopify",
            "customers",
            Some("2025-01"),
            &json!({"id": 1, "email": null, "tags": ""}),
        );
        assert_eq!(
            v,
            Verdict::Fits {
                unknown: vec!["tags".into()]
            }
        );
    }

    #[test]
    fn a_missing_required_field_or_a_changed_type_is_drift() {
        let s = shapes();
        assert_eq!(
            s.check(
                "shopify",
                "customers",
                Some("2025-01"),
                &json!({"email": "a"})
            ),
            Verdict::Drift("required field `id` is missing".into())
        );
        assert_eq!(
            s.check("shopify", "customers", Some("2025-01"), &json!({"id": "1"})),
            Verdict::Drift("field `id` should be integer but is \"1\"".into())
        );
    }

    #[test]
    fn the_shipped_shapes_fit_the_shipped_fixtures() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shapes = Shapes::load(&root.join("schemas")).unwrap();
        let fixture = |path: &str| -> Value {
            serde_json::from_str(
                &std::fs::read_to_string(root.join("mappings").join(path)).unwrap(),
            )
            .unwrap()
        };
        for (system, entity, version, path) in [
            (
                "shopify",
                "customers",
                "2025-01",
                "shopify/customer-to-contact.fixtures/update.json",
            ),
            (
                "shopify",
                "customers",
                "2025-01",
                "shopify/customer-to-contact.fixtures/delete.json",
            ),
            (
                "pipedrive",
                "persons",
                "2.0",
                "pipedrive/person-to-contact.fixtures/webhook-create.json",
            ),
            (
                "pipedrive",
                "persons",
                "v2",
                "pipedrive/person-to-contact.fixtures/polled.json",
            ),
        ] {
            let verdict = shapes.check(system, entity, Some(version), &fixture(path));
            assert!(
                matches!(verdict, Verdict::Fits { .. }),
                "{path}: {verdict:?}"
            );
        }
    }

    #[test]
    fn an_unknown_version_is_checked_against_the_newest_shape() {
        let v = shapes().check("shopify", "customers", Some("2026-04"), &json!({"id": 1.5}));
        assert!(matches!(v, Verdict::Drift(_)), "{v:?}");
        assert_eq!(
            shapes().check("pipedrive", "persons", None, &json!({})),
            Verdict::Unchecked
        );
    }
}
