//! The raw `ChangeEvent` envelope published by ingest to `sb.raw.<connection>.<entity>`.
//!
//! The schema lives in `schemas/raw/change-event.v1.avsc` and is compiled in, so every
//! service registers and reads the same text.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::avro::SchemaDef;

/// Avro schema of [`ChangeEvent`].
pub const CHANGE_EVENT_SCHEMA: SchemaDef = SchemaDef {
    name: "io.switchboard.raw.ChangeEvent",
    text: include_str!("../../../schemas/raw/change-event.v1.avsc"),
};

/// Namespace of every Switchboard UUIDv5 (event and canonical IDs).
pub const SWITCHBOARD_NAMESPACE: Uuid = Uuid::from_u128(0x5b0a_4d2e_6c1f_4e7a_9f3b_2a8c_1d0e_7f61);

/// What happened to the record at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// The record was created.
    Create,
    /// The record was changed.
    Update,
    /// The record was deleted.
    Delete,
}

/// One change of one source record, with the source payload verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Deterministic ID of this event (see [`ChangeEvent::derive_event_id`]).
    pub event_id: String,
    /// Configured connection name.
    pub connection: String,
    /// Connection type, e.g. `shopify`.
    pub system: String,
    /// Source entity, e.g. `customers`.
    pub entity: String,
    /// Native record ID as a string.
    pub record_id: String,
    /// Create, update or delete.
    pub operation: Operation,
    /// Source's change time, epoch milliseconds.
    pub source_timestamp: Option<i64>,
    /// When ingest received it, epoch milliseconds.
    pub received_at: i64,
    /// Source API version of the payload.
    pub api_version: Option<String>,
    /// Source delivery ID, if the source gives one.
    pub delivery_id: Option<String>,
    /// The verbatim source JSON.
    pub payload: String,
}

impl ChangeEvent {
    /// A replay or a redelivery of the same source delivery gets the same event ID: the
    /// delivery ID when the source gives one, else record ID and source timestamp.
    pub fn derive_event_id(
        connection: &str,
        entity: &str,
        record_id: &str,
        delivery_id: Option<&str>,
        source_timestamp: Option<i64>,
    ) -> String {
        let name = match delivery_id {
            Some(d) => format!("{connection}/{entity}/delivery/{d}"),
            None => format!(
                "{connection}/{entity}/{record_id}@{}",
                source_timestamp.unwrap_or_default()
            ),
        };
        Uuid::new_v5(&SWITCHBOARD_NAMESPACE, name.as_bytes()).to_string()
    }
}

/// The dedupe key of one version of one record, `v/<connection>/<entity>/<id>@<ms>`: a
/// reconciliation poll that finds a version a webhook already published skips it.
pub fn version_key(
    connection: &str,
    entity: &str,
    record_id: &str,
    source_timestamp: i64,
) -> String {
    format!("v/{connection}/{entity}/{record_id}@{source_timestamp}")
}
