//! Exact Online's error answers.
//!
//! Contract facts followed (saas-contracts.md §3.3, §3.1):
//! - REST errors carry `{"error":{"code":"","message":{"lang":"","value":"<text>"}}}`;
//!   picqer's client reads `error.message.value` and appends the `Reason` header.
//! - 429 answers have an **empty body**: picqer users report the exception text
//!   `Error 429: ` with nothing after it (picqer/exact-php-client issues #528 and #520),
//!   and picqer prints the raw body when there is no `error.message.value`.
//!
//! Injected faults (the control layer's `FaultRule`) use the same shapes; 502–504 come as
//! an HTML page, as a gateway sends them, so a client that parses every error as JSON is
//! caught.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused API call, rendered in Exact's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "Resource not found".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// `status` with Exact's JSON error body.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": "", "message": {"lang": "", "value": message}}});
    (status, axum::Json(body)).into_response()
}

/// A 429 as Exact sends it: no body (headers are added by the caller).
pub(crate) fn too_many_requests() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
}

/// How an injected fault looks (the `error_body` given to `control::instrument`).
pub(crate) fn fault_response(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match status.as_u16() {
        429 => too_many_requests(),
        502..=504 => {
            let code = status.as_u16();
            let html = format!(
                "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
                 <body><h1>{code} {reason}</h1></body></html>\n"
            );
            let mut response = Response::new(Body::from(html));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        _ => error_response(status, reason),
    }
}
