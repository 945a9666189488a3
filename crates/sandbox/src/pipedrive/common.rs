//! What every Pipedrive route shares: the v2 envelopes and error type, body/ID/cursor/limit
//! parsing, field validators used by more than one entity, and the time formats.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI as shipped with the official
//! SDKs):
//! - Success envelope `{"success":true,"data":...}`; error envelope `{"success":false,
//!   "error":"...","error_info":"...","data":null,"additional_data":null}`; the live 401
//!   body is `{"success":false,"error":"unauthorized access","errorCode":401,
//!   "error_info":"Please check developers.pipedrive.com"}`.
//! - Lists paginate with an opaque `cursor` and `limit` ≤ 500 (default 100), answering
//!   `additional_data.next_cursor` (null at the end). Bodies are JSON only.
//! - v2 times are `YYYY-MM-DDTHH:MM:SSZ` (OpenAPI examples, e.g. `'2021-01-01T00:00:00Z'`);
//!   webhook v2 `meta.timestamp` carries milliseconds (`"2022-11-24T15:18:35.616Z"`, §2.1).
//! - Custom fields are keyed by 40-character hashes; `null` clears one, and an empty array
//!   is a validation error (OpenAPI description of `custom_fields`).
//!
//! Stricter-than-known choices: a body without a JSON `Content-Type` is a 415, an ID that
//! is not a positive integer is a 400, custom-field keys must look like hashes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// `error_info` Pipedrive puts on most v1/v2 error envelopes.
pub const ERROR_INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// Visibility groups Pipedrive knows (1 owner, 3 owner's group, 5 group and sub-groups,
/// 7 entire company).
pub(crate) const VISIBILITY: [u64; 4] = [1, 3, 5, 7];

/// Whether a body is for an `add*` or an `update*` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Update,
}

/// A request the emulator refuses, with the status and message of the error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub message: String,
}

impl Rejection {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, axum::Json(error_body(&self.message))).into_response()
    }
}

/// `{"success":true,"data":...}`.
pub(crate) fn success(data: Value) -> Value {
    json!({ "success": true, "data": data })
}

/// 200 with the success envelope around `data`.
pub(crate) fn ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(success(data))).into_response()
}

/// 200 with a list page: `data` plus `additional_data.next_cursor`.
pub(crate) fn ok_page(data: Vec<Value>, next_cursor: Option<String>) -> Response {
    let body = json!({
        "success": true,
        "data": data,
        "additional_data": { "next_cursor": next_cursor },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The v2 error envelope.
pub(crate) fn error_body(message: &str) -> Value {
    json!({
        "success": false,
        "error": message,
        "error_info": ERROR_INFO,
        "data": null,
        "additional_data": null,
    })
}

/// The live 401 body (§2.5, live probe).
pub(crate) fn unauthorized_body() -> Value {
    json!({
        "success": false,
        "error": "unauthorized access",
        "errorCode": 401,
        "error_info": "Please check developers.pipedrive.com",
    })
}

/// The answer for paths the emulator does not serve.
pub(crate) async fn not_found() -> Response {
    Rejection::not_found("Not found").into_response()
}

/// Parses a JSON request body, insisting on a JSON content type.
pub(crate) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Rejection> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json".to_owned(),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| Rejection::bad_request(format!("Invalid JSON body: {e}")))
}

/// A path ID: a positive integer.
pub(crate) fn parse_id(raw: &str) -> Result<u64, Rejection> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Rejection::bad_request(
            "Validation failed: id: Expected positive integer",
        )),
    }
}

/// Opaque cursor: base64url of the last position served.
pub(crate) fn encode_cursor(after: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{{\"after\":{after}}}"))
}

/// Decodes a cursor made by [`encode_cursor`]; a foreign cursor is a 400.
pub(crate) fn decode_cursor(cursor: &str) -> Result<u64, Rejection> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("after").and_then(Value::as_u64))
        .ok_or_else(|| Rejection::bad_request("Validation failed: cursor: Invalid cursor"))
}

/// Parses `limit` (default 100, 1..=500 per the OpenAPI parameter description).
pub(crate) fn parse_limit(params: &HashMap<String, String>) -> Result<usize, Rejection> {
    match params.get("limit") {
        None => Ok(100),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(Rejection::bad_request(
                "Validation failed: limit: must be an integer from 1 to 500",
            )),
        },
    }
}

