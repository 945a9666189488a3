//! Helpers shared by the Exact emulator contract tests (`tests/exact_*.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use reqwest::{Client, Response, redirect};
use serde_json::Value;
use switchboard_sandbox::Clock;
use switchboard_sandbox::exact::{ExactConfig, ExactSandbox, TokenPair};

pub const CLIENT_ID: &str = "5c5e3f6e-1d2b-4c1e-9d54-0a3c1f9e7b21";
pub const SECRET: &str = "sandbox-client-secret";
pub const REDIRECT: &str = "https://app.example/exact/callback";
pub const DIVISION: i32 = 123_456;

/// A clock that, for a test's purposes, stands still until the test advances it.
pub fn frozen_clock() -> Clock {
    Clock::scaled(1e-9)
}

/// Defaults with a frozen clock and limits raised out of the way.
pub fn config() -> ExactConfig {
    ExactConfig {
        clock: frozen_clock(),
        minutely_limit: 1_000_000,
        daily_limit: 1_000_000,
        ..ExactConfig::new(CLIENT_ID, SECRET, REDIRECT)
    }
}

pub async fn start(config: ExactConfig) -> ExactSandbox {
    ExactSandbox::start(config).await.unwrap()
}

pub fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `POST /api/oauth2/token` with a form body.
pub async fn token_call(sb: &ExactSandbox, form: &[(&str, &str)]) -> Response {
    client()
        .post(format!("{}/api/oauth2/token", sb.base_url()))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub async fn exchange_code(sb: &ExactSandbox, code: &str) -> Response {
    token_call(
        sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
    )
    .await
}

pub async fn refresh(sb: &ExactSandbox, refresh_token: &str) -> Response {
    token_call(
        sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
    )
    .await
}

/// Reads a successful token answer into a pair.
pub async fn pair(response: Response) -> TokenPair {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    TokenPair {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// An authenticated API caller, the way a well-behaved client calls Exact.
pub struct Api {
    pub client: Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(sb: &ExactSandbox) -> Self {
        Self {
            client: client(),
            base: sb.base_url(),
            token: sb.issue_tokens().access_token,
        }
    }

    /// `path` is below `/api/v1/`; a full URL (a `__next`) is used as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/api/v1/{path}", self.base)
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        prefer: bool,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .json(body);
        if prefer {
            request = request.header("Prefer", "return=representation");
        }
        request.send().await.unwrap()
    }
}

/// Checks Exact's REST error body shape and returns the message.
pub fn error_value(body: &Value) -> String {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("not an Exact error body: {body}"));
    assert_eq!(error.len(), 2, "{body}");
    assert_eq!(body["error"]["code"], "", "{body}");
    assert_eq!(body["error"]["message"]["lang"], "", "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"]["message"]["value"]
        .as_str()
        .unwrap()
        .to_owned()
}
