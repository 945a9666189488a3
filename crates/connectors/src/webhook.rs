//! What a verified webhook delivery tells ingest, whatever the system.

use switchboard_core::envelope::Operation;

/// A verified, parsed webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Source entity, e.g. `customers`.
    pub entity: String,
    /// Native record ID as a string.
    pub record_id: String,
    /// What happened to the record.
    pub operation: Operation,
    /// Source's change time, epoch milliseconds.
    pub source_timestamp: Option<i64>,
    /// API version that serialized the payload.
    pub api_version: Option<String>,
    /// The source's delivery ID (idempotency key).
    pub delivery_id: Option<String>,
    /// Whether the event ID derives from record ID and source timestamp instead of the
    /// delivery ID, so a poll that lists the same version derives the same event ID.
    pub version_identified: bool,
}

/// Why a delivery was refused. Each maps to one HTTP status and one metric reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Signature missing or wrong: 401. The message never says which secret was tried.
    #[error("signature missing or invalid")]
    Unauthorized,
    /// The body or a required header is malformed: 400.
    #[error("malformed delivery: {0}")]
    Malformed(String),
    /// This connection's system does not push webhooks to Switchboard: 404.
    #[error("connection does not accept webhooks")]
    NotAccepted,
}

impl WebhookError {
    /// The `reason` label of the rejection metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized => "signature",
            Self::Malformed(_) => "malformed",
            Self::NotAccepted => "not_accepted",
        }
    }
}

/// Parses RFC 3339 / ISO-8601 (with offset) into epoch milliseconds.
pub fn rfc3339_millis(value: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A header's value, trimmed, if present and ASCII.
pub fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Constant-time equality (the length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of the concatenated `parts` under `key` (`None` only if the HMAC
/// implementation refused the key, which it does for no length).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Parses a JSON body that must be an object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Value, WebhookError> {
    let payload: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("body is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(WebhookError::Malformed("body is not a JSON object".into()));
    }
    Ok(payload)
}

/// An ID that may be a JSON string or an unsigned integer, as a string (never via `f64`).
pub fn id_string(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// A system's list of webhook entity names, owned.
pub(crate) fn entity_names(list: &[&str]) -> Vec<String> {
    list.iter().map(|e| (*e).to_owned()).collect()
}
