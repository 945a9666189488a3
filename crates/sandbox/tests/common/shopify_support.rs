//! Helpers for the Shopify emulator's contract tests: a started sandbox, an HTTP client
//! that speaks to it, and a webhook receiver with an independent HMAC check.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use sha2::Sha256;
use switchboard_sandbox::Clock;
use switchboard_sandbox::shopify::{ShopifyConfig, ShopifySandbox};

pub const TOKEN: &str = "shpat_test_0123456789abcdef";
pub const SECRET: &str = "hush-this-is-a-test-secret";
/// Versions pinned so assertions do not depend on today's date.
pub const VERSIONS: [&str; 2] = ["2025-04", "2025-07"];
pub const V: &str = "2025-07";

/// A clock that stands still unless a test advances it (1e-9 virtual s per real s).
pub fn frozen_clock() -> Clock {
    Clock::scaled(1e-9)
}

pub fn config(clock: Clock) -> ShopifyConfig {
    ShopifyConfig {
        api_secret: SECRET.to_owned(),
        clock,
        api_versions: Some(VERSIONS.iter().map(|v| (*v).to_owned()).collect()),
        ..ShopifyConfig::new(TOKEN)
    }
}

pub async fn start(config: ShopifyConfig) -> ShopifySandbox {
    ShopifySandbox::start(config).await.unwrap()
}

pub async fn sandbox() -> ShopifySandbox {
    start(config(frozen_clock())).await
}

thread_local! {
    // One client per test thread (each test has its own runtime, and a client's pooled
    // connections belong to the runtime that made them); building one per call is slow.
    static CLIENT: Client = Client::new();
}

/// This test's HTTP client.
pub fn client() -> Client {
    CLIENT.with(Client::clone)
}

/// An authenticated call to `/admin/api/2025-07/{path}`.
pub async fn call(
    sb: &ShopifySandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut req = client()
        .request(method, sb.api_url(V, path))
        .header("X-Shopify-Access-Token", TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

pub async fn json(r: Response) -> Value {
    r.json().await.unwrap()
}

/// Verifies as a receiver should, with `hmac` + `sha2` directly (not the emulator's
/// signing code): base64-decode the header, HMAC-SHA256 the raw bytes, compare in
/// constant time.
pub fn verifies(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn h(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A loopback webhook receiver answering `status` (and sleeping `delay` first).
#[derive(Clone)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<StatusCode>>,
    delay: Duration,
}

impl Receiver {
    pub async fn start(status: StatusCode, delay: Duration) -> (Self, String) {
        let rx = Self {
            got: Arc::default(),
            status: Arc::new(Mutex::new(status)),
            delay,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/webhooks/shop", post(receive))
            .with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, format!("http://{addr}/webhooks/shop"))
    }

    pub async fn ok() -> (Self, String) {
        Self::start(StatusCode::OK, Duration::ZERO).await
    }

    pub fn set_status(&self, status: StatusCode) {
        *self.status.lock().unwrap() = status;
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time) until `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.all()
    }
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !rx.delay.is_zero() {
        tokio::time::sleep(rx.delay).await;
    }
    rx.got.lock().unwrap().push(Received { headers, body });
    *rx.status.lock().unwrap()
}
