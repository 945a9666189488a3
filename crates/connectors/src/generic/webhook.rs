//! Verifying and reading a generic signed webhook (see [`GenericWebhook`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde_json::Value;
use switchboard_core::Secret;
use switchboard_core::envelope::Operation;

use super::{Encoding, GenericWebhook, Scheme};
use crate::webhook::{
    Received, WebhookError, ct_eq, header, hmac_sha256, id_string, json_object, rfc3339_millis,
};

/// Verifies and parses one delivery; `now_secs` is the current Unix time (for the replay
/// window).
pub fn receive(
    hook: &GenericWebhook,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Received, WebhookError> {
    let delivery_id = match hook.scheme {
        Scheme::StandardWebhooks => verify_standard(hook, headers, body, now_secs)?,
        Scheme::Body | Scheme::TimestampBody => {
            verify_plain(hook, headers, body, now_secs)?;
            hook.delivery_id_header
                .as_deref()
                .and_then(|h| header(headers, h))
                .map(str::to_owned)
        }
    };

    let payload = json_object(body)?;
    let entity = match (&hook.entity, &hook.entity_pointer) {
        (Some(entity), _) => entity.clone(),
        (None, Some(pointer)) => {
            let entity = payload
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !hook.entities.iter().any(|e| e == entity) {
                return Err(WebhookError::Malformed(format!(
                    "entity `{entity}` is not configured"
                )));
            }
            entity.to_owned()
        }
        (None, None) => return Err(WebhookError::NotAccepted),
    };
    let record_id = id_string(payload.pointer(&hook.id_pointer))
        .ok_or_else(|| WebhookError::Malformed(format!("no record ID at {}", hook.id_pointer)))?;
    let operation = match hook
        .operation_pointer
        .as_deref()
        .and_then(|p| payload.pointer(p))
        .and_then(Value::as_str)
    {
        None => Operation::Update,
        Some("create" | "created") => Operation::Create,
        Some("update" | "updated" | "change" | "changed") => Operation::Update,
        Some("delete" | "deleted") => Operation::Delete,
        Some(other) => {
            return Err(WebhookError::Malformed(format!(
                "unknown operation `{other}`"
            )));
        }
    };
    let source_timestamp = hook
        .timestamp_pointer
        .as_deref()
        .and_then(|p| payload.pointer(p))
        .and_then(|v| match v {
            Value::String(s) => rfc3339_millis(s),
            Value::Number(n) => n.as_i64().map(|secs| secs * 1000),
            _ => None,
        });
    Ok(Received {
        entity,
        record_id,
        operation,
        source_timestamp,
        api_version: None,
        delivery_id,
        version_identified: false,
    })
}

fn secrets(hook: &GenericWebhook) -> impl Iterator<Item = &Secret> {
    std::iter::once(&hook.secret).chain(hook.previous_secret.as_ref())
}

fn verify_plain(
    hook: &GenericWebhook,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), WebhookError> {
    let raw = header(headers, &hook.signature_header).ok_or(WebhookError::Unauthorized)?;
    let raw = match &hook.signature_prefix {
        Some(prefix) => raw
            .strip_prefix(prefix.as_str())
            .ok_or(WebhookError::Unauthorized)?,
        None => raw,
    };
    let signature = match hook.encoding {
        Encoding::Hex => hex_decode(raw),
        Encoding::Base64 => STANDARD.decode(raw).ok(),
    }
    .ok_or(WebhookError::Unauthorized)?;
    let timestamp = match hook.scheme {
        Scheme::TimestampBody => {
            let name = hook.timestamp_header.as_deref().unwrap_or("x-timestamp");
            let ts = header(headers, name).ok_or(WebhookError::Unauthorized)?;
            check_window(ts, now_secs, hook.tolerance_secs)?;
            Some(ts)
        }
        _ => None,
    };
    let valid = secrets(hook).any(|secret| {
        let mac = match timestamp {
            Some(ts) => hmac_sha256(secret.expose().as_bytes(), &[ts.as_bytes(), b".", body]),
            None => hmac_sha256(secret.expose().as_bytes(), &[body]),
        };
        mac.is_some_and(|mac| ct_eq(&mac, &signature))
    });
    if valid {
        Ok(())
    } else {
        Err(WebhookError::Unauthorized)
    }
}

/// Standard Webhooks (standardwebhooks.com): returns the `webhook-id`.
fn verify_standard(
    hook: &GenericWebhook,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Option<String>, WebhookError> {
    let id = header(headers, "webhook-id").ok_or(WebhookError::Unauthorized)?;
    let ts = header(headers, "webhook-timestamp").ok_or(WebhookError::Unauthorized)?;
    check_window(ts, now_secs, hook.tolerance_secs)?;
    // Several space-separated `v1,<base64>` signatures may be sent (their own rotation).
    let signatures: Vec<Vec<u8>> = header(headers, "webhook-signature")
        .ok_or(WebhookError::Unauthorized)?
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .collect();
    let valid = secrets(hook).any(|secret| {
        let key = secret.expose();
        let key = key.strip_prefix("whsec_").map_or_else(
            || Some(key.as_bytes().to_vec()),
            |k| STANDARD.decode(k).ok(),
        );
        key.and_then(|k| hmac_sha256(&k, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]))
            .is_some_and(|mac| signatures.iter().any(|s| ct_eq(&mac, s)))
    });
    if valid {
        Ok(Some(id.to_owned()))
    } else {
        Err(WebhookError::Unauthorized)
    }
}

fn check_window(ts: &str, now_secs: i64, tolerance_secs: u64) -> Result<(), WebhookError> {
    let ts: i64 = ts.parse().map_err(|_| WebhookError::Unauthorized)?;
    if now_secs.abs_diff(ts) > tolerance_secs {
        // Outside the window: a replay or a badly skewed clock; either way not accepted.
        return Err(WebhookError::Unauthorized);
    }
    Ok(())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(scheme: Scheme, secret: &str) -> GenericWebhook {
        GenericWebhook {
            scheme,
            signature_header: "x-hub-signature-256".into(),
            encoding: Encoding::Hex,
            signature_prefix: Some("sha256=".into()),
            secret: Secret::from_value(secret),
            previous_secret: None,
            timestamp_header: Some("x-timestamp".into()),
            tolerance_secs: 300,
            delivery_id_header: Some("x-delivery".into()),
            entity: Some("orders".into()),
            entity_pointer: None,
            entities: vec![],
            id_pointer: "/order/id".into(),
            operation_pointer: Some("/action".into()),
            timestamp_pointer: None,
        }
    }

    const BODY: &[u8] = br#"{"action":"created","order":{"id":77}}"#;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    // Expected signatures computed independently with Python's hmac module, e.g.
    // hmac.new(b"It's a Secret to Everybody", BODY, hashlib.sha256).hexdigest().
    const BODY_SIG: &str =
        "sha256=5aa3cf612ab843521e73e452f909b1fdac80fd17a139debf26a857020a64e0a9";
    // hmac.new(b"k", b"1000." + BODY, hashlib.sha256).hexdigest()
    const TIMESTAMP_SIG: &str =
        "sha256=25cd05c7fb9b82196fc4ea9e477c3061cf8ca7aba1602309a287a90933144c7a";
    // base64(hmac(b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), b"msg_1.1674087231." + payload))
    const STANDARD_SIG: &str = "v1,2qMe/+PbRTFo9AoyhY7e4thBJUqFbXmp8S+aWeUtG0A=";

    #[test]
    fn body_scheme_with_hex_and_prefix() {
        let hook = hook(Scheme::Body, "It's a Secret to Everybody");
        let h = headers(&[("x-hub-signature-256", BODY_SIG), ("x-delivery", "d-1")]);
        let r = receive(&hook, &h, BODY, 0).unwrap();
        assert_eq!(
            (r.entity.as_str(), r.record_id.as_str(), r.operation),
            ("orders", "77", Operation::Create)
        );
        assert_eq!(r.delivery_id.as_deref(), Some("d-1"));
        let wrong = headers(&[("x-hub-signature-256", "sha256=00")]);
        assert_eq!(
            receive(&hook, &wrong, BODY, 0),
            Err(WebhookError::Unauthorized)
        );
        let unprefixed = headers(&[("x-hub-signature-256", &BODY_SIG[7..])]);
        assert_eq!(
            receive(&hook, &unprefixed, BODY, 0),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn timestamp_scheme_refuses_replays_outside_the_window() {
        let hook = hook(Scheme::TimestampBody, "k");
        let h = headers(&[
            ("x-hub-signature-256", TIMESTAMP_SIG),
            ("x-timestamp", "1000"),
        ]);
        assert!(receive(&hook, &h, BODY, 1100).is_ok());
        assert_eq!(
            receive(&hook, &h, BODY, 1000 + 301),
            Err(WebhookError::Unauthorized)
        );
        let moved = headers(&[
            ("x-hub-signature-256", TIMESTAMP_SIG),
            ("x-timestamp", "1001"),
        ]);
        assert_eq!(
            receive(&hook, &moved, BODY, 1001),
            Err(WebhookError::Unauthorized),
            "the timestamp is signed"
        );
    }

    #[test]
    fn standard_webhooks_signature_with_a_whsec_key_among_several_signatures() {
        let mut hook = hook(
            Scheme::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        hook.id_pointer = "/data/id".into();
        hook.operation_pointer = None;
        let payload = br#"{"type":"user.created","data":{"id":"u1"}}"#;
        let h = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1674087231"),
            ("webhook-signature", &format!("v1,Ym9ndXM= {STANDARD_SIG}")),
        ]);
        let r = receive(&hook, &h, payload, 1_674_087_231).unwrap();
        assert_eq!(r.delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(r.record_id, "u1");
        assert_eq!(
            receive(&hook, &h, payload, 1_674_087_231 + 3600),
            Err(WebhookError::Unauthorized)
        );
    }
}
