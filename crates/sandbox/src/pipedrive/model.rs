//! Pipedrive API v2 person object and request-body validation.
//!
//! Contract facts followed (saas-contracts.md §2.5, and the v2 OpenAPI document that the
//! official SDK `pipedrive/client-nodejs` is generated from, `src/versions/v2/models/`):
//! - A person is `{id, name, first_name, last_name, owner_id, org_id, add_time,
//!   update_time, emails, phones, is_deleted, visible_to, label_ids, picture_id,
//!   custom_fields}`; `emails`/`phones` items are `{value, primary, label}`; times are
//!   `YYYY-MM-DDTHH:MM:SSZ` (the OpenAPI examples, e.g. `'2021-01-01T00:00:00Z'`).
//! - `addPerson` requires `name` and accepts `name, owner_id, org_id, add_time, emails,
//!   phones, visible_to, label_ids, marketing_status, custom_fields`; `updatePerson` takes
//!   the same minus `add_time`. The Contact-Sync-only fields `im, postal_address, notes,
//!   birthday, job_title` answer **403** without Contact Sync (OpenAPI description of both
//!   operations; §2.5). The emulated company has no Contact Sync.
//! - The "Name must be given." message is the live v1 wording seen in
//!   `pipedrive/client-nodejs` issue #129; "Person not found" with the long `error_info` is
//!   the body public client tests fixture for a 404.
//!
//! Stricter-than-known choices (the reference is silent): unknown top-level fields are a
//! 400, unknown keys inside an email/phone item are a 400, custom-field keys must look like
//! Pipedrive's 40-character hex hashes, and `add_time` must be RFC 3339.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{
    Mode, Rejection, custom_fields, label_ids, only_known_fields, parse_time, positive_int,
    visibility,
};

/// The Contact-Sync-only person fields: setting any of them without Contact Sync is a 403.
pub const CONTACT_SYNC_FIELDS: [&str; 5] =
    ["im", "postal_address", "notes", "birthday", "job_title"];

const CREATE_FIELDS: [&str; 10] = [
    "name",
    "owner_id",
    "org_id",
    "add_time",
    "emails",
    "phones",
    "visible_to",
    "label_ids",
    "marketing_status",
    "custom_fields",
];

const MARKETING_STATUSES: [&str; 4] = ["no_consent", "unsubscribed", "subscribed", "archived"];

/// One email address or phone number of a person, as the v2 API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactValue {
    /// The address or number itself.
    pub value: String,
    /// Whether this is the person's primary one (exactly one is, when any exist).
    pub primary: bool,
    /// Classification such as `work` or `home`.
    pub label: String,
}

/// A person as the emulator stores it and the v2 API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Sequential integer ID.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// First word of `name` (emulator's split rule).
    pub first_name: Option<String>,
    /// Rest of `name` after the first word, if any.
    pub last_name: Option<String>,
    /// Owning user.
    pub owner_id: u64,
    /// Linked organization, if any.
    pub org_id: Option<u64>,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub add_time: String,
    /// Last update time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub update_time: String,
    /// Email addresses.
    pub emails: Vec<ContactValue>,
    /// Phone numbers.
    pub phones: Vec<ContactValue>,
    /// Soft-deleted (purged by the real API after 30 days; the emulator keeps it).
    pub is_deleted: bool,
    /// Visibility group.
    pub visible_to: u64,
    /// Label IDs.
    pub label_ids: Vec<u64>,
    /// Picture ID (never set by the emulator).
    pub picture_id: Option<u64>,
    /// Campaigns marketing status, only present when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing_status: Option<String>,
    /// Custom field values keyed by 40-character field hash.
    pub custom_fields: Map<String, Value>,
}

impl Person {
    /// True when any of the person's emails equals `email`, ignoring ASCII case.
    pub fn has_email(&self, email: &str) -> bool {
        self.emails
            .iter()
            .any(|e| e.value.eq_ignore_ascii_case(email))
    }
}

/// A validated create or update body. `None` means "not sent".
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PersonInput {
    pub name: Option<String>,
    pub owner_id: Option<u64>,
    /// `Some(None)` clears the link (`"org_id": null`).
    pub org_id: Option<Option<u64>>,
    pub add_time: Option<String>,
    pub emails: Option<Vec<ContactValue>>,
    pub phones: Option<Vec<ContactValue>>,
    pub visible_to: Option<u64>,
    pub label_ids: Option<Vec<u64>>,
    pub marketing_status: Option<String>,
    /// Values of `null` clear the field.
    pub custom_fields: Option<Map<String, Value>>,
}

