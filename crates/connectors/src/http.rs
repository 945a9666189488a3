//! Turning HTTP outcomes into classified errors, the same way for every target.
//!
//! 429 is `rate_limit` (wait, never a failure); 401/403 `auth`; 409 `conflict`; 408 and
//! 5xx `transient`; other 4xx `data`. A network error or timeout is `transient`. Bodies are
//! cut short and never carry request headers, so no token reaches a log or a DLQ header.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use switchboard_core::ErrorClass;
use switchboard_core::error::ClassifiedError;

/// Longest error body kept in a message.
const MAX_BODY: usize = 500;

/// The class of an HTTP status.
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

/// Returns the response if it succeeded, else a classified error with the body (cut short)
/// and the server's retry hint.
pub async fn check(what: &str, response: Response) -> Result<Response, ClassifiedError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_hint(&response);
    let mut body = response.text().await.unwrap_or_default();
    if body.len() > MAX_BODY {
        let cut = (0..=MAX_BODY)
            .rev()
            .find(|&i| body.is_char_boundary(i))
            .unwrap_or(0);
        body.truncate(cut);
        body.push('…');
    }
    Err(
        ClassifiedError::new(class_of(status), format!("{what}: HTTP {status}: {body}"))
            .retry_after(retry_after),
    )
}

/// `Retry-After` (seconds) or, failing that, a rate-limit reset header in seconds.
pub fn retry_hint(response: &Response) -> Option<Duration> {
    ["retry-after", "x-ratelimit-reset"]
        .iter()
        .filter_map(|name| response.headers().get(*name))
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
