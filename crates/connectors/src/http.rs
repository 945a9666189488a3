//! Turning HTTP outcomes into classified errors, the same way for every target.
//!
//! 429 is `rate_limit` (wait, never a failure) with the wait the system announces
//! ([`Answers::retry_after`]); 401 `auth`; 403 `auth` except where a system uses it for
//! refused *fields* (Pipedrive's Contact Sync, §2.5); 409 `conflict`; 408 and 5xx
//! `transient`; other 4xx (400, 404, 422) `data`. A network error or timeout is `transient`.
//! Guarantee: an error message never carries a credential: bodies pass through [`redact`]
//! (secret-looking JSON values masked, the rest cut short) and request headers and URLs are
//! never included.
//!
//! Every call to a SaaS API goes through [`send`], which reads the whole answer once and,
//! inside an [`audit::Scope`](crate::audit::Scope), records the call (redacted) for the
//! audit topic.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Client, Request, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_core::ErrorClass;
use switchboard_core::audit::{redact_body, redact_url};
use switchboard_core::error::ClassifiedError;

use crate::audit::{self, Call};

/// Longest error body kept in a message.
const MAX_BODY: usize = 500;
/// Longest wait any rate-limit answer may impose on one call.
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(120);

/// How a system's answers read: where its retry hint lives and what a status means. Each
/// system implements it in its folder (`<system>::Answers`); [`Generic`] reads an answer as
/// any HTTP API means it.
pub trait Answers: Sync {
    /// The class of `status` with `body`, as this system means it.
    fn class_of(&self, status: StatusCode, _body: &str) -> ErrorClass {
        class_of(status)
    }

    /// How long to wait before the next call, from a refused answer's headers and body:
    /// `Retry-After` unless the system says otherwise.
    fn retry_after(&self, headers: &HeaderMap, _body: &str, _now_ms: i64) -> Option<Duration> {
        header_number(headers, "retry-after").map(wait_secs)
    }
}

/// Any HTTP API: `Retry-After` in seconds, statuses as [`class_of`] reads them.
pub struct Generic;

impl Answers for Generic {}

/// The class of an HTTP status, for a system without special cases.
pub fn class_of(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        429 => ErrorClass::RateLimit,
        401 | 403 => ErrorClass::Auth,
        409 => ErrorClass::Conflict,
        408 => ErrorClass::Transient,
        s if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Data,
    }
}

/// A header's value as a finite, non-negative number.
pub fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// A wait of `secs` seconds, at most [`MAX_RATE_WAIT`].
pub fn wait_secs(secs: f64) -> Duration {
    Duration::from_secs_f64(secs).min(MAX_RATE_WAIT)
}

/// `X-Shopify-Shop-Api-Call-Limit: used/size`.
pub fn shopify_call_limit(headers: &HeaderMap) -> Option<(u32, u32)> {
    let value = headers
        .get("x-shopify-shop-api-call-limit")?
        .to_str()
        .ok()?;
    let (used, size) = value.split_once('/')?;
    Some((used.trim().parse().ok()?, size.trim().parse().ok()?))
}

/// An answer read to its end.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON of type `T`; an unreadable body is `transient`, as a garbled answer
    /// usually is.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ClassifiedError> {
        serde_json::from_slice(&self.body).map_err(|_| {
            ClassifiedError::new(
                ErrorClass::Transient,
                format!("{what}: response could not be decoded"),
            )
        })
    }
}

/// Sends `request` and reads its whole answer. Inside an audit scope the call is recorded:
/// method, redacted URL and bodies, status, duration, and for a call that got no answer
/// only the kind of failure (reqwest's text holds the URL).
pub async fn send(request: RequestBuilder) -> Result<Answer, reqwest::Error> {
    let (client, request) = request.build_split();
    let request = request?;
    if !audit::active() {
        return execute(&client, request).await;
    }
    let method = request.method().to_string();
    let url = redact_url(request.url().as_str());
    let request_body = request
        .body()
        .and_then(|b| b.as_bytes())
        .map(|b| redact_body(&String::from_utf8_lossy(b)));
    let at = now_millis();
    let started = Instant::now();
    let result = execute(&client, request).await;
    audit::emit(Call {
        at,
        method,
        url,
        status: result.as_ref().ok().map(|a| a.status.as_u16()),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        request_body,
        response_body: result
            .as_ref()
            .ok()
            .filter(|a| !a.body.is_empty())
            .map(|a| redact_body(&a.text())),
        error: result
            .as_ref()
            .err()
            .map(|e| RedactedReqwest(e).to_string()),
    });
    result
}

async fn execute(client: &Client, request: Request) -> Result<Answer, reqwest::Error> {
    let response = client.execute(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A request that never got an answer.
pub fn network_error(what: &str, e: &reqwest::Error) -> ClassifiedError {
    // Only the kind of failure: reqwest's own text includes the URL, whose query could
    // hold a token on some APIs.
    let e = format!("{}", RedactedReqwest(e));
    ClassifiedError::new(ErrorClass::Transient, format!("{what}: {e}"))
}

struct RedactedReqwest<'a>(&'a reqwest::Error);

impl std::fmt::Display for RedactedReqwest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_timeout() {
            "timed out"
        } else if self.0.is_connect() {
            "connection failed"
        } else if self.0.is_decode() {
            "response could not be decoded"
        } else {
            "request failed"
        };
        f.write_str(kind)
    }
}

