//! Pipedrive's OAuth 2.0 server: authorization codes, the token endpoint and the bearer
//! tokens the API gate accepts.
//!
//! Contract facts followed (saas-contracts.md §2.6; Pipedrive "Marketplace OAuth
//! authorization" and the v1 OAuth reference):
//! - Authorize: `GET /oauth/authorize?client_id&redirect_uri&state`; the user's consent
//!   sends the browser to `redirect_uri?code=..&state=..`.
//! - Token: `POST /oauth/token` with `Authorization: Basic base64(client_id:client_secret)`,
//!   form-encoded, `grant_type=authorization_code` (with `code`, `redirect_uri`) or
//!   `grant_type=refresh_token` (with `refresh_token`).
//! - Answer: `{"access_token","token_type":"Bearer","refresh_token","scope",
//!   "expires_in":3600,"api_domain":"https://<company>.pipedrive.com"}`; API calls then
//!   send `Authorization: Bearer <access_token>` to `api_domain` — here the emulator's own
//!   base URL, so a client that follows `api_domain` keeps talking to the sandbox.
//! - The refresh token expires when unused for 60 days (on the sandbox clock).
//!
//! Gaps, resolved the strict way (and said so): token-endpoint errors use the RFC 6749
//! §5.2 shape `{"error":"invalid_grant","error_description":".."}` (400; a bad client is
//! 401 `invalid_client`), as Pipedrive's exact bodies are not in the reference. Codes are
//! single-use, live 5 minutes and are bound to their `redirect_uri`, which the token request
//! must repeat (RFC 6749 §4.1.3). Refresh tokens **rotate** by default: each refresh answers
//! a new one and invalidates the old, so a client that keeps the first refresh token fails
//! here even if the live API were lenient. Client credentials only count in the Basic
//! header, never in the form.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gate::constant_time_eq;
use super::state::Shared;

/// How long an authorization code can be exchanged.
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// The scope granted when none is asked for.
pub const DEFAULT_SCOPE: &str = "base,contacts:full,deals:full,admin";

#[derive(Debug, Clone)]
struct Code {
    redirect_uri: String,
    scope: String,
    expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct Access {
    expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct Refresh {
    scope: String,
    last_used: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Tokens {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
}

/// Issued codes and tokens. Removing an entry is how a code is used up or a token revoked.
#[derive(Debug, Default)]
pub(crate) struct OAuthStore {
    tokens: Mutex<Tokens>,
}

/// A token-endpoint refusal, rendered in the RFC 6749 §5.2 shape.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn grant(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description,
        }
    }

    fn request(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        (self.status, axum::Json(body)).into_response()
    }
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

impl OAuthStore {
    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a single-use authorization code bound to `redirect_uri`.
    pub fn issue_code(
        &self,
        redirect_uri: &str,
        scope: Option<&str>,
        now: OffsetDateTime,
    ) -> String {
        let code = random_token("code-");
        self.tokens().codes.insert(
            code.clone(),
            Code {
                redirect_uri: redirect_uri.to_owned(),
                scope: scope.unwrap_or(DEFAULT_SCOPE).to_owned(),
                expires_at: now + CODE_TTL,
            },
        );
        code
    }

    /// True when `token` is a live access token at `now`.
    pub fn access_is_valid(&self, token: &str, now: OffsetDateTime) -> bool {
        self.tokens()
            .access
            .iter()
            .any(|(t, a)| constant_time_eq(t.as_bytes(), token.as_bytes()) && now < a.expires_at)
    }

    /// Every access token issued so far expires now.
    pub fn expire_access_tokens(&self, now: OffsetDateTime) {
        for access in self.tokens().access.values_mut() {
            access.expires_at = access.expires_at.min(now);
        }
    }

    /// Revokes one refresh token; false when it was not live.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        self.tokens().refresh.remove(token).is_some()
    }

    /// Revokes every refresh token.
    pub fn revoke_all_refresh_tokens(&self) {
        self.tokens().refresh.clear();
    }

    fn issue_tokens(
        &self,
        scope: String,
        now: OffsetDateTime,
        ttl: Duration,
        keep_refresh: Option<String>,
    ) -> (String, String, String) {
        let access = random_token("v1u:");
        let refresh = keep_refresh.unwrap_or_else(|| random_token("r-"));
        let mut tokens = self.tokens();
        tokens.access.insert(
            access.clone(),
            Access {
                expires_at: now + ttl,
            },
        );
        tokens.refresh.insert(
            refresh.clone(),
            Refresh {
                scope: scope.clone(),
                last_used: now,
            },
        );
        (access, refresh, scope)
    }
}

