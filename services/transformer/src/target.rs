//! The canonical schema a flow writes, and how a merged record becomes a value of it.
//!
//! Every canonical schema has the same envelope fields (`id`, `deleted`, `source_*`,
//! `mapping`); the rest are business fields, which mappings produce and the conflict rules
//! merge. A mapping output with a field the schema does not have, or a value of the wrong
//! type, is a `data` error naming the field.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};
use switchboard_core::avro::SchemaDef;
use switchboard_core::canonical::Catalog;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use crate::avro_json::{to_avro, to_avro_at};
use crate::merge::FieldVersion;

/// Envelope fields every canonical record carries; mappings do not write them.
pub use switchboard_core::canonical::ENVELOPE_FIELDS;

/// Where the change that produced a canonical record came from.
pub struct Envelope<'a> {
    /// Canonical ID.
    pub id: &'a str,
    /// The record is deleted.
    pub deleted: bool,
    /// Source connection.
    pub connection: &'a str,
    /// Source entity.
    pub entity: &'a str,
    /// Native record ID.
    pub record_id: &'a str,
    /// Source timestamp, epoch milliseconds.
    pub updated_at: Option<i64>,
    /// Event ID.
    pub event_id: &'a str,
    /// Mapping version.
    pub mapping: &'a str,
}

/// A canonical entity at one schema version.
pub struct Target {
    /// Canonical entity, e.g. `contact`.
    pub entity: String,
    /// Schema version written.
    pub version: u32,
    /// The schema text from the catalog, for the registry.
    pub def: SchemaDef,
    schema: Schema,
    business_fields: Vec<String>,
}

impl Target {
    /// The schema of `entity` at `version` (newest if `None`).
    pub fn load(catalog: &Catalog, entity: &str, version: Option<u32>) -> Result<Self, String> {
        let found = catalog.get(entity, version).ok_or_else(|| match version {
            Some(v) => format!("canonical schema `{entity}` v{v} is not known"),
            None => format!(
                "canonical entity `{entity}` is not known; the schemas directory has {}",
                catalog.entities().join(", ")
            ),
        })?;
        let schema = Schema::parse_str(found.schema.text).map_err(|e| e.to_string())?;
        let Schema::Record(record) = &schema else {
            return Err(format!("canonical schema `{entity}` is not a record"));
        };
        if let Some(missing) = ENVELOPE_FIELDS
            .iter()
            .find(|f| !record.fields.iter().any(|r| r.name == **f))
        {
            return Err(format!(
                "canonical schema `{entity}` lacks envelope field `{missing}`"
            ));
        }
        let business_fields = record
            .fields
            .iter()
            .map(|f| f.name.clone())
            .filter(|n| !ENVELOPE_FIELDS.contains(&n.as_str()))
            .collect();
        Ok(Self {
            entity: entity.to_owned(),
            version: found.version,
            def: found.schema,
            schema,
            business_fields,
        })
    }

    /// Checks a mapping's output: an object of business fields that fit the schema, each
    /// converted against its own field's type (as [`Target::record`] will), and every
    /// business field without a default present.
    pub fn check_output(&self, output: Json) -> Result<Map<String, Json>, String> {
        let Json::Object(fields) = output else {
            return Err("a mapping must produce one JSON object".to_owned());
        };
        if let Some(envelope) = fields
            .keys()
            .find(|k| ENVELOPE_FIELDS.contains(&k.as_str()))
        {
            return Err(format!(
                "field `{envelope}` is set by Switchboard, not by mappings"
            ));
        }
        let Schema::Record(record) = &self.schema else {
            return Err(format!(
                "canonical schema `{}` is not a record",
                self.entity
            ));
        };
        for (name, value) in &fields {
            let field = record
                .fields
                .iter()
                .find(|f| &f.name == name)
                .ok_or_else(|| self.unknown_field(name))?;
            to_avro_at(&field.schema, value, name)?;
        }
        if let Some(missing) = record.fields.iter().find(|f| {
            f.default.is_none()
                && !ENVELOPE_FIELDS.contains(&f.name.as_str())
                && !fields.contains_key(&f.name)
        }) {
            return Err(format!("{}: required field is missing", missing.name));
        }
        Ok(fields)
    }

    fn unknown_field(&self, name: &str) -> String {
        format!(
            "field `{name}` is not in canonical schema {} v{}",
            self.entity, self.version
        )
    }

    /// The Avro value of a canonical record: the envelope plus the merged business fields
    /// (fields no source has set take the schema's defaults).
    pub fn record(
        &self,
        envelope: &Envelope<'_>,
        fields: &BTreeMap<String, FieldVersion>,
    ) -> Result<Value, String> {
        let mut object = Map::new();
        for name in &self.business_fields {
            if let Some(field) = fields.get(name) {
                object.insert(name.clone(), field.value.clone());
            }
        }
        if let Some(unknown) = fields.keys().find(|k| !self.business_fields.contains(k)) {
            return Err(self.unknown_field(unknown));
        }
        let text = |s: &str| Json::String(s.to_owned());
        object.insert("id".to_owned(), text(envelope.id));
        object.insert("deleted".to_owned(), Json::Bool(envelope.deleted));
        object.insert("source_connection".to_owned(), text(envelope.connection));
        object.insert("source_entity".to_owned(), text(envelope.entity));
        object.insert("source_id".to_owned(), text(envelope.record_id));
        object.insert(
            "source_updated_at".to_owned(),
            envelope.updated_at.map_or(Json::Null, Json::from),
        );
        object.insert("source_event_id".to_owned(), text(envelope.event_id));
        object.insert("mapping".to_owned(), text(envelope.mapping));
        to_avro(&self.schema, &Json::Object(object))
    }

    /// A `data` error about this target.
    pub fn data_error(&self, mapping: &str, reason: String) -> ClassifiedError {
        ClassifiedError::new(
            ErrorClass::Data,
            format!(
                "mapping {mapping} output does not fit {} v{}: {reason}",
                self.entity, self.version
            ),
        )
    }
}
