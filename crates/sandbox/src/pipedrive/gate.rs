//! What every API request passes before a handler sees it: auth and rate limits, and the
//! rate headers on the way out. Faults, outages, latency and the request log are the shared
//! [`crate::control`] layer's, which wraps this one (see `handle.rs`); [`fault_response`] is
//! the error body it renders for Pipedrive.
//!
//! Contract facts followed:
//! - Auth is the `x-api-token: <token>` header (saas-contracts.md §2.6; the SDK sets
//!   exactly that header for the `api_key` scheme), or `Authorization: Bearer
//!   <access_token>` from the OAuth token endpoint (§2.6). A missing, wrong, expired or
//!   revoked credential answers 401 with the live body `{"success":false,"error":
//!   "unauthorized access","errorCode":401,"error_info":"Please check
//!   developers.pipedrive.com"}` (§2.5).
//! - Rate headers and 429 per §2.7 (see `rate_limit.rs`); OAuth traffic has its own,
//!   higher burst window, and both share the daily budget.
//!
//! Gaps, resolved the strict way: whether v2 still accepts the old `?api_token=` query
//! parameter is unconfirmed (§2.6), so the emulator does **not** accept it. 429 answers
//! carry **no `Retry-After`** (§2.7, §5). The full 429 body is unconfirmed: the burst one
//! mirrors the live 401 shape, and the daily one is the body a public write-up quotes from
//! a real account (`{"success":false,"error":"daily request budget exceeded",
//! "errorCode":429}`). Unauthenticated answers carry no rate headers (there is no token to
//! count them against).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::common::{error_body, unauthorized_body};
use super::rate_limit::Operation;
use super::state::{Admission, AuthKind, Shared};

/// The axum middleware in front of every API route.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(kind) = authenticate(req.headers(), &shared) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(unauthorized_body())).into_response();
    };
    let op = Operation::classify(req.method(), req.uri().path());
    let admission = shared.lock().admit(kind, op, shared.now());
    match admission {
        Admission::Admitted(limits) => {
            let mut response = next.run(req).await;
            limits.apply(response.headers_mut());
            response
        }
        Admission::BurstLimited(limits) => {
            let mut response = throttled(burst_limited_body());
            limits.apply(response.headers_mut());
            response
        }
        Admission::BudgetExhausted(limits) => {
            let mut response = throttled(daily_budget_body());
            limits.apply(response.headers_mut());
            response
        }
    }
}

/// Which credential the request carries, if a valid one.
fn authenticate(headers: &HeaderMap, shared: &Shared) -> Option<AuthKind> {
    if authorized(headers, &shared.config.api_token) {
        return Some(AuthKind::ApiToken);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    shared
        .oauth
        .access_is_valid(bearer.trim(), shared.now())
        .then_some(AuthKind::OAuth)
}

/// True when the `x-api-token` header equals the configured token.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn throttled(body: Value) -> Response {
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

/// Burst-limit body: shape of the live 401 (the real 429 body is unconfirmed, §2.7).
fn burst_limited_body() -> Value {
    json!({
        "success": false,
        "error": "Request over limit",
        "errorCode": 429,
        "error_info": "Please check developers.pipedrive.com",
    })
}

/// Daily-budget body as quoted from a real account in a public write-up.
fn daily_budget_body() -> Value {
    json!({ "success": false, "error": "daily request budget exceeded", "errorCode": 429 })
}

/// The answer to an injected failure, shaped like what a client would really see.
///
/// - 500: the v2 body reported from production in `pipedrive/client-php` issue #234,
///   `{"success":false,"error":"Internal Server Error","code":"ERR_UNKNOWN"}`.
/// - 502, 503, 504: an HTML page, as an edge proxy sends them, so a client that assumes
///   every error body is JSON is caught.
/// - anything else: the v2 error envelope with the status's reason phrase.
pub(crate) fn fault_response(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match status.as_u16() {
        500 => (
            status,
            axum::Json(
                json!({"success": false, "error": "Internal Server Error", "code": "ERR_UNKNOWN"}),
            ),
        )
            .into_response(),
        502..=504 => {
            let code = status.as_u16();
            let html = format!(
                "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\
                 <p>The server is temporarily unable to service your request. Please try again later.</p></body></html>\n"
            );
            let mut response = Response::new(Body::from(html));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            response
        }
        _ => (status, axum::Json(error_body(reason))).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn token_must_match_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "secret"));
        headers.insert("x-api-token", HeaderValue::from_static("secreT"));
        assert!(!authorized(&headers, "secret"));
        headers.insert("x-api-token", HeaderValue::from_static("secret"));
        assert!(authorized(&headers, "secret"));
        headers.insert("x-api-token", HeaderValue::from_static("secret2"));
        assert!(!authorized(&headers, "secret"));
    }

    #[test]
    fn gateway_faults_are_html_and_500_is_json() {
        let r = fault_response(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let r = fault_response(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
