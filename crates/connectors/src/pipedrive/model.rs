//! Pipedrive person shapes (API v2) and the canonical contact's mapping onto them, and the
//! one definition of a record's *version* that webhooks and polls share.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::canonical::Contact;
use switchboard_core::envelope::Operation;

use crate::webhook::{id_string, rfc3339_millis};

/// One version of a Pipedrive record as both the webhook `data` and a v2 list item show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The record's ID.
    pub record_id: String,
    /// `update_time` in epoch milliseconds (whole seconds: the API has no finer time).
    pub changed_at: i64,
    /// `Create` while `update_time` equals `add_time`, else `Update`.
    pub operation: Operation,
}

/// The version of a v2 record (`id`, `add_time`, `update_time`), if it has one. Webhook and
/// poll derive event IDs and dedupe keys from this, so the same edit seen both ways is one
/// version. Two edits within one second share a version: `update_time` has no finer grain.
pub fn version(record: &Value) -> Option<Version> {
    let changed_at = record
        .get("update_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_millis)?;
    let created_at = record
        .get("add_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_millis);
    Some(Version {
        record_id: id_string(record.get("id"))?,
        changed_at,
        operation: if created_at == Some(changed_at) {
            Operation::Create
        } else {
            Operation::Update
        },
    })
}

/// Body of a person create or update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonInput {
    /// Display name; required on create.
    pub name: String,
    /// E-mail addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Channel>,
    /// Phone numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<Channel>,
}

/// An e-mail or phone entry: `{value, primary, label}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    /// The address or number.
    pub value: String,
    /// Whether it is the primary one.
    pub primary: bool,
    /// `work`, `home`, ...
    pub label: &'static str,
}

impl PersonInput {
    /// The person a canonical contact becomes.
    pub fn from_contact(contact: &Contact) -> Self {
        let channel = |value: &Option<String>| {
            value
                .iter()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Channel {
                    value: v.clone(),
                    primary: true,
                    label: "work",
                })
                .collect()
        };
        Self {
            name: contact.display_name(),
            emails: channel(&contact.email),
            phones: channel(&contact.phone),
        }
    }
}

/// `{"success": true, "data": T}`.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
    pub data: T,
}

/// A person as returned by create, get and update.
#[derive(Debug, Deserialize)]
pub(super) struct Person {
    pub id: u64,
}

/// `data` of a search.
#[derive(Debug, Deserialize)]
pub(super) struct SearchData {
    pub items: Vec<SearchItem>,
}

/// One search hit.
#[derive(Debug, Deserialize)]
pub(super) struct SearchItem {
    pub item: SearchPerson,
}

/// The person inside a search hit; `emails` are plain strings there.
#[derive(Debug, Deserialize)]
pub(super) struct SearchPerson {
    pub id: u64,
    #[serde(default)]
    pub emails: Vec<String>,
}
