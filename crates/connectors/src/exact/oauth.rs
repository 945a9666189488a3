//! Exact's token endpoint (§3.1): form-encoded refresh with client ID and secret; the
//! answer's `expires_in` is a string; errors are 400 with `error` / `error_description`.

use std::time::Duration;

use serde::Deserialize;
use switchboard_core::Secret;
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::tokens::{TokenEndpoint, TokenSet};

use super::ExactOAuth;
use crate::http::{network_error, send};

/// The token endpoint of one Exact connection.
pub struct ExactTokenEndpoint {
    http: reqwest::Client,
    url: String,
    oauth: ExactOAuth,
}

impl ExactTokenEndpoint {
    /// The endpoint at `<base_url>/api/oauth2/token`.
    pub fn new(base_url: &str, oauth: ExactOAuth) -> Result<Self, ClassifiedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            url: format!("{}/api/oauth2/token", base_url.trim_end_matches('/')),
            oauth,
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: StringOrNumber,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(u64),
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenEndpoint for ExactTokenEndpoint {
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, ClassifiedError> {
        let answer = send(
            self.http
                .post(&self.url)
                .header("accept", "application/json")
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                    ("client_id", self.oauth.client_id.as_str()),
                    ("client_secret", self.oauth.client_secret.expose()),
                ]),
        )
        .await
        .map_err(|e| network_error("exact token refresh", &e))?;
        let status = answer.status;
        if !status.is_success() {
            let body: TokenError = answer.json("exact token refresh").unwrap_or_default();
            // 400 access_denied "not expired" means we refreshed too early (a bug or a
            // clock problem); invalid_grant means the refresh token is dead. Both need a
            // human or a restart, never a blind retry loop.
            let class = if status.is_server_error() || status.as_u16() == 429 {
                ErrorClass::Transient
            } else {
                ErrorClass::Auth
            };
            return Err(ClassifiedError::new(
                class,
                format!(
                    "exact token refresh: HTTP {status}: {} {}",
                    body.error, body.error_description
                ),
            ));
        }
        let set: TokenResponse = answer.json("exact token refresh")?;
        let expires_in = match set.expires_in {
            StringOrNumber::Text(t) => t.trim().parse().unwrap_or(600),
            StringOrNumber::Number(n) => n,
        };
        Ok(TokenSet {
            access_token: Secret::from_value(set.access_token),
            refresh_token: Secret::from_value(set.refresh_token),
            expires_in: Duration::from_secs(expires_in),
        })
    }
}
