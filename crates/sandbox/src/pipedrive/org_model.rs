//! Pipedrive API v2 organization object and request-body validation.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI models of the official SDK
//! `pipedrive/client-nodejs`, `src/versions/v2/models/organization-item.ts`,
//! `organization-item-address.ts` and `add-organization-request.ts`):
//! - An organization is `{id, name, owner_id, add_time, update_time, is_deleted,
//!   visible_to, address, label_ids, custom_fields}`.
//! - `address` is `{value, country, admin_area_level_1, admin_area_level_2, locality,
//!   sublocality, route, street_number, postal_code}` (all strings; `value` is the full
//!   address).
//! - `addOrganization` takes `name, owner_id, add_time, update_time, visible_to, label_ids,
//!   address, custom_fields`; `updateOrganization` the same minus `add_time`.
//!
//! Stricter-than-known choices: `name` is required on create (the OpenAPI marks it so for
//! `addOrganization`; the generated model leaves it optional) and may not be blanked on
//! update; unknown fields (top level and inside `address`) are a 400; an `address` must
//! carry a non-empty `value`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{
    Mode, Rejection, custom_fields, label_ids, non_empty_string, only_known_fields, parse_time,
    positive_int, visibility,
};

const FIELDS: [&str; 8] = [
    "name",
    "owner_id",
    "add_time",
    "update_time",
    "visible_to",
    "label_ids",
    "address",
    "custom_fields",
];

const ADDRESS_FIELDS: [&str; 9] = [
    "value",
    "country",
    "admin_area_level_1",
    "admin_area_level_2",
    "locality",
    "sublocality",
    "route",
    "street_number",
    "postal_code",
];

/// The structured address of an organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The full address.
    pub value: String,
    /// Country.
    pub country: Option<String>,
    /// Admin area level 1 (e.g. state).
    pub admin_area_level_1: Option<String>,
    /// Admin area level 2 (e.g. county).
    pub admin_area_level_2: Option<String>,
    /// Locality (e.g. city).
    pub locality: Option<String>,
    /// Sublocality (e.g. neighbourhood).
    pub sublocality: Option<String>,
    /// Route (e.g. street).
    pub route: Option<String>,
    /// Street number.
    pub street_number: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
}

/// An organization as the emulator stores it and the v2 API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Sequential integer ID.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Owning user.
    pub owner_id: u64,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub add_time: String,
    /// Last update time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub update_time: String,
    /// Soft-deleted (purged by the real API after 30 days; the emulator keeps it).
    pub is_deleted: bool,
    /// Visibility group.
    pub visible_to: u64,
    /// Address, null when none was set.
    pub address: Option<Address>,
    /// Label IDs.
    pub label_ids: Vec<u64>,
    /// Custom field values keyed by 40-character field hash.
    pub custom_fields: Map<String, Value>,
}

/// A validated create or update body. `None` means "not sent".
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct OrganizationInput {
    pub name: Option<String>,
    pub owner_id: Option<u64>,
    pub add_time: Option<String>,
    pub update_time: Option<String>,
    pub visible_to: Option<u64>,
    pub label_ids: Option<Vec<u64>>,
    /// `Some(None)` clears the address.
    pub address: Option<Option<Address>>,
    pub custom_fields: Option<Map<String, Value>>,
}