/// Validates a JSON body for `addPerson` (`Mode::Create`) or `updatePerson`.
pub(crate) fn parse_person_input(body: &Value, mode: Mode) -> Result<PersonInput, Rejection> {
    let Some(obj) = body.as_object() else {
        return Err(Rejection::bad_request("Request body must be a JSON object"));
    };
    // 403 first: it is the answer the real API documents for these fields, whatever else
    // the body holds.
    if let Some(field) = CONTACT_SYNC_FIELDS.iter().find(|f| obj.contains_key(**f)) {
        return Err(Rejection {
            status: axum::http::StatusCode::FORBIDDEN,
            message: format!(
                "Field '{field}' is only available with Contact Sync, which is not enabled for this company"
            ),
        });
    }
    only_known_fields(obj, &CREATE_FIELDS)?;
    if mode == Mode::Update && obj.contains_key("add_time") {
        return Err(Rejection::bad_request(
            "Validation failed: add_time: Unknown field",
        ));
    }
    let mut input = PersonInput::default();
    match obj.get("name") {
        None | Some(Value::Null) if mode == Mode::Create => {
            return Err(Rejection::bad_request("Name must be given."));
        }
        None => {}
        Some(Value::String(s)) if !s.trim().is_empty() => input.name = Some(s.trim().to_owned()),
        Some(_) => return Err(Rejection::bad_request("Name must be given.")),
    }
    if let Some(v) = obj.get("owner_id") {
        input.owner_id = Some(positive_int("owner_id", v)?);
    }
    match obj.get("org_id") {
        None => {}
        Some(Value::Null) => input.org_id = Some(None),
        Some(v) => input.org_id = Some(Some(positive_int("org_id", v)?)),
    }
    if let Some(v) = obj.get("add_time") {
        input.add_time = Some(parse_time("add_time", v)?);
    }
    if let Some(v) = obj.get("emails") {
        input.emails = Some(contact_values("emails", v)?);
    }
    if let Some(v) = obj.get("phones") {
        input.phones = Some(contact_values("phones", v)?);
    }
    if let Some(v) = obj.get("visible_to") {
        input.visible_to = Some(visibility(v)?);
    }
    if let Some(v) = obj.get("label_ids") {
        input.label_ids = Some(label_ids(v)?);
    }
    if let Some(v) = obj.get("marketing_status") {
        match v.as_str() {
            Some(s) if MARKETING_STATUSES.contains(&s) => {
                input.marketing_status = Some(s.to_owned())
            }
            _ => {
                return Err(Rejection::bad_request(
                    "Validation failed: marketing_status: must be one of no_consent, unsubscribed, subscribed, archived",
                ));
            }
        }
    }
    if let Some(v) = obj.get("custom_fields") {
        input.custom_fields = Some(custom_fields(v)?);
    }
    Ok(input)
}

fn contact_values(field: &str, v: &Value) -> Result<Vec<ContactValue>, Rejection> {
    let bad = |why: &str| Rejection::bad_request(format!("Validation failed: {field}: {why}"));
    let Some(items) = v.as_array() else {
        return Err(bad("Expected array"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(obj) = item.as_object() else {
            return Err(bad("Expected array of objects {value, primary, label}"));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "value" | "primary" | "label"))
        {
            return Err(bad(&format!("Unknown field '{k}'")));
        }
        let value = match obj.get("value").and_then(Value::as_str).map(str::trim) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => return Err(bad("value must be a non-empty string")),
        };
        let primary = match obj.get("primary") {
            None => false,
            Some(p) => p
                .as_bool()
                .ok_or_else(|| bad("primary must be a boolean"))?,
        };
        // Emulator's default when no label is sent; the reference does not say.
        let label = match obj.get("label") {
            None => "work".to_owned(),
            Some(l) => l
                .as_str()
                .ok_or_else(|| bad("label must be a string"))?
                .to_owned(),
        };
        out.push(ContactValue {
            value,
            primary,
            label,
        });
    }
    normalise_primary(&mut out);
    Ok(out)
}

/// Exactly one primary when the list is non-empty: the first one flagged, else the first.
fn normalise_primary(values: &mut [ContactValue]) {
    let first_primary = values.iter().position(|v| v.primary).unwrap_or(0);
    for (i, v) in values.iter_mut().enumerate() {
        v.primary = i == first_primary;
    }
}

/// Splits a full name the emulator's way: first word, then the rest.
pub(crate) fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let mut parts = name.trim().splitn(2, char::is_whitespace);
    let first = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
    let last = parts
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    (first, last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "model_tests.rs"]
mod tests;