/// The OAuth routes (served on the emulator's own address, not behind the API gate).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
}

/// Consent is implied: the user always approves.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let client_ok = params
        .get("client_id")
        .is_some_and(|id| id == &shared.config.oauth_client_id);
    let Some(redirect) = params.get("redirect_uri").filter(|_| client_ok) else {
        return OAuthError::request("client_id and redirect_uri are required").into_response();
    };
    let code = shared.oauth.issue_code(
        redirect,
        params.get("scope").map(String::as_str),
        shared.now(),
    );
    let Ok(mut location) = reqwest::Url::parse(redirect) else {
        return OAuthError::request("redirect_uri is not a URL").into_response();
    };
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = params.get("state") {
        location.query_pairs_mut().append_pair("state", state);
    }
    match HeaderValue::from_str(location.as_str()) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => OAuthError::request("redirect_uri is not a URL").into_response(),
    }
}

/// True when the Basic header carries the configured client credentials.
fn client_authenticated(headers: &HeaderMap, shared: &Shared) -> bool {
    let expected = format!(
        "{}:{}",
        shared.config.oauth_client_id, shared.config.oauth_client_secret
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .is_some_and(|given| constant_time_eq(&given, expected.as_bytes()))
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    match exchange(&shared, &headers, &body) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn exchange(shared: &Shared, headers: &HeaderMap, body: &str) -> Result<Response, OAuthError> {
    if !client_authenticated(headers, shared) {
        return Err(OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed (HTTP Basic client_id:client_secret)",
        });
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(OAuthError::request(
            "The body must be application/x-www-form-urlencoded",
        ));
    }
    let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{body}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .map_err(|_| OAuthError::request("Malformed form body"))?;
    let now = shared.now();
    let ttl = shared.config.access_token_ttl;
    let (access, refresh, scope) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let (Some(code), Some(redirect)) = (form.get("code"), form.get("redirect_uri")) else {
                return Err(OAuthError::request("code and redirect_uri are required"));
            };
            let issued = shared.oauth.tokens().codes.remove(code);
            let Some(issued) = issued.filter(|c| now < c.expires_at) else {
                return Err(OAuthError::grant(
                    "The authorization code is invalid or expired",
                ));
            };
            if &issued.redirect_uri != redirect {
                return Err(OAuthError::grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
            shared.oauth.issue_tokens(issued.scope, now, ttl, None)
        }
        Some("refresh_token") => {
            let Some(given) = form.get("refresh_token") else {
                return Err(OAuthError::request("refresh_token is required"));
            };
            let idle = shared.config.refresh_token_idle_ttl;
            let rotate = shared.config.rotate_refresh_tokens;
            let found = {
                let mut tokens = shared.oauth.tokens();
                let live = tokens
                    .refresh
                    .get(given)
                    .is_some_and(|r| now - r.last_used < idle);
                if live && rotate {
                    tokens.refresh.remove(given)
                } else if live {
                    tokens.refresh.get(given).cloned()
                } else {
                    None
                }
            };
            let Some(found) = found else {
                return Err(OAuthError::grant(
                    "The refresh token is invalid, expired or revoked",
                ));
            };
            let keep = (!rotate).then(|| given.clone());
            shared.oauth.issue_tokens(found.scope, now, ttl, keep)
        }
        _ => {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "grant_type must be authorization_code or refresh_token",
            });
        }
    };
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "scope": scope,
        "expires_in": ttl.as_secs(),
        "api_domain": shared.base_url,
    });
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-05-01 09:00:00 UTC);

    #[test]
    fn access_tokens_expire_and_can_be_expired_early() {
        let store = OAuthStore::default();
        let (access, _, _) = store.issue_tokens("base".into(), T0, Duration::from_secs(3600), None);
        assert!(store.access_is_valid(&access, T0 + Duration::from_secs(3599)));
        assert!(!store.access_is_valid(&access, T0 + Duration::from_secs(3600)));
        assert!(!store.access_is_valid("v1u:nope", T0));
        store.expire_access_tokens(T0);
        assert!(!store.access_is_valid(&access, T0));
    }

    #[test]
    fn revoked_refresh_tokens_are_gone() {
        let store = OAuthStore::default();
        let (_, refresh, _) = store.issue_tokens("base".into(), T0, Duration::from_secs(60), None);
        assert!(store.revoke_refresh_token(&refresh));
        assert!(!store.revoke_refresh_token(&refresh));
    }
}
