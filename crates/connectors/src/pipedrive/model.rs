//! Pipedrive person shapes (API v2) and the canonical contact's mapping onto them.

use serde::{Deserialize, Serialize};
use switchboard_core::canonical::Contact;

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
