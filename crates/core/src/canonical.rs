//! Canonical records: one model per business entity, independent of any system, so N
//! systems need N connections instead of N×(N−1). Schemas are data: every
//! `<schemas_dir>/canonical/<entity>.v<N>.avsc` is one version of one entity, read at start
//! into a [`Catalog`]. A new entity or a new version is a file, not a build.
//!
//! Guarantee (checked when the catalog is read, so a bad file stops the service at start):
//! every schema parses as a record that carries the envelope fields, versions of an entity
//! run 1, 2, … without a gap, and each is BACKWARD compatible with the one before it, so a
//! reader of the newest version reads every record ever written.

use std::path::Path;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::avro::SchemaDef;
use crate::envelope::SWITCHBOARD_NAMESPACE;

/// The fields every canonical record carries besides its business fields.
pub const ENVELOPE_FIELDS: &[&str] = &[
    "id",
    "deleted",
    "source_connection",
    "source_entity",
    "source_id",
    "source_updated_at",
    "source_event_id",
    "mapping",
];

/// One version of one canonical entity's schema.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalSchema {
    /// Entity name as in topic names and flows' `to`, e.g. `contact`.
    pub entity: &'static str,
    /// Schema version, the `N` of `<entity>.v<N>.avsc`.
    pub version: u32,
    /// Record name and `.avsc` text.
    pub schema: SchemaDef,
}

impl CanonicalSchema {
    /// File name under `schemas/canonical/`, e.g. `contact.v2.avsc`.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.avsc", self.entity, self.version)
    }
}

/// Every canonical schema of a deployment, by entity and then version (ascending).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    schemas: Vec<CanonicalSchema>,
}

impl Catalog {
    /// Reads `<schemas_dir>/canonical/*.avsc`; the error names the file and what is wrong
    /// with it. The texts are kept for the life of the process (the codec encodes with
    /// them), so a service reads its catalog once.
    pub fn load(schemas_dir: &Path) -> Result<Self, String> {
        let dir = schemas_dir.join("canonical");
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = file.strip_suffix(".avsc") else {
                continue;
            };
            let (entity, version) = stem
                .rsplit_once(".v")
                .and_then(|(e, v)| Some((e, v.parse::<u32>().ok()?)))
                .filter(|(e, v)| !e.is_empty() && *v > 0)
                .ok_or_else(|| {
                    format!("{}: name it <entity>.v<N>.avsc (N from 1)", path.display())
                })?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            found.push((entity.to_owned(), version, text, path.display().to_string()));
        }
        found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut schemas: Vec<CanonicalSchema> = Vec::new();
        let mut previous: Option<(String, u32, Schema)> = None;
        for (entity, version, text, path) in found {
            let parsed = Schema::parse_str(&text).map_err(|e| format!("{path}: {e}"))?;
            let Schema::Record(record) = &parsed else {
                return Err(format!("{path}: a canonical schema is a record"));
            };
            if let Some(missing) = ENVELOPE_FIELDS
                .iter()
                .find(|f| !record.fields.iter().any(|r| r.name == **f))
            {
                return Err(format!("{path}: lacks the envelope field `{missing}`"));
            }
            let expected = match &previous {
                Some((e, v, _)) if *e == entity => v + 1,
                _ => 1,
            };
            if version != expected {
                return Err(format!(
                    "{path}: versions of `{entity}` run from 1 without a gap; expected v{expected}"
                ));
            }
            if let Some((e, v, old)) = &previous
                && *e == entity
            {
                SchemaCompatibility::can_read(old, &parsed).map_err(|why| {
                    format!("{path}: cannot read records of {entity} v{v} (BACKWARD): {why}")
                })?;
            }
            let name = record.name.fullname(None);
            schemas.push(CanonicalSchema {
                entity: Box::leak(entity.clone().into_boxed_str()),
                version,
                schema: SchemaDef {
                    name: Box::leak(name.into_boxed_str()),
                    text: Box::leak(text.into_boxed_str()),
                },
            });
            previous = Some((entity, version, parsed));
        }
        Ok(Self { schemas })
    }

    /// The schema of `entity` at `version`, or its latest version when `version` is `None`.
    pub fn get(&self, entity: &str, version: Option<u32>) -> Option<&CanonicalSchema> {
        let mut versions = self.schemas.iter().filter(|s| s.entity == entity);
        match version {
            Some(v) => versions.find(|s| s.version == v),
            None => versions.max_by_key(|s| s.version),
        }
    }

    /// The entities, each once, sorted.
    pub fn entities(&self) -> Vec<&str> {
        let mut entities: Vec<&str> = self.schemas.iter().map(|s| s.entity).collect();
        entities.dedup();
        entities
    }

    /// Every schema, by entity and then version.
    pub fn schemas(&self) -> &[CanonicalSchema] {
        &self.schemas
    }
}

