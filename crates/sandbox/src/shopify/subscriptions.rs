//! Webhook subscriptions of the Admin REST API (`/webhooks.json`).
//!
//! Contract facts followed:
//! - `POST /webhooks.json` with `{"webhook": {"topic", "address", "format": "json"}}`
//!   answers 201 `{"webhook": {id, address, topic, created_at, updated_at, format, fields,
//!   metafield_namespaces, api_version, private_metafield_namespaces}}` — the field list and
//!   order of Shopify's REST samples (found with the code search; ID 1091138715786 there is
//!   where the emulator's webhook IDs start). `api_version` is the version that served the
//!   request; deliveries are serialised with it, falling forward when it retires (§1.7).
//! - `fields` limits the payload to those top-level keys (§1.4 `include_fields`).
//! - `GET /webhooks.json` (filters `topic`, `address`, `since_id`, `limit`),
//!   `GET|DELETE /webhooks/{id}.json`, `GET /webhooks/count.json`.
//!
//! Stricter or sandbox-specific choices: the address must be a loopback URL (the sandbox
//! never sends elsewhere; Shopify itself demands `https`, which a loopback receiver cannot
//! offer); only `format: json` is accepted; a second subscription with the same topic and
//! address is 422 `{"errors":{"address":["for this topic has already been taken"]}}`; an
//! unknown topic is 422 on `topic`. Subscriptions made in-process count as created through
//! the Admin API, so they too are deleted when a webhook exhausts its retries (§1.3).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::errors::{ApiError, FieldErrors};
use super::input::{root, text};
use super::model::ser_time;
use super::state::Shared;

/// First webhook subscription ID: the one in Shopify's REST sample.
pub const SAMPLE_WEBHOOK_ID: u64 = 1_091_138_715_786;

/// Topics a subscription may name. Only the customer and order ones ever fire here; the
/// rest are accepted so an app's usual registrations succeed.
pub const KNOWN_TOPICS: [&str; 16] = [
    "customers/create",
    "customers/update",
    "customers/delete",
    "orders/create",
    "orders/updated",
    "orders/delete",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "products/create",
    "products/update",
    "products/delete",
    "app/uninstalled",
    "shop/update",
    "refunds/create",
];

/// One webhook subscription, serialised as the REST resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// Subscription ID.
    pub id: u64,
    /// Loopback URL deliveries go to.
    pub address: String,
    /// Topic, e.g. `customers/update`.
    pub topic: String,
    /// Creation time, with the shop's offset.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// Last change, with the shop's offset.
    #[serde(serialize_with = "ser_time")]
    pub updated_at: OffsetDateTime,
    /// Always `json`.
    pub format: String,
    /// Top-level payload keys to include; empty means all.
    pub fields: Vec<String>,
    /// Always empty (metafields are not emulated).
    pub metafield_namespaces: Vec<String>,
    /// The API version payloads are serialised with.
    pub api_version: String,
    /// Always empty.
    pub private_metafield_namespaces: Vec<String>,
}

/// What a new subscription asks for.
#[derive(Debug, Clone)]
pub(crate) struct NewSubscription {
    pub topic: String,
    pub address: String,
    pub format: String,
    pub fields: Vec<String>,
}

pub(crate) fn parse(body: &Value) -> Result<NewSubscription, ApiError> {
    let obj = root(body, "webhook")?;
    let mut errors = FieldErrors::default();
    let topic = text(obj, "topic", &mut errors).unwrap_or_default();
    let address = text(obj, "address", &mut errors).unwrap_or_default();
    let format = text(obj, "format", &mut errors).unwrap_or_else(|| "json".to_owned());
    let fields = match obj.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            errors.add("fields", "is invalid");
            Vec::new()
        }
    };
    errors.into_result()?;
    Ok(NewSubscription {
        topic,
        address,
        format,
        fields,
    })
}

/// Creates a subscription serialised with `api_version`.
pub(crate) fn create(
    shared: &Shared,
    new: NewSubscription,
    api_version: &str,
) -> Result<Subscription, ApiError> {
    let mut errors = FieldErrors::default();
    if new.topic.is_empty() {
        errors.add("topic", "can't be blank");
    } else if !KNOWN_TOPICS.contains(&new.topic.as_str()) {
        errors.add("topic", &format!("Invalid topic specified: {}", new.topic));
    }
    if new.address.is_empty() {
        errors.add("address", "can't be blank");
    } else if !crate::net::is_loopback_url(&new.address) {
        errors.add(
            "address",
            "must be a loopback URL in the sandbox (http://127.0.0.1:<port>/...)",
        );
    }
    if new.format != "json" {
        errors.add("format", "is not included in the list");
    }
    let mut state = shared.lock();
    if state
        .subscriptions
        .values()
        .any(|s| s.topic == new.topic && s.address == new.address)
    {
        errors.add("address", "for this topic has already been taken");
    }
    errors.into_result()?;
    let now = shared.shop_now();
    let sub = Subscription {
        id: state.webhook_ids.next_id(),
        address: new.address,
        topic: new.topic,
        created_at: now,
        updated_at: now,
        format: new.format,
        fields: new.fields,
        metafield_namespaces: Vec::new(),
        api_version: api_version.to_owned(),
        private_metafield_namespaces: Vec::new(),
    };
    state.subscriptions.insert(sub.id, sub.clone());
    Ok(sub)
}

/// Deletes a subscription; its queued webhooks are dropped before they are sent.
pub(crate) fn delete(shared: &Shared, id: u64) -> Result<(), ApiError> {
    let mut state = shared.lock();
    state
        .subscriptions
        .remove(&id)
        .map(|_| ())
        .ok_or_else(ApiError::not_found)?;
    state.outbox.drop_subscription(id);
    Ok(())
}