/// An optional positive-integer query filter such as `owner_id`.
pub(crate) fn id_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, Rejection> {
    params
        .get(name)
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                Rejection::bad_request(format!("Validation failed: {name}: Expected integer"))
            })
        })
        .transpose()
}

pub(crate) fn positive_int(field: &str, v: &Value) -> Result<u64, Rejection> {
    match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Rejection::bad_request(format!(
            "Validation failed: {field}: Expected positive integer"
        ))),
    }
}

/// `visible_to`: one of 1, 3, 5, 7.
pub(crate) fn visibility(v: &Value) -> Result<u64, Rejection> {
    let vis = positive_int("visible_to", v)?;
    if VISIBILITY.contains(&vis) {
        Ok(vis)
    } else {
        Err(Rejection::bad_request(
            "Validation failed: visible_to: must be one of 1, 3, 5, 7",
        ))
    }
}

/// `label_ids`: an array of positive integers.
pub(crate) fn label_ids(v: &Value) -> Result<Vec<u64>, Rejection> {
    let Some(items) = v.as_array() else {
        return Err(Rejection::bad_request(
            "Validation failed: label_ids: Expected array",
        ));
    };
    items.iter().map(|i| positive_int("label_ids", i)).collect()
}

/// A non-empty, trimmed string field.
pub(crate) fn non_empty_string(field: &str, v: &Value) -> Result<String, Rejection> {
    match v.as_str().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(Rejection::bad_request(format!(
            "Validation failed: {field}: must be a non-empty string"
        ))),
    }
}

/// An RFC 3339 time, normalised to the v2 format.
pub(crate) fn parse_time(field: &str, v: &Value) -> Result<String, Rejection> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .map(format_time)
        .ok_or_else(|| {
            Rejection::bad_request(format!(
                "Validation failed: {field}: Expected RFC 3339 date-time"
            ))
        })
}

/// Rejects the first key of `obj` that is not in `allowed`.
pub(crate) fn only_known_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), Rejection> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(Rejection::bad_request(format!(
            "Validation failed: {key}: Unknown field"
        ))),
        None => Ok(()),
    }
}

/// Validates `custom_fields`: hash keys, and `null` rather than `[]` to clear.
pub(crate) fn custom_fields(v: &Value) -> Result<Map<String, Value>, Rejection> {
    let Some(obj) = v.as_object() else {
        return Err(Rejection::bad_request(
            "Validation failed: custom_fields: Expected object",
        ));
    };
    for (key, value) in obj {
        let is_hash = key.len() == 40
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hash {
            return Err(Rejection::bad_request(format!(
                "Validation failed: custom_fields: Unknown custom field '{key}'"
            )));
        }
        if value.as_array().is_some_and(Vec::is_empty) {
            return Err(Rejection::bad_request(format!(
                "Validation failed: custom_fields.{key}: use null, not [], to clear a field"
            )));
        }
    }
    Ok(obj.clone())
}

/// Applies a custom-fields patch: `null` removes a key, anything else sets it.
pub(crate) fn merge_custom_fields(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// Formats a time as Pipedrive v2 does: `YYYY-MM-DDTHH:MM:SSZ`, in UTC.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        // Formatting a valid UTC date-time with numeric components cannot fail; the
        // fallback keeps the runtime path free of panics anyway.
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Formats a time with milliseconds, as webhook v2 `meta.timestamp` does.
pub(crate) fn format_time_millis(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_rejected() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert_eq!(
            decode_cursor("bm9wZQ").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn limit_defaults_to_100_and_caps_at_500() {
        let mut params = HashMap::new();
        assert_eq!(parse_limit(&params).unwrap(), 100);
        params.insert("limit".to_owned(), "500".to_owned());
        assert_eq!(parse_limit(&params).unwrap(), 500);
        params.insert("limit".to_owned(), "501".to_owned());
        assert!(parse_limit(&params).is_err());
    }

    #[test]
    fn webhook_timestamps_carry_milliseconds() {
        let t = OffsetDateTime::parse("2022-11-24T17:18:35.616+02:00", &Rfc3339).unwrap();
        assert_eq!(format_time_millis(t), "2022-11-24T15:18:35.616Z");
        assert_eq!(format_time(t), "2022-11-24T15:18:35Z");
    }
}