/// Canonical ID of a source record: UUIDv5 of `<connection>/<entity>/<native id>`, so a
/// replay produces the same ID, never a new one.
pub fn canonical_id(connection: &str, entity: &str, native_id: &str) -> String {
    Uuid::new_v5(
        &SWITCHBOARD_NAMESPACE,
        format!("{connection}/{entity}/{native_id}").as_bytes(),
    )
    .to_string()
}

/// A person, as every system should see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Canonical ID.
    pub id: String,
    /// Primary e-mail address, lower-cased by the mapping.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone number as the source wrote it.
    pub phone: Option<String>,
    /// The source deleted the record.
    pub deleted: bool,
    /// Connection the record came from.
    pub source_connection: String,
    /// Source entity.
    pub source_entity: String,
    /// Native ID at the source.
    pub source_id: String,
    /// Source's change time, epoch milliseconds.
    pub source_updated_at: Option<i64>,
    /// The raw event this record was made from.
    pub source_event_id: String,
    /// Mapping version that produced it.
    pub mapping: String,
}

impl Contact {
    /// Display name for targets that need one: "First Last", else the e-mail, else the ID.
    pub fn display_name(&self) -> String {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            name
        } else if let Some(email) = &self.email {
            email.clone()
        } else {
            self.id.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::Schema;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::schema_compatibility::SchemaCompatibility;
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;

    fn repo_catalog() -> Catalog {
        Catalog::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas"
        )))
        .unwrap()
    }

    fn contact_v1() -> CanonicalSchema {
        *repo_catalog().get("contact", Some(1)).unwrap()
    }

    fn parse(schema: &CanonicalSchema) -> Schema {
        Schema::parse_str(schema.schema.text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", schema.file_name()))
    }

    /// Name, type and default of each field.
    fn fields(schema: &Schema) -> Vec<(String, serde_json::Value, Option<serde_json::Value>)> {
        let Schema::Record(record) = schema else {
            panic!("not a record: {schema:?}")
        };
        record
            .fields
            .iter()
            .map(|f| {
                let schema = serde_json::to_value(&f.schema).unwrap();
                (f.name.clone(), schema, f.default.clone())
            })
            .collect()
    }

    #[test]
    fn every_schema_parses_with_its_declared_name_and_namespace() {
        for schema in repo_catalog().schemas() {
            let parsed = parse(schema);
            let name = parsed.name().unwrap();
            assert_eq!(
                name.fullname(None),
                schema.schema.name,
                "{}",
                schema.file_name()
            );
            assert_eq!(name.namespace(), Some("io.switchboard.canonical"));
        }
    }

    #[test]
    fn the_catalog_refuses_a_bad_file_and_names_it() {
        let dir = std::env::temp_dir().join(format!("sb-catalog-{}", std::process::id()));
        let canonical = dir.join("canonical");
        std::fs::create_dir_all(&canonical).unwrap();
        let v1 = contact_v1().schema.text;
        let write = |name: &str, text: &str| std::fs::write(canonical.join(name), text).unwrap();
        write("ticket.v1.avsc", &v1.replace("\"Contact\"", "\"Ticket\""));
        let catalog = Catalog::load(&dir).unwrap();
        assert_eq!(catalog.entities(), ["ticket"]);
        assert_eq!(
            catalog.get("ticket", None).unwrap().schema.name,
            "io.switchboard.canonical.Ticket"
        );
        write("ticket.v3.avsc", v1);
        let gap = Catalog::load(&dir).unwrap_err();
        assert!(
            gap.contains("ticket.v3.avsc") && gap.contains("expected v2"),
            "{gap}"
        );
        std::fs::remove_file(canonical.join("ticket.v3.avsc")).unwrap();
        let field = r#"{"name": "email", "type": ["null", "string"], "default": null},"#;
        let required = format!(r#"{field} {{"name": "priority", "type": "string"}},"#);
        let v2 = v1
            .replace("\"Contact\"", "\"Ticket\"")
            .replacen(field, &required, 1);
        assert!(v2.contains("priority"));
        write("ticket.v2.avsc", &v2);
        let incompatible = Catalog::load(&dir).unwrap_err();
        assert!(incompatible.contains("BACKWARD"), "{incompatible}");
        write(
            "ticket.v2.avsc",
            "{\"type\": \"record\", \"name\": \"T\", \"fields\": []}",
        );
        let bare = Catalog::load(&dir).unwrap_err();
        assert!(bare.contains("envelope field `id`"), "{bare}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_record_carries_the_envelope_of_contact_v1() {
        let reference = fields(&parse(&contact_v1()));
        for schema in repo_catalog().schemas() {
            let own = fields(&parse(schema));
            for name in ENVELOPE_FIELDS {
                let want = reference.iter().find(|(n, ..)| n == name).unwrap();
                let got = own.iter().find(|(n, ..)| n == name);
                assert_eq!(
                    got,
                    Some(want),
                    "{}: envelope field {name}",
                    schema.file_name()
                );
            }
        }
    }

    #[test]
    fn each_version_reads_records_of_the_one_before() {
        let mut checked = 0;
        for pair in repo_catalog().schemas().windows(2) {
            let [old, new] = pair else { unreachable!() };
            if old.entity != new.entity {
                continue;
            }
            assert_eq!(
                new.version,
                old.version + 1,
                "{} skips a version",
                new.file_name()
            );
            // BACKWARD: the new schema, as reader, resolves data written with the old one.
            SchemaCompatibility::can_read(&parse(old), &parse(new)).unwrap_or_else(|e| {
                panic!("{} cannot read {}: {e}", new.file_name(), old.file_name())
            });
            checked += 1;
        }
        assert!(checked >= 1, "contact v1 -> v2 at least");
    }

    #[test]
    fn the_checker_refuses_a_new_required_field() {
        // Guards the test above: a check that cannot fail proves nothing.
        let catalog = repo_catalog();
        let v2 = catalog.get("contact", Some(2)).unwrap();
        let broken = v2.schema.text.replacen(
            r#"{"name": "locale", "type": ["null", "string"], "default": null,"#,
            r#"{"name": "locale", "type": "string","#,
            1,
        );
        assert_ne!(broken, v2.schema.text);
        let old = parse(catalog.get("contact", Some(1)).unwrap());
        let broken = Schema::parse_str(&broken).unwrap();
        assert!(SchemaCompatibility::can_read(&old, &broken).is_err());
    }

    #[test]
    fn lookup_by_entity_and_version() {
        let catalog = repo_catalog();
        assert_eq!(catalog.get("contact", None).unwrap().version, 2);
        assert_eq!(catalog.get("contact", Some(1)).unwrap().version, 1);
        assert_eq!(
            catalog.get("order", None).unwrap().schema.name,
            "io.switchboard.canonical.Order"
        );
        assert!(catalog.get("contact", Some(9)).is_none());
        assert!(catalog.get("nope", None).is_none());
    }

    #[test]
    fn contact_v1_records_decode_with_the_v2_reader() {
        let contact = Contact {
            id: "c-1".into(),
            email: Some("ada@example.com".into()),
            first_name: Some("Ada".into()),
            last_name: None,
            phone: None,
            deleted: false,
            source_connection: "shop".into(),
            source_entity: "customers".into(),
            source_id: "1".into(),
            source_updated_at: Some(1_640_995_200_000),
            source_event_id: "e-1".into(),
            mapping: "m.v1".into(),
        };
        let catalog = repo_catalog();
        let v1 = parse(catalog.get("contact", Some(1)).unwrap());
        let v2 = parse(catalog.get("contact", Some(2)).unwrap());
        let value = apache_avro::to_value(&contact)
            .unwrap()
            .resolve(&v1)
            .unwrap();
        let bytes = GenericDatumWriter::builder(&v1)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let read = GenericDatumReader::builder(&v1)
            .reader_schema(&v2)
            .build()
            .unwrap()
            .read_value(&mut bytes.as_slice())
            .unwrap();
        let back: Contact = apache_avro::from_value(&read).unwrap();
        assert_eq!(back, contact);
    }
}
