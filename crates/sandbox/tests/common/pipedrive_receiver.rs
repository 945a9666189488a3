//! A webhook receiver for the Pipedrive webhook tests: records every delivery (headers,
//! body, virtual arrival time) and answers scripted statuses. It shares nothing with the
//! emulator's sending code.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
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
