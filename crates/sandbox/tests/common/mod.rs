//! Helpers shared by the emulators' integration tests, one module per system.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod exact_helpers;
pub mod pipedrive_receiver;
pub mod shopify_support;
pub mod telegram_helpers;

use reqwest::{Client, Response, Url};
use serde_json::Value;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};

pub const TOKEN: &str = "test-token-0123456789";

pub async fn start(config: PipedriveConfig) -> PipedriveSandbox {
    PipedriveSandbox::start(config).await.unwrap()
}

pub async fn sandbox() -> PipedriveSandbox {
    start(PipedriveConfig::new(TOKEN)).await
}

pub fn url(sb: &PipedriveSandbox, path: &str) -> String {
    format!("{}{path}", sb.base_url())
}

pub fn search_url(sb: &PipedriveSandbox, params: &[(&str, &str)]) -> Url {
    Url::parse_with_params(&url(sb, "/api/v2/persons/search"), params).unwrap()
}

pub async fn create(client: &Client, sb: &PipedriveSandbox, body: Value) -> Response {
    client
        .post(url(sb, "/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn body(response: Response) -> Value {
    response.json().await.unwrap()
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}
