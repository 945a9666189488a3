//! Pipedrive webhooks v2: the subscription endpoints (`/v1/webhooks`) and their objects.
//! Deliveries, retries and the ban system are in `delivery.rs`.
//!
//! Contract facts followed (saas-contracts.md §2.3; the API reference page for Webhooks;
//! the SDK model `pipedrive/client-nodejs` `src/versions/v1/models/base-webhook.ts`):
//! - `POST /v1/webhooks` (JSON) takes `subscription_url` (required), `event_action`
//!   (`create|change|delete|*`, required), `event_object` (`activity, deal, lead, note,
//!   organization, person, pipeline, product, stage, user, *`, required), `user_id`,
//!   `http_auth_user`, `http_auth_password`, `version` (`1.0|2.0`, default `2.0`), `name`;
//!   answers **201** `{"status":"ok","success":true,"data":<webhook>}`. At most 40
//!   webhooks per user.
//! - `GET /v1/webhooks` answers `{"status":"ok","success":true,"data":[..]}`;
//!   `DELETE /v1/webhooks/{id}` answers `{"status":"ok","success":true}`.
//! - A webhook is `{id, company_id, owner_id, user_id, event_action, event_object,
//!   subscription_url, version, is_active, add_time, remove_time, type, http_auth_user,
//!   http_auth_password, remove_reason, last_delivery_time, last_http_status, admin_id,
//!   name}`, `type` `general`.
//!
//! Emulator rules and strict choices: `subscription_url` must be a loopback http(s) URL
//! (the sandbox never sends anywhere else); `version: "1.0"` is refused with 400 because
//! only v2 payloads are emulated (an honest refusal beats silently sending another shape);
//! the 41st webhook of a user is a 400; a deleted or auto-removed webhook disappears from
//! the list (the handle still reports it, with `remove_reason`).

mod delivery;
mod payload;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) use delivery::WebhookHub;
pub(crate) use payload::HubSettings;
pub use payload::{DeliveryOutcome, DeliveryRecord};

pub(crate) use super::events::Event;

use super::common::{
    Rejection, json_body, non_empty_string, only_known_fields, parse_id, positive_int,
};
use super::state::Shared;

/// Webhooks one user may have (§2.3).
pub const MAX_WEBHOOKS_PER_USER: usize = 40;

const EVENT_ACTIONS: [&str; 4] = ["create", "change", "delete", "*"];
const EVENT_OBJECTS: [&str; 11] = [
    "activity",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "*",
];
const FIELDS: [&str; 8] = [
    "subscription_url",
    "event_action",
    "event_object",
    "user_id",
    "http_auth_user",
    "http_auth_password",
    "version",
    "name",
];

/// A webhook subscription, as `/v1/webhooks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // Field names and meanings are the API's, listed in the module doc.
pub struct Webhook {
    pub id: u64,
    pub company_id: u64,
    pub owner_id: u64,
    pub user_id: u64,
    pub event_action: String,
    pub event_object: String,
    pub subscription_url: String,
    pub version: String,
    /// 1 while the webhook exists, 0 once removed.
    pub is_active: u8,
    pub add_time: String,
    pub remove_time: Option<String>,
    /// Always `general` (webhooks made by a user, not by an app).
    #[serde(rename = "type")]
    pub kind: String,
    pub http_auth_user: Option<String>,
    pub http_auth_password: Option<String>,
    pub remove_reason: Option<String>,
    pub last_delivery_time: Option<String>,
    pub last_http_status: Option<u16>,
    pub admin_id: u64,
    pub name: Option<String>,
}

/// A webhook plus the emulator's delivery bookkeeping, for tests and the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookState {
    /// The subscription.
    pub webhook: Webhook,
    /// Failed first attempts since the last ban (a ban starts at 10).
    pub failed_first_attempts: u32,
    /// End of the current ban, RFC 3339 virtual time.
    pub banned_until: Option<String>,
    /// First failure since the last success, RFC 3339 virtual time (3 days → removal).
    pub failing_since: Option<String>,
}

/// A validated `POST /v1/webhooks` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewWebhook {
    pub subscription_url: String,
    pub event_action: String,
    pub event_object: String,
    pub user_id: Option<u64>,
    pub http_auth_user: Option<String>,
    pub http_auth_password: Option<String>,
    pub name: Option<String>,
}

