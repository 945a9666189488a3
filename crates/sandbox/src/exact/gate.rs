//! What every `/api/v1/...` call passes before a handler sees it: bearer auth, the
//! division check and the rate limits; and on the way out the rate headers and content
//! negotiation. (Injected faults come earlier, from the shared control layer.)
//!
//! Contract facts followed (saas-contracts.md §3.1, §3.2):
//! - Calls send `Authorization: Bearer <access_token>` and `Accept: application/json`;
//!   **the default response format is XML** (Airbyte `source.py`).
//! - An expired token answers **401** with `WWW-Authenticate` containing
//!   `access token expired` (Airbyte checks exactly that phrase).
//! - Rate headers on every counted answer, 429 over a limit (see `rate_limit.rs`).
//!
//! Choices: a missing, unknown or superseded token is a 401 whose `WWW-Authenticate` does
//! **not** say "expired", so a client that refreshes on any 401 is told apart from one
//! that reads the header. 401s carry no rate headers and are not counted. A numeric
//! division the user has no access to is a 403 (the real status is undocumented). Without
//! `application/json` in `Accept`, successful answers come back as a short Atom document
//! (`application/atom+xml`), not a faithful Atom rendering: enough that a client which
//! forgot the header fails at once, as it would against the real API.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::{ApiError, error_response, too_many_requests};
use super::oauth::AccessCheck;
use super::rate_limit::Verdict;
use super::state::Shared;

/// The division a call is for, handed to the handlers as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub division: i32,
}

/// The axum middleware in front of every `/api/v1` route.
pub(crate) async fn gate(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let now = shared.now_ms();
    let check = bearer(req.headers()).map_or(AccessCheck::Invalid, |token| {
        shared.lock().tokens.check(token, now, &shared.rules())
    });
    match check {
        AccessCheck::Valid => {}
        AccessCheck::Expired => {
            return unauthorized(
                "Bearer error=\"invalid_token\", error_description=\"access token expired\"",
                "Access token expired.",
            );
        }
        AccessCheck::Invalid => {
            return unauthorized(
                "Bearer error=\"invalid_token\"",
                "Unauthorized: invalid or missing access token.",
            );
        }
    }
    let division = match division_of(req.uri().path(), &shared) {
        Ok(division) => division,
        Err(error) => return error.into_response(),
    };
    let json_wanted = accepts_json(req.headers());
    let config = &shared.config;
    let verdict = shared.lock().limits.admit(
        &config.client_id,
        division,
        now,
        config.minutely_limit,
        config.daily_limit,
    );
    let mut response = match verdict {
        Verdict::Admitted(headers) => {
            req.extensions_mut().insert(Ctx { division });
            let mut response = next.run(req).await;
            headers.apply(response.headers_mut());
            response
        }
        Verdict::MinutelyExceeded(headers) | Verdict::DailyExceeded(headers) => {
            shared.lock().throttled += 1;
            let mut response = too_many_requests();
            headers.apply(response.headers_mut());
            response
        }
    };
    if !json_wanted
        && config.require_json_accept
        && response.status().is_success()
        && response.status() != StatusCode::NO_CONTENT
    {
        *response.body_mut() = Body::from(ATOM_PLACEHOLDER);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/atom+xml;type=feed;charset=utf-8"),
        );
    }
    response
}

const ATOM_PLACEHOLDER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<feed xmlns=\"http://www.w3.org/2005/Atom\" xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\" \
xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\">\
<!-- Exact answers Atom XML unless Accept asks for application/json; the sandbox does not render it. -->\
</feed>";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/json"))
}

fn unauthorized(challenge: &'static str, message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The division in `/api/v1/{division}/...` (`current` means the user's current one).
fn division_of(path: &str, shared: &Shared) -> Result<i32, ApiError> {
    let segment = path
        .strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    if segment == "current" {
        return Ok(shared.current_division());
    }
    let Ok(division) = segment.parse::<i32>() else {
        return Err(ApiError::not_found());
    };
    if !shared.config.divisions.contains(&division) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!("Forbidden: no access to division {division}."),
        });
    }
    Ok(division)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_accept_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        assert!(!accepts_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!accepts_json(&h), "*/* gets the default, XML");
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(accepts_json(&h));
    }
}