/// Validates a JSON body for `addOrganization` or `updateOrganization`.
pub(crate) fn parse_organization_input(
    body: &Value,
    mode: Mode,
) -> Result<OrganizationInput, Rejection> {
    let Some(obj) = body.as_object() else {
        return Err(Rejection::bad_request("Request body must be a JSON object"));
    };
    only_known_fields(obj, &FIELDS)?;
    if mode == Mode::Update && obj.contains_key("add_time") {
        return Err(Rejection::bad_request(
            "Validation failed: add_time: Unknown field",
        ));
    }
    let mut input = OrganizationInput::default();
    match obj.get("name") {
        None | Some(Value::Null) if mode == Mode::Create => {
            return Err(Rejection::bad_request("Name must be given."));
        }
        None => {}
        Some(v) => {
            input.name = Some(
                non_empty_string("name", v)
                    .map_err(|_| Rejection::bad_request("Name must be given."))?,
            )
        }
    }
    if let Some(v) = obj.get("owner_id") {
        input.owner_id = Some(positive_int("owner_id", v)?);
    }
    if let Some(v) = obj.get("add_time") {
        input.add_time = Some(parse_time("add_time", v)?);
    }
    if let Some(v) = obj.get("update_time") {
        input.update_time = Some(parse_time("update_time", v)?);
    }
    if let Some(v) = obj.get("visible_to") {
        input.visible_to = Some(visibility(v)?);
    }
    if let Some(v) = obj.get("label_ids") {
        input.label_ids = Some(label_ids(v)?);
    }
    match obj.get("address") {
        None => {}
        Some(Value::Null) => input.address = Some(None),
        Some(v) => input.address = Some(Some(parse_address(v)?)),
    }
    if let Some(v) = obj.get("custom_fields") {
        input.custom_fields = Some(custom_fields(v)?);
    }
    Ok(input)
}

fn parse_address(v: &Value) -> Result<Address, Rejection> {
    let Some(obj) = v.as_object() else {
        return Err(Rejection::bad_request(
            "Validation failed: address: Expected object",
        ));
    };
    if let Some(key) = obj.keys().find(|k| !ADDRESS_FIELDS.contains(&k.as_str())) {
        return Err(Rejection::bad_request(format!(
            "Validation failed: address.{key}: Unknown field"
        )));
    }
    let part = |name: &str| -> Result<Option<String>, Rejection> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Rejection::bad_request(format!(
                "Validation failed: address.{name}: Expected string"
            ))),
        }
    };
    let value = match obj.get("value") {
        Some(v) => non_empty_string("address.value", v)?,
        None => {
            return Err(Rejection::bad_request(
                "Validation failed: address.value: is required",
            ));
        }
    };
    Ok(Address {
        value,
        country: part("country")?,
        admin_area_level_1: part("admin_area_level_1")?,
        admin_area_level_2: part("admin_area_level_2")?,
        locality: part("locality")?,
        sublocality: part("sublocality")?,
        route: part("route")?,
        street_number: part("street_number")?,
        postal_code: part("postal_code")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    #[test]
    fn create_needs_a_name_and_update_may_omit_it() {
        let err = parse_organization_input(&json!({}), Mode::Create).unwrap_err();
        assert_eq!(
            (err.status, err.message.as_str()),
            (StatusCode::BAD_REQUEST, "Name must be given.")
        );
        let ok = parse_organization_input(&json!({"visible_to": 7}), Mode::Update).unwrap();
        assert_eq!((ok.name, ok.visible_to), (None, Some(7)));
        assert!(parse_organization_input(&json!({"name": " "}), Mode::Update).is_err());
        assert!(
            parse_organization_input(&json!({"add_time": "2024-01-01T00:00:00Z"}), Mode::Update)
                .is_err()
        );
    }

    #[test]
    fn address_is_structured_and_checked() {
        let input = parse_organization_input(
            &json!({"name": "Acme", "address": {"value": "1 Main St, Springfield", "locality": "Springfield"}}),
            Mode::Create,
        )
        .unwrap();
        let address = input.address.unwrap().unwrap();
        assert_eq!(address.locality.as_deref(), Some("Springfield"));
        assert_eq!(address.country, None);
        for bad in [
            json!("1 Main St"),
            json!({"locality": "x"}),
            json!({"value": "x", "city": "y"}),
            json!({"value": "x", "country": 1}),
        ] {
            assert!(
                parse_organization_input(&json!({"name": "A", "address": bad}), Mode::Create)
                    .is_err(),
                "{bad}"
            );
        }
        let cleared = parse_organization_input(&json!({"address": null}), Mode::Update).unwrap();
        assert_eq!(cleared.address, Some(None));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse_organization_input(&json!({"name": "A", "website": "x"}), Mode::Create)
            .unwrap_err();
        assert!(err.message.contains("website"), "{err:?}");
    }
}