fn one_of(field: &str, v: Option<&Value>, allowed: &[&str]) -> Result<String, Rejection> {
    match v.and_then(Value::as_str) {
        Some(s) if allowed.contains(&s) => Ok(s.to_owned()),
        _ => Err(Rejection::bad_request(format!(
            "Validation failed: {field}: must be one of {}",
            allowed.join(", ")
        ))),
    }
}

fn optional_string(field: &str, v: Option<&Value>) -> Result<Option<String>, Rejection> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::bad_request(format!(
            "Validation failed: {field}: Expected string"
        ))),
    }
}

/// Validates a `POST /v1/webhooks` body.
pub(crate) fn parse_new_webhook(body: &Value) -> Result<NewWebhook, Rejection> {
    let Some(obj) = body.as_object() else {
        return Err(Rejection::bad_request("Request body must be a JSON object"));
    };
    only_known_fields(obj, &FIELDS)?;
    let url = match obj.get("subscription_url") {
        Some(v) => non_empty_string("subscription_url", v)?,
        None => {
            return Err(Rejection::bad_request(
                "Validation failed: subscription_url: is required",
            ));
        }
    };
    let http = url.starts_with("http://") || url.starts_with("https://");
    if !http || !crate::net::is_loopback_url(&url) {
        return Err(Rejection::bad_request(
            "Validation failed: subscription_url: the sandbox only delivers to loopback http(s) URLs",
        ));
    }
    match obj.get("version").map(|v| v.as_str()) {
        None | Some(Some("2.0")) => {}
        Some(Some("1.0")) => {
            return Err(Rejection::bad_request(
                "Validation failed: version: the sandbox only emulates webhooks version 2.0",
            ));
        }
        Some(_) => {
            return Err(Rejection::bad_request(
                "Validation failed: version: must be one of 1.0, 2.0",
            ));
        }
    }
    Ok(NewWebhook {
        subscription_url: url,
        event_action: one_of("event_action", obj.get("event_action"), &EVENT_ACTIONS)?,
        event_object: one_of("event_object", obj.get("event_object"), &EVENT_OBJECTS)?,
        user_id: obj
            .get("user_id")
            .map(|v| positive_int("user_id", v))
            .transpose()?,
        http_auth_user: optional_string("http_auth_user", obj.get("http_auth_user"))?,
        http_auth_password: optional_string("http_auth_password", obj.get("http_auth_password"))?,
        name: optional_string("name", obj.get("name"))?,
    })
}

/// The `/v1/webhooks` routes (behind the API gate).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/webhooks", post(add).get(list))
        .route("/v1/webhooks/{id}", delete(remove))
}

async fn add(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let added = json_body(&headers, &body)
        .and_then(|v| parse_new_webhook(&v))
        .and_then(|new| shared.hub.add(new));
    match added {
        Ok(webhook) => (
            StatusCode::CREATED,
            axum::Json(json!({ "status": "ok", "success": true, "data": webhook })),
        )
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "status": "ok", "success": true, "data": shared.hub.list() }))
        .into_response()
}

async fn remove(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    let removed = parse_id(&raw_id).and_then(|id| {
        if shared.hub.remove(id, "Deleted through the API") {
            Ok(())
        } else {
            Err(Rejection::not_found("Webhook not found"))
        }
    });
    match removed {
        Ok(()) => axum::Json(json!({ "status": "ok", "success": true })).into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({"subscription_url": "http://127.0.0.1:9/hook", "event_action": "*", "event_object": "person"})
    }

    #[test]
    fn a_minimal_body_is_a_v2_webhook() {
        let new = parse_new_webhook(&body()).unwrap();
        assert_eq!(new.event_action, "*");
        assert_eq!(new.http_auth_user, None);
    }

    #[test]
    fn bad_bodies_are_refused() {
        let with = |key: &str, value: Value| {
            let mut b = body();
            b[key] = value;
            parse_new_webhook(&b)
        };
        assert!(
            with("event_action", json!("updated")).is_err(),
            "v1 action names"
        );
        assert!(with("event_object", json!("people")).is_err());
        assert!(with("version", json!("1.0")).is_err());
        assert!(with("subscription_url", json!("https://example.com/hook")).is_err());
        assert!(with("subscription_url", json!("ftp://127.0.0.1/hook")).is_err());
        assert!(with("secret", json!("x")).is_err());
        assert!(with("version", json!("2.0")).is_ok());
    }
}
