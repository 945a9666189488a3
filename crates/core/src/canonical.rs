//! Canonical records: one model per business entity, independent of any system, so N
//! systems need N connections instead of N×(N−1). Schemas live in
//! `schemas/canonical/<entity>.v<N>.avsc` and are compiled in through
//! [`CANONICAL_SCHEMAS`].
//!
//! Guarantee (checked by the unit tests below): every compiled-in schema parses, carries the
//! same envelope fields, and each version of an entity is BACKWARD compatible with the one
//! before it, so a reader of the newest version reads every record ever written.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::avro::SchemaDef;
use crate::envelope::SWITCHBOARD_NAMESPACE;

/// Avro schema of [`Contact`] v1.
pub const CONTACT_V1_SCHEMA: SchemaDef = SchemaDef {
    name: "io.switchboard.canonical.Contact",
    text: include_str!("../../../schemas/canonical/contact.v1.avsc"),
};

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

macro_rules! canonical {
    ($entity:literal, $version:literal, $record:literal) => {
        CanonicalSchema {
            entity: $entity,
            version: $version,
            schema: SchemaDef {
                name: concat!("io.switchboard.canonical.", $record),
                text: include_str!(concat!(
                    "../../../schemas/canonical/",
                    $entity,
                    ".v",
                    $version,
                    ".avsc"
                )),
            },
        }
    };
}

/// Every canonical schema, by entity and then version (ascending).
pub const CANONICAL_SCHEMAS: &[CanonicalSchema] = &[
    canonical!("contact", 1, "Contact"),
    canonical!("contact", 2, "Contact"),
    canonical!("deal", 1, "Deal"),
    canonical!("invoice", 1, "Invoice"),
    canonical!("order", 1, "Order"),
    canonical!("organization", 1, "Organization"),
    canonical!("product", 1, "Product"),
];

/// The schema of `entity` at `version`, or its latest version when `version` is `None`.
pub fn canonical_schema(entity: &str, version: Option<u32>) -> Option<&'static CanonicalSchema> {
    let mut versions = CANONICAL_SCHEMAS.iter().filter(|s| s.entity == entity);
    match version {
        Some(v) => versions.find(|s| s.version == v),
        None => versions.max_by_key(|s| s.version),
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
        for schema in CANONICAL_SCHEMAS {
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
    fn every_file_in_the_directory_is_in_the_table() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/canonical");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".avsc"))
            .collect();
        files.sort();
        let mut table: Vec<String> = CANONICAL_SCHEMAS.iter().map(|s| s.file_name()).collect();
        table.sort();
        assert_eq!(files, table);
    }

    #[test]
    fn every_record_carries_the_envelope_of_contact_v1() {
        let envelope = [
            "id",
            "deleted",
            "source_connection",
            "source_entity",
            "source_id",
            "source_updated_at",
            "source_event_id",
            "mapping",
        ];
        let reference = fields(&Schema::parse_str(CONTACT_V1_SCHEMA.text).unwrap());
        for schema in CANONICAL_SCHEMAS {
            let own = fields(&parse(schema));
            for name in envelope {
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
        for pair in CANONICAL_SCHEMAS.windows(2) {
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
        let v2 = canonical_schema("contact", Some(2)).unwrap();
        let broken = v2.schema.text.replacen(
            r#"{"name": "locale", "type": ["null", "string"], "default": null,"#,
            r#"{"name": "locale", "type": "string","#,
            1,
        );
        assert_ne!(broken, v2.schema.text);
        let old = parse(canonical_schema("contact", Some(1)).unwrap());
        let broken = Schema::parse_str(&broken).unwrap();
        assert!(SchemaCompatibility::can_read(&old, &broken).is_err());
    }

    #[test]
    fn lookup_by_entity_and_version() {
        assert_eq!(canonical_schema("contact", None).unwrap().version, 2);
        assert_eq!(
            canonical_schema("contact", Some(1)).unwrap().schema.text,
            CONTACT_V1_SCHEMA.text
        );
        assert_eq!(
            canonical_schema("order", None).unwrap().schema.name,
            "io.switchboard.canonical.Order"
        );
        assert!(canonical_schema("contact", Some(9)).is_none());
        assert!(canonical_schema("nope", None).is_none());
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
        let v1 = Schema::parse_str(CONTACT_V1_SCHEMA.text).unwrap();
        let v2 = parse(canonical_schema("contact", Some(2)).unwrap());
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
