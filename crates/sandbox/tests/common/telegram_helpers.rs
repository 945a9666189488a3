//! Helpers shared by the Telegram emulator contract tests: a client for Bot API calls, a
//! frozen clock, and a webhook receiver written here, independent of the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::Client;
use serde_json::Value;
use switchboard_sandbox::Clock;
use switchboard_sandbox::telegram::{TelegramConfig, TelegramSandbox};

/// A token of the shape BotFather issues (the example token of the Bot API docs).
pub const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
/// The bot ID inside [`TOKEN`].
pub const BOT_ID: i64 = 123_456;

/// A clock that effectively stands still: a real second is a virtual microsecond, so a
/// test moves time only with `advance`, and every virtual timestamp is exact.
pub fn frozen_clock() -> Clock {
    Clock::scaled(1e-6)
}

pub async fn start(config: TelegramConfig) -> TelegramSandbox {
    TelegramSandbox::start(config).await.unwrap()
}

pub async fn sandbox() -> TelegramSandbox {
    start(TelegramConfig::new(TOKEN)).await
}

pub async fn frozen() -> TelegramSandbox {
    start(TelegramConfig {
        clock: frozen_clock(),
        ..TelegramConfig::new(TOKEN)
    })
    .await
}

/// POSTs `params` as JSON to `method` and returns the status and parsed body.
pub async fn call(sb: &TelegramSandbox, method: &str, params: Value) -> (StatusCode, Value) {
    let response = Client::new()
        .post(sb.method_url(method))
        .json(&params)
        .send()
        .await
        .unwrap();
    parsed(response).await
}

/// GETs a full URL and returns the status and parsed body.
pub async fn get(url: &str) -> (StatusCode, Value) {
    parsed(Client::new().get(url).send().await.unwrap()).await
}

pub async fn parsed(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "every Bot API answer is JSON"
    );
    (status, response.json().await.unwrap())
}

/// Polls `cond` every 5 ms of real time for up to 5 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn update_id(&self) -> i64 {
        self.json()["update_id"].as_i64().unwrap()
    }
}

/// Statuses to answer, each with an optional `Retry-After` in seconds.
pub type Script = Arc<Mutex<VecDeque<(u16, Option<u64>)>>>;

/// A webhook receiver: answers the scripted statuses in order (with an optional
/// `Retry-After`), then 200 for ever.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub script: Script,
}

impl Receiver {
    pub fn answering(script: &[(u16, Option<u64>)]) -> Self {
        let rx = Self::default();
        rx.script.lock().unwrap().extend(script.iter().copied());
        rx
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    rx.got.lock().unwrap().push(Received { headers, body });
    let next = rx.script.lock().unwrap().pop_front();
    match next {
        None => StatusCode::OK.into_response(),
        Some((status, retry_after)) => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            response
        }
    }
}

/// Starts `rx` on a loopback port; returns its webhook URL.
pub async fn start_receiver(rx: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/telegram/hook", post(receive))
        .with_state(rx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/telegram/hook")
}
