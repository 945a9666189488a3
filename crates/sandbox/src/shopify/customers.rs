//! Customer operations of the Admin REST API: create, update, delete, and the sandbox's
//! "trigger a customer change"; each fires its webhooks.
//!
//! Contract facts followed:
//! - Bodies are `{"customer": {...}}`; a missing root is 400 `{"errors":{"customer":
//!   "Required parameter missing or invalid"}}` (`errors.rs`).
//! - A customer must have a name, phone number or email address (the message Shopify's
//!   own docs show for `customerCreate`); the REST rendering as a `base` error is the
//!   emulator's, as Rails renders model-level errors.
//! - Email is unique per shop: a second customer with the same address (compared
//!   case-insensitively) is 422 `{"errors":{"email":["has already been taken"]}}`; the
//!   same for phone. This is what makes check-before-create matter.
//! - Topics `customers/create`, `customers/update`, `customers/delete`. The delete payload
//!   is the stripped object of Shopify's webhook reference sample (ID, `phone: null`, empty
//!   `addresses`/`tax_exemptions`, null consents, `admin_graphql_api_id`) — recalled from
//!   that sample, not listed in saas-contracts.md.
//!
//! Stricter choices: a body must be sent as `application/json` (otherwise the root is
//! "missing", as Rails would not parse it); phones must be E.164-like (`+` and 7–15 digits
//! after separators are dropped), since the sandbox has no shop country to complete a
//! national number; an update that changes nothing fires no webhook and keeps `updated_at`.
//! `control.count_create` counts each create under the lower-cased email, else the phone,
//! else the `admin_graphql_api_id`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, FieldErrors};
use super::input::{email_ok, normalize_phone, normalize_tags, root, text};
use super::json::Json;
use super::model::Customer;
use super::schema::Resource;
use super::state::{Shared, State};

/// A change made through the sandbox's trigger (`POST /_sandbox/shopify/trigger/customer`):
/// updates the customer with this email, or creates one, and fires the webhook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerChange {
    /// Finds the customer; required.
    pub email: String,
    /// New first name, if given.
    #[serde(default)]
    pub first_name: Option<String>,
    /// New last name, if given.
    #[serde(default)]
    pub last_name: Option<String>,
    /// New phone (E.164), if given.
    #[serde(default)]
    pub phone: Option<String>,
    /// New tags, if given.
    #[serde(default)]
    pub tags: Option<String>,
}

/// The fields a request may set; `None` leaves a field alone.
#[derive(Debug, Default)]
pub(crate) struct CustomerInput {
    pub email: Option<String>,
    pub phone: Option<Option<String>>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Option<String>,
    pub verified_email: Option<bool>,
    pub email_marketing_consent: Option<Option<Value>>,
    pub sms_marketing_consent: Option<Option<Value>>,
    pub addresses: Option<Vec<Value>>,
}

pub(crate) fn parse_customer(obj: &Map<String, Value>) -> Result<CustomerInput, ApiError> {
    let mut errors = FieldErrors::default();
    let mut input = CustomerInput {
        email: text(obj, "email", &mut errors),
        phone: text(obj, "phone", &mut errors).map(|p| (!p.is_empty()).then_some(p)),
        first_name: text(obj, "first_name", &mut errors),
        last_name: text(obj, "last_name", &mut errors),
        tags: text(obj, "tags", &mut errors).map(|t| normalize_tags(&t)),
        ..CustomerInput::default()
    };
    match obj.get("verified_email") {
        None => {}
        Some(Value::Bool(b)) => input.verified_email = Some(*b),
        Some(_) => errors.add("verified_email", "is invalid"),
    }
    for (key, slot) in [
        (
            "email_marketing_consent",
            &mut input.email_marketing_consent,
        ),
        ("sms_marketing_consent", &mut input.sms_marketing_consent),
    ] {
        match obj.get(key) {
            None => {}
            Some(Value::Null) => *slot = Some(None),
            Some(v @ Value::Object(_)) => *slot = Some(Some(v.clone())),
            Some(_) => errors.add(key, "is invalid"),
        }
    }
    match obj.get("addresses") {
        None => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            input.addresses = Some(items.clone());
        }
        Some(_) => errors.add("addresses", "is invalid"),
    }
    errors.into_result().map(|()| input)
}

fn apply(c: &mut Customer, input: &CustomerInput, errors: &mut FieldErrors) {
    if let Some(email) = &input.email {
        c.email = email.clone();
    }
    if let Some(phone) = &input.phone {
        c.phone = match phone {
            None => None,
            Some(raw) => match normalize_phone(raw) {
                Some(p) => Some(p),
                None => {
                    errors.add("phone", "is invalid");
                    c.phone.clone()
                }
            },
        };
    }
    if let Some(v) = &input.first_name {
        c.first_name = v.clone();
    }
    if let Some(v) = &input.last_name {
        c.last_name = v.clone();
    }
    if let Some(v) = &input.tags {
        c.tags = v.clone();
    }
    if let Some(v) = input.verified_email {
        c.verified_email = v;
    }
    if let Some(v) = &input.email_marketing_consent {
        c.email_marketing_consent = v.clone();
    }
    if let Some(v) = &input.sms_marketing_consent {
        c.sms_marketing_consent = v.clone();
    }
    if let Some(v) = &input.addresses {
        c.addresses = v.clone();
    }
}

