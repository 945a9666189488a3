//! A webhook receiver for the Pipedrive webhook tests: records every delivery (headers,
//! body, virtual arrival time) and answers scripted statuses. It shares nothing with the
//! emulator's sending code. Also the helpers both webhook test files share.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use reqwest::Client;
use serde_json::json;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};

use crate::common::{TOKEN, body, start, url};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use switchboard_sandbox::Clock;
use time::OffsetDateTime;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    /// Virtual time of arrival on the shared clock.
    pub at: OffsetDateTime,
}

#[derive(Default)]
struct Inner {
    hits: Vec<Hit>,
    script: VecDeque<u16>,
    default_status: u16,
}

#[derive(Clone)]
struct Shared {
    clock: Clock,
    inner: Arc<Mutex<Inner>>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let mut inner = s.inner.lock().unwrap();
    inner.hits.push(Hit {
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        at: s.clock.now(),
    });
    let status = inner.script.pop_front().unwrap_or(inner.default_status);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// A receiver at `http://127.0.0.1:<port>/hook` answering 200 unless scripted.
    pub async fn start(clock: Clock) -> Self {
        let shared = Shared {
            clock,
            inner: Arc::new(Mutex::new(Inner {
                default_status: 200,
                ..Inner::default()
            })),
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    /// Every later delivery (after the script) gets `status`.
    pub fn respond_with(&self, status: u16) {
        self.shared.inner.lock().unwrap().default_status = status;
    }

    /// The next deliveries get these statuses, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .script
            .extend(statuses.iter().copied());
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.inner.lock().unwrap().hits.clone()
    }

    /// Waits (real time, at most 5 s) until `n` deliveries arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} deliveries, got {}: {:#?}",
                hits.len(),
                hits.iter().map(|h| &h.body["meta"]).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Asserts that no more than `n` deliveries arrive within `real` time.
    pub async fn assert_stays_at(&self, n: usize, real: Duration) {
        tokio::time::sleep(real).await;
        assert_eq!(self.hits().len(), n, "no delivery expected yet");
    }
}

/// Base64 of `sb-hook:s3cr3t p@ss`, computed once with python3:
/// `base64.b64encode(b"sb-hook:s3cr3t p@ss")` — independent of the emulator's encoder.
pub const BASIC_AUTH: &str = "Basic c2ItaG9vazpzM2NyM3QgcEBzcw==";

/// A clock that stands still unless advanced (1 ns of virtual time per real second).
pub fn frozen_clock() -> Clock {
    Clock::scaled(1e-9)
}

/// Lets the emulator finish handling an answer (and schedule its retry) before the test
/// moves the clock; with the clock frozen, no virtual time passes meanwhile.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

pub async fn sandbox_on(clock: &Clock) -> PipedriveSandbox {
    start(PipedriveConfig {
        clock: clock.clone(),
        ..PipedriveConfig::new(TOKEN)
    })
    .await
}

pub async fn subscribe(client: &Client, sb: &PipedriveSandbox, body: Value) -> reqwest::Response {
    client
        .post(url(sb, "/v1/webhooks"))
        .header("x-api-token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn subscribe_all(client: &Client, sb: &PipedriveSandbox, receiver: &Receiver) -> Value {
    let response = subscribe(
        client,
        sb,
        json!({"subscription_url": receiver.url, "event_action": "*", "event_object": "*",
               "http_auth_user": "sb-hook", "http_auth_password": "s3cr3t p@ss"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    body(response).await["data"].clone()
}

pub async fn send(
    client: &Client,
    sb: &PipedriveSandbox,
    method: reqwest::Method,
    path: &str,
    json_body: Option<Value>,
) -> Value {
    let mut request = client
        .request(method, url(sb, path))
        .header("x-api-token", TOKEN);
    if let Some(b) = json_body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    body(response).await
}
