//! What every request passes before a handler sees it: latency, injected faults, auth and
//! rate limits, in that order; and the rate headers on the way out.
//!
//! Contract facts followed:
//! - Auth is the `x-api-token: <token>` header (saas-contracts.md §2.6; the SDK sets
//!   exactly that header for the `api_key` scheme). A missing or wrong token answers 401
//!   with the live body `{"success":false,"error":"unauthorized access","errorCode":401,
//!   "error_info":"Please check developers.pipedrive.com"}` (§2.5).
//! - Rate headers and 429 per §2.7 (see `rate_limit.rs`).
//!
//! Gaps, resolved the strict way: whether v2 still accepts the old `?api_token=` query
//! parameter is unconfirmed (§2.6), so the emulator does **not** accept it, nor OAuth
//! bearer tokens (not emulated yet). 429 answers carry **no `Retry-After`** (§2.7, §5).
//! The full 429 body is unconfirmed: the burst one mirrors the live 401 shape, and the
//! daily one is the body a public write-up quotes from a real account
//! (`{"success":false,"error":"daily request budget exceeded","errorCode":429}`).
//!
//! Emulator choices: injected faults answer before auth and limits (like an edge proxy
//! failing) and take no rate slot; unauthenticated answers carry no rate headers (there is
//! no token to count them against).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::model::{error_body, unauthorized_body};
use super::rate_limit::Operation;
use super::state::{Admission, RequestRecord, Shared, today_utc};

/// The axum middleware in front of every emulator route.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());

    let latency = {
        let mut inner = shared.lock();
        inner.request_count += 1;
        inner.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let fault = shared.lock().take_fault();
    let response = if let Some(status) = fault {
        fault_response(status)
    } else if !authorized(req.headers(), &shared.config.api_token) {
        (StatusCode::UNAUTHORIZED, axum::Json(unauthorized_body())).into_response()
    } else {
        let op = Operation::classify(&method, &path);
        let admission = shared
            .lock()
            .admit(op, tokio::time::Instant::now(), today_utc());
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
    };

    shared.lock().log_request(RequestRecord {
        method,
        path_and_query,
        status: response.status(),
    });
    response
}

/// True when the `x-api-token` header equals the configured token.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
