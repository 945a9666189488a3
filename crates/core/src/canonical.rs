//! Canonical records: one model per business entity, independent of any system, so N
//! systems need N connections instead of N×(N−1). Schemas live in `schemas/canonical/`.

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
    /// Canonical entity, e.g. `contact`.
    pub entity: &'static str,
    /// Schema version.
    pub version: u32,
    /// The schema.
    pub schema: SchemaDef,
}

/// Every canonical schema compiled into this build.
pub const CANONICAL_SCHEMAS: &[CanonicalSchema] = &[CanonicalSchema {
    entity: "contact",
    version: 1,
    schema: CONTACT_V1_SCHEMA,
}];

/// The schema of `entity` at `version`, or its newest version when `version` is `None`.
pub fn canonical_schema(entity: &str, version: Option<u32>) -> Option<&'static CanonicalSchema> {
    CANONICAL_SCHEMAS
        .iter()
        .filter(|s| s.entity == entity && version.is_none_or(|v| v == s.version))
        .max_by_key(|s| s.version)
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