/// Returns the answer if it succeeded, else a classified error with the body (redacted,
/// cut short) and the server's retry hint. The generic reading; see [`check_as`].
pub fn check(what: &str, answer: Answer) -> Result<Answer, ClassifiedError> {
    check_as(&Generic, what, answer)
}

/// [`check`] as `system` classifies and hints.
pub fn check_as(
    system: &dyn Answers,
    what: &str,
    answer: Answer,
) -> Result<Answer, ClassifiedError> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    Err(failure(
        system,
        what,
        answer.status,
        &answer.headers,
        &answer.text(),
    ))
}

/// [`check_as`], and a rate-limit answer closes `gate` for as long as `system` asks, so the
/// connection's next call waits instead of meeting another refusal.
pub fn check_paced(
    system: &dyn Answers,
    what: &str,
    answer: Answer,
    gate: &crate::pace::Gate,
) -> Result<Answer, ClassifiedError> {
    check_as(system, what, answer).inspect_err(|e| {
        if let Some(wait) = e.retry_after {
            gate.hold(wait);
        }
    })
}

/// The classified error of a failed answer.
pub fn failure(
    system: &dyn Answers,
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> ClassifiedError {
    let class = system.class_of(status, body);
    let retry_after = match class {
        ErrorClass::RateLimit => system
            .retry_after(headers, body, now_millis())
            .or(Some(Duration::from_secs(2))),
        _ => None,
    };
    let error = ClassifiedError::new(class, format!("{what}: HTTP {status}: {}", redact(body)))
        .retry_after(retry_after);
    match status.as_u16() {
        404 | 410 => error.reason(switchboard_core::error::NOT_FOUND),
        _ => error,
    }
}

/// `Retry-After` (seconds) or, failing that, a rate-limit reset header in seconds.
pub fn retry_hint(answer: &Answer) -> Option<Duration> {
    ["retry-after", "x-ratelimit-reset"]
        .iter()
        .filter_map(|name| answer.headers.get(*name))
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Keys whose values are masked in a JSON body.
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "authorization",
    "api_key",
    "apikey",
    "credential",
];

/// A body fit for a log line or a DLQ header: JSON values under secret-looking keys become
/// `***`, bearer tokens in text are masked, and the result is cut at [`MAX_BODY`] bytes.
pub fn redact(body: &str) -> String {
    let mut text = match serde_json::from_str::<Value>(body) {
        Ok(mut value) => {
            mask(&mut value);
            value.to_string()
        }
        Err(_) => body
            .split_whitespace()
            .scan(false, |after_bearer, word| {
                let out = if *after_bearer { "***" } else { word };
                *after_bearer = word.eq_ignore_ascii_case("bearer");
                Some(out.to_owned())
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    if text.len() > MAX_BODY {
        let cut = (0..=MAX_BODY)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let k = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| k.contains(s)) && !v.is_null() {
                    *v = Value::from("***");
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Unix time in milliseconds.
pub fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::sync::{Arc, Mutex};
    use switchboard_core::audit::ApiCall;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_map_to_routes() {
        assert_eq!(
            class_of(StatusCode::TOO_MANY_REQUESTS),
            ErrorClass::RateLimit
        );
        assert_eq!(class_of(StatusCode::UNAUTHORIZED), ErrorClass::Auth);
        assert_eq!(class_of(StatusCode::CONFLICT), ErrorClass::Conflict);
        assert_eq!(class_of(StatusCode::BAD_GATEWAY), ErrorClass::Transient);
        assert_eq!(class_of(StatusCode::UNPROCESSABLE_ENTITY), ErrorClass::Data);
        assert_eq!(class_of(StatusCode::BAD_REQUEST), ErrorClass::Data);
    }

    #[test]
    fn pipedrive_contact_sync_403_is_data_not_auth() {
        let json = r#"{"success":false,"error":"Contact Sync required"}"#;
        assert_eq!(
            crate::pipedrive::Answers.class_of(StatusCode::FORBIDDEN, json),
            ErrorClass::Data
        );
        assert_eq!(
            crate::pipedrive::Answers.class_of(StatusCode::FORBIDDEN, "<html>cloudflare</html>"),
            ErrorClass::RateLimit
        );
        assert_eq!(
            Generic.class_of(StatusCode::FORBIDDEN, json),
            ErrorClass::Auth
        );
        assert_eq!(
            crate::pipedrive::Answers.class_of(StatusCode::UNAUTHORIZED, json),
            ErrorClass::Auth
        );
    }

    #[test]
    fn each_system_announces_its_wait_its_own_way() {
        let none = HeaderMap::new();
        assert_eq!(
            crate::shopify::Answers.retry_after(&headers(&[("retry-after", "2.0")]), "", 0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            crate::shopify::Answers.retry_after(
                &headers(&[("x-shopify-shop-api-call-limit", "40/40")]),
                "",
                0
            ),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            crate::pipedrive::Answers.retry_after(&headers(&[("x-ratelimit-reset", "2")]), "", 0),
            Some(Duration::from_secs(2))
        );
        let exact = headers(&[
            ("x-ratelimit-minutely-remaining", "0"),
            ("x-ratelimit-minutely-reset", "61500"),
        ]);
        assert_eq!(
            crate::exact::Answers.retry_after(&exact, "", 60_000),
            Some(Duration::from_millis(1500))
        );
        let body = r#"{"ok":false,"error_code":429,"parameters":{"retry_after":35}}"#;
        assert_eq!(
            crate::telegram::Answers.retry_after(&none, body, 0),
            Some(Duration::from_secs(35))
        );
        assert_eq!(Generic.retry_after(&none, "", 0), None);
    }

    #[test]
    fn a_429_without_hint_still_waits_and_others_carry_none() {
        let e = failure(
            &Generic,
            "x",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            "",
        );
        assert_eq!(e.class, ErrorClass::RateLimit);
        assert!(e.retry_after.is_some());
        let e = failure(
            &Generic,
            "x",
            StatusCode::UNPROCESSABLE_ENTITY,
            &HeaderMap::new(),
            r#"{"errors":{"email":["is invalid"]},"access_token":"shpat_x"}"#,
        );
        assert_eq!(e.class, ErrorClass::Data);
        assert!(e.message.contains("is invalid"));
        assert!(!e.message.contains("shpat_x"));
    }

    /// A scope that collects its calls.
    fn collecting() -> (crate::audit::Scope, Arc<Mutex<Vec<ApiCall>>>) {
        let calls: Arc<Mutex<Vec<ApiCall>>> = Arc::default();
        let into = calls.clone();
        let scope = crate::audit::Scope {
            service: "sink".into(),
            connection: "crm".into(),
            record_id: Some("42".into()),
            canonical_id: Some("c-42".into()),
            attempt: 2,
            sink: Arc::new(move |call| into.lock().unwrap().push(call)),
        };
        (scope, calls)
    }

    async fn serve() -> String {
        let app = axum::Router::new().route(
            "/v1/things",
            axum::routing::post(|body: String| async move {
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3")],
                    format!(r#"{{"echo":{body},"access_token":"answer-secret"}}"#),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_call_in_a_scope_is_recorded_redacted_and_its_answer_still_reads() {
        let base = serve().await;
        let (scope, calls) = collecting();
        let request = Client::new()
            .post(format!("{base}/v1/things?api_token=query-secret&x=1"))
            .header("x-api-token", "header-secret")
            .json(&serde_json::json!({"name": "Ada", "password": "body-secret"}));
        let answer = scope.run(send(request)).await.unwrap();
        // The caller still gets the whole answer.
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_hint(&answer), Some(Duration::from_secs(3)));
        let body: Value = answer.json("things").unwrap();
        assert_eq!(body["echo"]["name"], "Ada");

        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(
            (call.method.as_str(), call.status, call.attempt),
            ("POST", Some(429), 2)
        );
        assert_eq!(call.record_id.as_deref(), Some("42"));
        assert_eq!(call.url, format!("{base}/v1/things?api_token=***&x=1"));
        assert!(call.request_body.as_deref().unwrap().contains("Ada"));
        assert!(call.response_body.as_deref().unwrap().contains("Ada"));
        assert!(call.error.is_none());
        let written = serde_json::to_string(call).unwrap();
        for secret in [
            "query-secret",
            "header-secret",
            "body-secret",
            "answer-secret",
        ] {
            assert!(!written.contains(secret), "{secret} leaked: {written}");
        }
    }

    #[tokio::test]
    async fn a_call_without_answer_records_only_the_kind_of_failure() {
        let (scope, calls) = collecting();
        // Nothing listens on port 1 of loopback.
        let request = Client::new().get("http://127.0.0.1:1/bot123:secret/getMe");
        assert!(scope.run(send(request)).await.is_err());
        let call = calls.lock().unwrap()[0].clone();
        assert_eq!(call.status, None);
        assert_eq!(call.error.as_deref(), Some("connection failed"));
        assert_eq!(call.url, "http://127.0.0.1:1/bot***/getMe");
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_recorded() {
        let base = serve().await;
        let (_scope, calls) = collecting();
        let answer = send(Client::new().post(format!("{base}/v1/things")).body("{}"))
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 429);
        assert!(calls.lock().unwrap().is_empty());
    }

    #[test]
    fn redaction_masks_secrets_and_cuts_long_bodies() {
        let masked = redact(r#"{"refresh_token":"r1","nested":{"clientSecret":"s"},"ok":1}"#);
        assert!(
            !masked.contains("r1") && !masked.contains("\"s\""),
            "{masked}"
        );
        assert!(masked.contains(r#""ok":1"#));
        assert_eq!(
            redact("Authorization: Bearer abc def"),
            "Authorization: Bearer *** def"
        );
        assert!(redact(&"x".repeat(2000)).len() <= MAX_BODY + 3);
    }
}
