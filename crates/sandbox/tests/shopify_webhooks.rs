//! The Shopify webhook sender against a tiny receiver: every header arrives, the body is
//! the raw bytes that were signed, and the signature verifies with an HMAC computed here
//! independently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_sandbox::shopify::{Customer, SAMPLE_CUSTOMER_ID, ShopifyWebhooks, WebhookError};
use time::macros::datetime;

const SECRET: &str = "hush-this-is-a-test-secret";

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    delay: Option<Duration>,
}

/// Verifies like a receiver should: HMAC over the raw bytes, compared as bytes.
fn verifies(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Some(delay) = rx.delay {
        tokio::time::sleep(delay).await;
    }
    let ok = headers
        .get("x-shopify-hmac-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| verifies(SECRET, &body, sig));
    rx.got.lock().unwrap().push(Received { headers, body });
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn start_receiver(rx: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/webhooks/shop", post(receive))
        .with_state(rx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/webhooks/shop")
}

fn text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn receiver_gets_every_header_and_a_verifiable_signature() {
    let rx = Receiver::default();
    let target = start_receiver(rx.clone()).await;
    let sender = ShopifyWebhooks::new(&target, SECRET, "acme.myshopify.com", "2025-01").unwrap();
    let customer = Customer::new(
        SAMPLE_CUSTOMER_ID,
        "bob@biller.com",
        "Bob",
        "Biller",
        datetime!(2021-12-31 19:00:00 -05:00),
    );
    let body = customer.to_body();

    let status = sender
        .send(
            "customers/update",
            &body,
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the receiver verified the signature"
    );

    let got = rx.got.lock().unwrap()[0].clone();
    assert_eq!(
        got.body.as_ref(),
        body.as_slice(),
        "the raw signed bytes arrive unchanged"
    );
    let h = &got.headers;
    assert_eq!(text(h, "content-type"), "application/json");
    assert_eq!(text(h, "x-shopify-topic"), "customers/update");
    assert_eq!(text(h, "x-shopify-shop-domain"), "acme.myshopify.com");
    assert_eq!(text(h, "x-shopify-api-version"), "2025-01");
    assert_eq!(
        text(h, "x-shopify-webhook-id"),
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    );
    assert!(!text(h, "x-shopify-event-id").is_empty());
    let triggered = text(h, "x-shopify-triggered-at");
    assert!(
        time::OffsetDateTime::parse(&triggered, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert!(verifies(
        SECRET,
        &got.body,
        &text(h, "x-shopify-hmac-sha256")
    ));
    // The body keeps the ID exact above 2^53.
    assert!(String::from_utf8_lossy(&got.body).contains("\"id\":706405506930370084"));
}

#[tokio::test]
async fn wrong_signature_reaches_the_receiver_and_is_refused() {
    let rx = Receiver::default();
    let target = start_receiver(rx.clone()).await;
    let sender = ShopifyWebhooks::new(&target, SECRET, "acme.myshopify.com", "2025-01").unwrap();
    let body = br#"{"id":1}"#;
    let forged = switchboard_sandbox::shopify::sign(b"not-the-secret", body);
    let status = sender
        .send_with_signature("customers/create", body, "wh-1", &forged)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        text(&rx.got.lock().unwrap()[0].headers, "x-shopify-hmac-sha256"),
        forged
    );
}

#[tokio::test]
async fn redelivery_repeats_ids_and_trigger_time() {
    let rx = Receiver::default();
    let target = start_receiver(rx.clone()).await;
    let sender = ShopifyWebhooks::new(&target, SECRET, "acme.myshopify.com", "2025-01").unwrap();
    let customer = Customer::new(
        SAMPLE_CUSTOMER_ID,
        "a@example.com",
        "A",
        "B",
        datetime!(2025-01-01 00:00:00 UTC),
    );
    let delivery = sender.customer_delivery("customers/create", &customer);
    sender.deliver(&delivery).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    sender.deliver(&delivery).await.unwrap();
    sender
        .send("customers/create", &delivery.body, "same-id")
        .await
        .unwrap();
    sender
        .send("customers/create", &delivery.body, "same-id")
        .await
        .unwrap();

    let got = rx.got.lock().unwrap().clone();
    for name in [
        "x-shopify-webhook-id",
        "x-shopify-event-id",
        "x-shopify-triggered-at",
        "x-shopify-hmac-sha256",
    ] {
        assert_eq!(
            text(&got[0].headers, name),
            text(&got[1].headers, name),
            "{name}"
        );
    }
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(
        text(&got[2].headers, "x-shopify-event-id"),
        text(&got[3].headers, "x-shopify-event-id"),
        "send() derives the event ID from the webhook ID"
    );
    assert_ne!(
        text(&got[0].headers, "x-shopify-event-id"),
        text(&got[2].headers, "x-shopify-event-id")
    );
}

/// Runs on tokio's paused clock: the receiver "takes" 30 s and the sender must give up at
/// Shopify's 5 s without the test waiting for real.
#[tokio::test(start_paused = true)]
async fn a_receiver_slower_than_five_seconds_is_a_failed_delivery() {
    let rx = Receiver {
        delay: Some(Duration::from_secs(30)),
        ..Receiver::default()
    };
    let target = start_receiver(rx.clone()).await;
    let sender = ShopifyWebhooks::new(&target, SECRET, "acme.myshopify.com", "2025-01").unwrap();
    let started = tokio::time::Instant::now();
    let err = sender
        .send("customers/create", b"{}", "slow")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, WebhookError::Http(e) if e.is_timeout()),
        "{err:?}"
    );
    assert_eq!(
        rx.got.lock().unwrap().len(),
        0,
        "the receiver never finished"
    );
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_an_error_not_a_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let sender = ShopifyWebhooks::new(
        format!("http://{addr}/x"),
        SECRET,
        "a.myshopify.com",
        "2025-01",
    )
    .unwrap();
    assert!(matches!(
        sender.send("customers/create", b"{}", "x").await,
        Err(WebhookError::Http(_))
    ));
}
