//! Shopify's REST error shapes, and the emulator's error types.
//!
//! Contract facts followed:
//! - Every REST error is `{"errors": ...}`: a string for request-level errors
//!   (`{"errors":"Not Found"}` for 404, `{"errors":"An unexpected error occurred"}` for
//!   500 — Shopify's sample error codes, found with the code search) and an object of
//!   field → messages for validation (`422 {"errors":{"email":["has already been taken"]}}`).
//! - A missing or malformed root parameter is `400 {"errors":{"customer":"Required
//!   parameter missing or invalid"}}` (Shopify's 400 sample has this exact message, keyed by
//!   the parameter, value a string).
//! - A bad access token is `401 {"errors":"[API] Invalid API key or access token
//!   (unrecognized login or wrong password)"}` (the exact text quoted from real responses in
//!   public fixtures and write-ups, found with the search tool).
//! - 429 per §1.5 (see `bucket.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

/// The body of a 401 for a missing or wrong `X-Shopify-Access-Token`.
pub const INVALID_TOKEN: &str =
    "[API] Invalid API key or access token (unrecognized login or wrong password)";

/// The 429 message at a leak rate of `per_sec` calls per second.
pub fn throttled_message(per_sec: f64) -> String {
    format!(
        "Exceeded {} calls per second for api client. Reduce request rates to resume uninterrupted service.",
        trim_float(per_sec)
    )
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Why the Shopify emulator could not start, or refused an in-process call.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    /// The configured address is not loopback.
    #[error(
        "refusing to listen on {0}: the sandbox only binds loopback addresses such as 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The configuration cannot work.
    #[error("invalid Shopify emulator configuration: {0}")]
    InvalidConfig(&'static str),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The webhook HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The emulator refused the call as the API would (e.g. 422 for a taken email).
    #[error("Shopify emulator answered {status}: {errors}")]
    Rejected {
        /// HTTP status the API would answer.
        status: u16,
        /// The `errors` member of the body.
        errors: Value,
    },
}

/// A refusal from an API operation, rendered as `{"errors": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub errors: Value,
}

impl ApiError {
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: json!("Not Found"),
        }
    }

    /// 400 for a missing or malformed root parameter (`customer`, `order`, `webhook`).
    pub fn missing_root(root: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: json!({ root: "Required parameter missing or invalid" }),
        }
    }

    /// 400 for a query parameter the API refuses.
    pub fn bad_param(name: &str, message: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: json!({ name: message }),
        }
    }

    /// 422 with field → messages.
    pub fn invalid(fields: FieldErrors) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: json!(fields.0),
        }
    }

    /// 422 for one field.
    pub fn invalid_field(field: &str, message: &str) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        Self::invalid(errors)
    }

    pub fn into_shopify_error(self) -> ShopifyError {
        ShopifyError::Rejected {
            status: self.status.as_u16(),
            errors: self.errors,
        }
    }
}

/// Validation messages per field, in Rails' `{"field": ["message", ...]}` shape.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: &str) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self))
        }
    }
}

/// A JSON response with Shopify's content type.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `{"errors": <errors>}` with `status`.
pub(crate) fn error_response(status: StatusCode, errors: &Value) -> Response {
    let body = serde_json::to_vec(&json!({ "errors": errors })).unwrap_or_default();
    json_response(status, body)
}

impl ApiError {
    pub fn response(&self) -> Response {
        error_response(self.status, &self.errors)
    }
}

/// How an injected fault (see `crate::control`) looks in Shopify's error shape.
pub fn fault_body(status: StatusCode) -> Response {
    let message = match status.as_u16() {
        401 => INVALID_TOKEN.to_owned(),
        404 => "Not Found".to_owned(),
        429 => throttled_message(2.0),
        500 => "An unexpected error occurred".to_owned(),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let mut response = error_response(status, &json!(message));
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2.0"));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_message_names_the_leak_rate() {
        assert_eq!(
            throttled_message(2.0),
            "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
        );
        assert!(throttled_message(4.0).starts_with("Exceeded 4 calls"));
    }

    #[test]
    fn field_errors_use_the_rails_shape() {
        let mut e = FieldErrors::default();
        e.add("email", "has already been taken");
        let err = e.into_result().unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.errors, json!({"email": ["has already been taken"]}));
    }
}
