//! The demo run end to end (emulator up, signed webhooks out) and the binary's surface:
//! `--help`, and secrets read only from named environment variables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use switchboard_sandbox::demo::{DemoOptions, run_demo};
use switchboard_sandbox::pipedrive::PipedriveConfig;
use switchboard_sandbox::shopify::sign;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "demo-secret";
const BIN: &str = env!("CARGO_BIN_EXE_switchboard-sandbox");

type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signed = get("x-shopify-hmac-sha256") == sign(SECRET.as_bytes(), &body);
    seen.lock()
        .unwrap()
        .push((get("x-shopify-topic"), get("x-shopify-webhook-id"), signed));
    StatusCode::OK
}

#[tokio::test]
async fn demo_streams_signed_creates_updates_and_redeliveries() {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/webhooks/shop", post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let options = DemoOptions {
        pipedrive: Some(PipedriveConfig::new("demo-token")),
        webhook_url: format!("http://{addr}/webhooks/shop"),
        rate_per_sec: 200.0,
        shop_domain: "acme.myshopify.com".to_owned(),
        api_version: "2025-01".to_owned(),
        shopify_secret: SECRET.to_owned(),
        seed: Some(42),
        summary_every: Duration::from_millis(100),
        max_webhooks: Some(120),
    };
    let stats = tokio::time::timeout(
        Duration::from_secs(10),
        run_demo(options, CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stats.sent, 120);
    assert_eq!(stats.creates + stats.updates + stats.redeliveries, 120);
    assert!(
        stats.creates > 0 && stats.updates > 0 && stats.redeliveries > 0,
        "{stats:?}"
    );
    assert_eq!((stats.non_2xx, stats.failed), (0, 0));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 120);
    assert!(
        seen.iter().all(|(_, _, signed)| *signed),
        "every delivery verifies"
    );
    let creates = seen
        .iter()
        .filter(|(topic, _, _)| topic == "customers/create")
        .count();
    let updates = seen
        .iter()
        .filter(|(topic, _, _)| topic == "customers/update")
        .count();
    assert_eq!(creates + updates, 120);
    let distinct: std::collections::HashSet<_> = seen.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(
        distinct.len() as u64,
        120 - stats.redeliveries,
        "a re-delivery reuses a webhook ID"
    );
}

#[tokio::test]
async fn demo_stops_on_cancel_and_refuses_a_bad_rate() {
    let cancel = CancellationToken::new();
    // A listener that accepts and hangs up at once, so every webhook fails; its first
    // connection says the first webhook went out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let free = listener.local_addr().unwrap();
    let first = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn({
        let first = first.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
                first.notify_one();
            }
        }
    });
    let options = DemoOptions {
        pipedrive: Some(PipedriveConfig::new("demo-token")),
        webhook_url: format!("http://{free}/webhooks/shop"),
        rate_per_sec: 5.0,
        shop_domain: "acme.myshopify.com".to_owned(),
        api_version: "2025-01".to_owned(),
        shopify_secret: SECRET.to_owned(),
        seed: Some(1),
        summary_every: Duration::from_secs(10),
        max_webhooks: None,
    };
    let bad = DemoOptions {
        rate_per_sec: 0.0,
        ..options.clone()
    };
    assert!(run_demo(bad, CancellationToken::new()).await.is_err());
    let run = tokio::spawn(run_demo(options, cancel.clone()));
    tokio::time::timeout(Duration::from_secs(10), first.notified())
        .await
        .expect("the first webhook went out");
    cancel.cancel();
    let stats = tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(stats.sent >= 1, "the first webhook goes out at once");
    assert_eq!(stats.failed, stats.sent, "every connection was hung up on");
}

#[test]
fn help_lists_both_subcommands_and_the_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("serve") && help.contains("demo"), "{help}");
    let out = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--pipedrive-addr",
        "--webhook-url",
        "--rate",
        "--shop-domain",
        "--api-version",
        "--pipedrive-token-env",
        "--shopify-secret-env",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn missing_secret_env_is_a_clear_error_naming_the_variable() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--pipedrive-addr",
            "127.0.0.1:0",
            "--pipedrive-token-env",
            "SB_TEST_NO_SUCH_TOKEN",
        ])
        .env_remove("SB_TEST_NO_SUCH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SB_TEST_NO_SUCH_TOKEN"), "{stderr}");

    let out = Command::new(BIN)
        .args([
            "demo",
            "--pipedrive-addr",
            "127.0.0.1:0",
            "--shopify-secret-env",
            "SB_TEST_NO_SUCH_SECRET",
        ])
        .env("CRM_API_TOKEN", "present")
        .env_remove("SB_TEST_NO_SUCH_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SB_TEST_NO_SUCH_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("present"),
        "the token's value is never printed"
    );
}

#[test]
fn non_loopback_listen_address_is_refused() {
    let out = Command::new(BIN)
        .args(["serve", "--pipedrive-addr", "0.0.0.0:0"])
        .env("CRM_API_TOKEN", "t")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
