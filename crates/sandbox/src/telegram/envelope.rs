//! The Bot API response envelope (saas-contracts.md §4.1, §4.3).
//!
//! - Success: HTTP 200 `{"ok":true,"result":…}`, plus `"description"` where the server
//!   adds one (`setWebhook` answers `"Webhook was set"`, as the open-source Bot API server
//!   does).
//! - Failure: the HTTP status equals `error_code`, body
//!   `{"ok":false,"error_code":N,"description":"…"}`, and `"parameters"` only where
//!   relevant: `retry_after` on 429, `migrate_to_chat_id` when a group became a
//!   supergroup. Descriptions carry the standard prefix (`Bad Request: `, `Forbidden: `,
//!   `Conflict: `, `Too Many Requests: retry after N`); 401 is plain `Unauthorized` and
//!   404 plain `Not Found`, as api.telegram.org answers them in client fixtures.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed call, rendered as the Bot API error envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub description: String,
    pub parameters: Option<Value>,
}

impl ApiError {
    fn new(code: u16, description: String) -> Self {
        Self {
            code,
            description,
            parameters: None,
        }
    }

    /// `400 Bad Request: <reason>`.
    pub(crate) fn bad_request(reason: impl std::fmt::Display) -> Self {
        Self::new(400, format!("Bad Request: {reason}"))
    }

    /// `403 Forbidden: <reason>`.
    pub(crate) fn forbidden(reason: &str) -> Self {
        Self::new(403, format!("Forbidden: {reason}"))
    }

    /// `409 Conflict: <reason>`.
    pub(crate) fn conflict(reason: &str) -> Self {
        Self::new(409, format!("Conflict: {reason}"))
    }

    /// `401 Unauthorized`.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized".to_owned())
    }

    /// `404 Not Found`.
    pub(crate) fn not_found() -> Self {
        Self::new(404, "Not Found".to_owned())
    }

    /// `429 Too Many Requests: retry after N` with `parameters.retry_after`.
    pub(crate) fn too_many(retry_after: u32) -> Self {
        Self {
            parameters: Some(json!({ "retry_after": retry_after })),
            ..Self::new(429, format!("Too Many Requests: retry after {retry_after}"))
        }
    }

    /// The 400 a client gets when it writes to a group that became a supergroup.
    pub(crate) fn migrated(to_chat_id: i64) -> Self {
        Self {
            parameters: Some(json!({ "migrate_to_chat_id": to_chat_id })),
            ..Self::bad_request("group chat was upgraded to a supergroup chat")
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let Some(parameters) = &self.parameters {
            body["parameters"] = parameters.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }
}

/// A successful call's result and optional description.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    pub result: Value,
    pub description: Option<&'static str>,
}

impl Success {
    pub(crate) fn new(result: Value) -> Self {
        Self {
            result,
            description: None,
        }
    }

    pub(crate) fn described(result: Value, description: &'static str) -> Self {
        Self {
            result,
            description: Some(description),
        }
    }
}

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        let mut body = json!({ "ok": true, "result": self.result });
        if let Some(description) = self.description {
            body["description"] = json!(description);
        }
        (StatusCode::OK, Json(body)).into_response()
    }
}

/// Renders an injected fault (see `control::instrument`) in the Bot API error shape. An
/// injected 429 says `retry after 1`: the fault layer has no flood state, so it cannot
/// start the bot-wide block a real 429 starts.
pub(crate) fn fault_body(status: StatusCode) -> Response {
    let code = status.as_u16();
    let error = match code {
        400 => ApiError::bad_request("injected fault"),
        401 => ApiError::unauthorized(),
        403 => ApiError::forbidden("injected fault"),
        404 => ApiError::not_found(),
        409 => ApiError::conflict("injected fault"),
        429 => ApiError::too_many(1),
        _ => ApiError::new(
            code,
            status.canonical_reason().unwrap_or("Error").to_owned(),
        ),
    };
    let mut response = error.into_response();
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_exactly_the_documented_fields() {
        assert_eq!(
            ApiError::unauthorized().body(),
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        );
        assert_eq!(
            ApiError::too_many(35).body(),
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 35",
                   "parameters": {"retry_after": 35}})
        );
        assert_eq!(
            ApiError::bad_request("chat not found").body()["description"],
            "Bad Request: chat not found"
        );
    }

    #[test]
    fn injected_gateway_errors_keep_the_envelope() {
        let r = fault_body(StatusCode::BAD_GATEWAY);
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    }
}