fn validate(state: &State, c: &Customer, mut errors: FieldErrors) -> Result<(), ApiError> {
    if c.email.is_empty() && c.phone.is_none() && c.first_name.is_empty() && c.last_name.is_empty()
    {
        errors.add(
            "base",
            "Customer must have a name, phone number or email address",
        );
    }
    if !c.email.is_empty() {
        if !email_ok(&c.email) {
            errors.add("email", "is invalid");
        } else if state
            .customer_by_email(&c.email)
            .is_some_and(|other| other.id != c.id)
        {
            errors.add("email", "has already been taken");
        }
    }
    if let Some(phone) = &c.phone
        && state
            .customers
            .values()
            .any(|o| o.id != c.id && o.phone.as_deref() == Some(phone.as_str()))
    {
        errors.add("phone", "has already been taken");
    }
    errors.into_result()
}

fn create_key(c: &Customer) -> String {
    if !c.email.is_empty() {
        c.email.to_ascii_lowercase()
    } else if let Some(phone) = &c.phone {
        phone.clone()
    } else {
        c.admin_graphql_api_id.clone()
    }
}

/// Creates a customer from `input` under an already-held lock; fires `customers/create`.
pub(crate) fn create_locked(
    shared: &Shared,
    state: &mut State,
    input: &CustomerInput,
) -> Result<Customer, ApiError> {
    let now = shared.shop_now();
    let mut c = Customer::new(0, "", "", "", now);
    c.currency = shared.config.currency.clone();
    let mut errors = FieldErrors::default();
    apply(&mut c, input, &mut errors);
    validate(state, &c, errors)?;
    c.id = state.customer_ids.next_id();
    c.admin_graphql_api_id = format!("gid://shopify/Customer/{}", c.id);
    state.customers.insert(c.id, c.clone());
    shared.control.count_create(&create_key(&c));
    shared.emit(
        state,
        "customers/create",
        Resource::Customer,
        &State::customer_doc(&c),
    );
    Ok(c)
}

/// `POST /customers.json`.
pub(crate) fn create(shared: &Shared, body: &Value) -> Result<Customer, ApiError> {
    let input = parse_customer(root(body, "customer")?)?;
    create_locked(shared, &mut shared.lock(), &input)
}

fn update_locked(
    shared: &Shared,
    state: &mut State,
    id: u64,
    input: &CustomerInput,
    always_fire: bool,
) -> Result<Customer, ApiError> {
    let before = state
        .customers
        .get(&id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let mut c = before.clone();
    let mut errors = FieldErrors::default();
    apply(&mut c, input, &mut errors);
    validate(state, &c, errors)?;
    if c == before && !always_fire {
        return Ok(c);
    }
    c.updated_at = shared.shop_now();
    state.customers.insert(id, c.clone());
    shared.emit(
        state,
        "customers/update",
        Resource::Customer,
        &State::customer_doc(&c),
    );
    Ok(c)
}

/// `PUT /customers/{id}.json`.
pub(crate) fn update(shared: &Shared, id: u64, body: &Value) -> Result<Customer, ApiError> {
    let input = parse_customer(root(body, "customer")?)?;
    update_locked(shared, &mut shared.lock(), id, &input, false)
}

/// `DELETE /customers/{id}.json`; fires `customers/delete`.
pub(crate) fn delete(shared: &Shared, id: u64) -> Result<(), ApiError> {
    let mut state = shared.lock();
    let c = state
        .customers
        .remove(&id)
        .ok_or_else(ApiError::not_found)?;
    let payload = Json::from(json!({
        "id": c.id,
        "phone": null,
        "addresses": [],
        "tax_exemptions": [],
        "email_marketing_consent": null,
        "sms_marketing_consent": null,
        "admin_graphql_api_id": c.admin_graphql_api_id,
    }));
    // `json!` sorts keys; put them back in the sample's order.
    let ordered = reorder(
        payload,
        &[
            "id",
            "phone",
            "addresses",
            "tax_exemptions",
            "email_marketing_consent",
            "sms_marketing_consent",
            "admin_graphql_api_id",
        ],
    );
    shared.emit(&mut state, "customers/delete", Resource::Customer, &ordered);
    Ok(())
}

fn reorder(doc: Json, order: &[&str]) -> Json {
    match doc {
        Json::Object(mut pairs) => {
            pairs.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
            Json::Object(pairs)
        }
        other => other,
    }
}

/// The sandbox trigger: updates (always firing `customers/update`) or creates.
pub(crate) fn trigger(
    shared: &Shared,
    change: &CustomerChange,
) -> Result<(Customer, &'static str), ApiError> {
    let input = CustomerInput {
        email: Some(change.email.trim().to_owned()),
        phone: change.phone.clone().map(Some),
        first_name: change.first_name.clone(),
        last_name: change.last_name.clone(),
        tags: change.tags.as_deref().map(normalize_tags),
        ..CustomerInput::default()
    };
    let mut state = shared.lock();
    let existing = state.customer_by_email(change.email.trim()).map(|c| c.id);
    match existing {
        Some(id) => {
            update_locked(shared, &mut state, id, &input, true).map(|c| (c, "customers/update"))
        }
        None => create_locked(shared, &mut state, &input).map(|c| (c, "customers/create")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_are_field_errors() {
        let body = json!({"customer": {"email": 5, "verified_email": "yes"}});
        let err = parse_customer(root(&body, "customer").unwrap()).unwrap_err();
        assert_eq!(
            err.errors,
            json!({"email": ["is invalid"], "verified_email": ["is invalid"]})
        );
        assert_eq!(
            root(&json!({"customers": {}}), "customer")
                .unwrap_err()
                .status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }
}
