//! Verifying and reading a Pipedrive webhook v2 delivery (saas-contracts.md §2.1, §2.3).
//!
//! Pipedrive signs nothing: a subscription carries HTTP Basic credentials, sent on every
//! delivery, which ingest compares in constant time (current and previous password during a
//! rotation). `meta.id` is the event's UUID and serves as the delivery ID for dedupe.
//!
//! The source timestamp of a create or change is the record's `update_time` (whole
//! seconds), not `meta.timestamp` (milliseconds), and the event ID derives from that version
//! ([`super::model::version`]): a poll listing the same version publishes the same event ID
//! and the same dedupe key, so reconciliation recognises what a webhook delivered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde_json::Value;
use switchboard_core::envelope::Operation;

use super::{WebhookAuth, model};
use crate::webhook::{
    Received, WebhookError, ct_eq, header, id_string, json_object, rfc3339_millis,
};

/// Entities whose webhooks ingest publishes, as topic names (`person` → `persons`).
pub const WEBHOOK_ENTITIES: &[&str] = &[
    "persons",
    "organizations",
    "deals",
    "activities",
    "notes",
    "products",
    "leads",
];

/// Verifies and parses one delivery.
pub fn receive(
    auth: &WebhookAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, WebhookError> {
    let credentials = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .ok_or(WebhookError::Unauthorized)?;
    let (user, password) = credentials
        .iter()
        .position(|&b| b == b':')
        .map(|i| (&credentials[..i], &credentials[i + 1..]))
        .ok_or(WebhookError::Unauthorized)?;
    let password_ok = std::iter::once(&auth.password)
        .chain(auth.previous_password.as_ref())
        .any(|p| ct_eq(p.expose().as_bytes(), password));
    if !(ct_eq(auth.username.as_bytes(), user) && password_ok) {
        return Err(WebhookError::Unauthorized);
    }

    let payload = json_object(body)?;
    let meta = payload
        .get("meta")
        .filter(|m| m.is_object())
        .ok_or_else(|| WebhookError::Malformed("no `meta` object (webhooks v2 expected)".into()))?;
    let entity = match meta.get("entity").and_then(Value::as_str) {
        Some("person") => "persons",
        Some("organization") => "organizations",
        Some("deal") => "deals",
        Some("activity") => "activities",
        Some("note") => "notes",
        Some("product") => "products",
        Some("lead") => "leads",
        Some(other) => {
            return Err(WebhookError::Malformed(format!(
                "entity `{other}` is not one Switchboard subscribes to"
            )));
        }
        None => return Err(WebhookError::Malformed("meta.entity missing".into())),
    };
    let operation = match meta.get("action").and_then(Value::as_str) {
        Some("create") => Operation::Create,
        Some("change") => Operation::Update,
        Some("delete") => Operation::Delete,
        other => {
            return Err(WebhookError::Malformed(format!(
                "meta.action {other:?} is not create, change or delete"
            )));
        }
    };
    let record_id = id_string(meta.get("entity_id"))
        .ok_or_else(|| WebhookError::Malformed("meta.entity_id missing".into()))?;
    // A create or change is identified by the record's version (`data.update_time`), the
    // same as a poll of the list endpoints sees it, so both dedupe against each other. A
    // delete (which no poll sees) keeps the event's time and its delivery ID.
    let version = payload
        .get("data")
        .and_then(model::version)
        .filter(|v| operation != Operation::Delete && v.record_id == record_id);
    // ISO string in most examples, an epoch integer in the `user` examples (§5): take both.
    let event_time = match meta.get("timestamp") {
        Some(Value::String(s)) => rfc3339_millis(s),
        Some(Value::Number(n)) => n.as_i64().map(|secs| {
            if secs > 10_000_000_000 {
                secs
            } else {
                secs * 1000
            }
        }),
        _ => None,
    };
    Ok(Received {
        entity: entity.to_owned(),
        record_id,
        operation,
        source_timestamp: version.as_ref().map(|v| v.changed_at).or(event_time),
        version_identified: version.is_some(),
        api_version: meta
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned),
        delivery_id: id_string(meta.get("id")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Secret;

    fn auth() -> WebhookAuth {
        WebhookAuth {
            username: "switchboard".into(),
            password: Secret::from_value("pw-1"),
            previous_password: Some(Secret::from_value("pw-0")),
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        h.insert("authorization", value.parse().unwrap());
        h
    }

    // The official v2 example of a person change (saas-contracts.md §2.1), trimmed.
    const CHANGE: &str = r#"{"data":{"id":8,"name":"Sample Person","add_time":"2022-11-24T13:18:55Z",
        "update_time":"2022-11-24T15:18:35Z"},"previous":{"name":"Sample"},
        "meta":{"action":"change","entity":"person","entity_id":"8","id":"7c812ffd-8f50-45ea-a597-b8fcba2da9c0",
        "timestamp":"2022-11-24T15:18:35.616Z","version":"2.0","attempt":1}}"#;

    #[test]
    fn reads_the_documented_v2_change() {
        let r = receive(&auth(), &basic("switchboard", "pw-1"), CHANGE.as_bytes()).unwrap();
        assert_eq!(r.entity, "persons");
        assert_eq!(r.record_id, "8");
        assert_eq!(r.operation, Operation::Update);
        assert_eq!(
            r.delivery_id.as_deref(),
            Some("7c812ffd-8f50-45ea-a597-b8fcba2da9c0")
        );
        // The record's update_time, not meta.timestamp: a poll sees the same version.
        assert_eq!(r.source_timestamp, Some(1_669_303_115_000));
        assert!(r.version_identified);
        assert_eq!(r.api_version.as_deref(), Some("2.0"));
    }

    #[test]
    fn wrong_or_missing_credentials_are_unauthorized_and_the_previous_password_works() {
        assert_eq!(
            receive(&auth(), &basic("switchboard", "nope"), CHANGE.as_bytes()),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(
            receive(&auth(), &basic("other", "pw-1"), CHANGE.as_bytes()),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(
            receive(&auth(), &HeaderMap::new(), CHANGE.as_bytes()),
            Err(WebhookError::Unauthorized)
        );
        assert!(receive(&auth(), &basic("switchboard", "pw-0"), CHANGE.as_bytes()).is_ok());
    }

    #[test]
    fn a_delete_keeps_the_event_time_and_its_delivery_id() {
        let delete = r#"{"data":null,"previous":{"id":8,"update_time":"2022-11-24T15:18:35Z"},
            "meta":{"action":"delete","entity":"person","entity_id":"8","id":"e1",
            "timestamp":"2022-11-25T10:00:00.250Z","version":"2.0"}}"#;
        let r = receive(&auth(), &basic("switchboard", "pw-1"), delete.as_bytes()).unwrap();
        assert_eq!(r.operation, Operation::Delete);
        assert_eq!(r.source_timestamp, Some(1_669_370_400_250));
        assert!(!r.version_identified);
    }

    #[test]
    fn a_v1_payload_is_malformed() {
        let v1 = br#"{"v":1,"current":{},"event":"updated.person"}"#;
        assert!(matches!(
            receive(&auth(), &basic("switchboard", "pw-1"), v1),
            Err(WebhookError::Malformed(_))
        ));
    }
}
