//! The OAuth2 endpoints: `GET /api/oauth2/auth` (a sandbox "user consent" that redirects
//! straight back with a code) and `POST /api/oauth2/token`.
//!
//! Contract facts followed (saas-contracts.md §3.1; the token rules are in `oauth.rs`):
//! - Authorize: `GET {base}/api/oauth2/auth?client_id&redirect_uri&response_type=code&state`.
//! - Token: `POST {base}/api/oauth2/token`, **form-encoded**, `grant_type=authorization_code`
//!   with `code`, `redirect_uri`, `client_id`, `client_secret`, or `grant_type=refresh_token`
//!   with `refresh_token`, `client_id`, `client_secret` (picqer `Connection.php`). No
//!   client-credentials flow exists.
//! - The answer is `{"access_token":"…","token_type":"bearer","expires_in":"600",
//!   "refresh_token":"…"}` with `expires_in` a **string** (ossobv/exactonline `rawapi.py`).
//!
//! Strict choices: a token request that is not `application/x-www-form-urlencoded` is a
//! 400 `invalid_request` (never JSON); the consent step refuses (400, no redirect) an
//! unknown client or a `redirect_uri` other than the registered one, as OAuth requires.
//! Token-endpoint calls do not count against the API rate limits (they have their own
//! 200-per-day limit in the real service, which is not emulated).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::oauth::{Grant, TokenError, us_time};
use super::state::Shared;

/// `GET /api/oauth2/auth`: consent is given at once and the browser is sent back.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let config = &shared.config;
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != config.client_id {
        return (StatusCode::BAD_REQUEST, "The client_id is unknown.").into_response();
    }
    if get("redirect_uri") != config.redirect_uri {
        return (
            StatusCode::BAD_REQUEST,
            "The redirect_uri does not match the one registered for this app.",
        )
            .into_response();
    }
    if get("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "response_type must be 'code'.").into_response();
    }
    let code = {
        let now = shared.now_ms();
        shared.lock().tokens.issue_code(&config.redirect_uri, now)
    };
    let separator = if config.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut location = format!(
        "{}{separator}code={}",
        config.redirect_uri,
        form_encode(&code)
    );
    if let Some(state) = params.get("state") {
        location.push_str(&format!("&state={}", form_encode(state)));
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Percent-encodes everything but unreserved characters.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `POST /api/oauth2/token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = match form {
        Ok(Form(form)) if is_form => form,
        _ => {
            return token_error(TokenError::InvalidRequest(
                "The request must be form-encoded (application/x-www-form-urlencoded).".to_owned(),
            ));
        }
    };
    match grant(&shared, &form) {
        Ok(grant) => {
            let body = json!({
                "access_token": grant.access_token,
                "token_type": "bearer",
                "expires_in": grant.expires_in_secs.to_string(),
                "refresh_token": grant.refresh_token,
            });
            let mut response = (StatusCode::OK, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => token_error(error),
    }
}

fn grant(shared: &Shared, form: &HashMap<String, String>) -> Result<Grant, TokenError> {
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let missing = |k: &str| TokenError::InvalidRequest(format!("The parameter {k} is missing."));
    let config = &shared.config;
    let client_ok = get("client_id") == Some(config.client_id.as_str())
        && get("client_secret")
            .is_some_and(|s| constant_time_eq(s.as_bytes(), config.client_secret.as_bytes()));
    let grant_type = get("grant_type").ok_or_else(|| missing("grant_type"))?;
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return Err(TokenError::UnsupportedGrantType);
    }
    if !client_ok {
        return Err(TokenError::InvalidClient);
    }
    let rules = shared.rules();
    let now = shared.now_ms();
    if grant_type == "authorization_code" {
        let code = get("code").ok_or_else(|| missing("code"))?;
        let redirect_uri = get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
        shared
            .lock()
            .tokens
            .exchange_code(code, redirect_uri, now, &rules)
    } else {
        let refresh = get("refresh_token").ok_or_else(|| missing("refresh_token"))?;
        shared.lock().tokens.refresh(refresh, now, &rules)
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn token_error(error: TokenError) -> Response {
    let (status, body): (StatusCode, Value) = match &error {
        TokenError::InvalidClient => (StatusCode::BAD_REQUEST, json!({"error": "invalid_client"})),
        TokenError::InvalidRequest(text) => (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": text}),
        ),
        TokenError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        ),
        TokenError::InvalidGrant(text) => (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": text}),
        ),
        TokenError::OldRefreshToken => (
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized_client", "error_description": "Old refresh token used."}),
        ),
        TokenError::RefreshExpired {
            expired_at_ms,
            now_ms,
        } => (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": format!(
                "The refresh token expired at {} and it is now {}.",
                us_time(*expired_at_ms),
                us_time(*now_ms)
            )}),
        ),
        TokenError::TooEarly => (
            StatusCode::BAD_REQUEST,
            json!({"error": "access_denied", "error_description": TOO_EARLY}),
        ),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if error == TokenError::TooEarly
        && let Ok(reason) = HeaderValue::from_str(&format!("TooEarlyToRefreshTokens: {TOO_EARLY}"))
    {
        response.headers_mut().insert("reason", reason);
    }
    response
}

const TOO_EARLY: &str = "Rate limit exceeded: access_token not expired";
