//! Webhook subscriptions and outbound deliveries (saas-contracts.md §1.1–§1.3): the
//! subscription API, every header of a delivery checked against an independent HMAC
//! verifier, event and webhook IDs across subscriptions, timeouts, and the retry
//! schedule on a fast clock ending with the subscription removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::shopify_support as support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;
use switchboard_sandbox::Clock;
use switchboard_sandbox::shopify::{CustomerChange, ShopifyError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn change(email: &str, first: &str) -> CustomerChange {
    CustomerChange {
        email: email.to_owned(),
        first_name: Some(first.to_owned()),
        ..CustomerChange::default()
    }
}

#[tokio::test]
async fn subscriptions_are_created_listed_and_deleted_through_the_api() {
    let sb = sandbox().await;
    let (_rx, address) = Receiver::ok().await;
    let body =
        json!({"webhook": {"topic": "customers/update", "address": address, "format": "json"}});
    let r = call(&sb, Method::POST, "webhooks.json", Some(body.clone())).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let raw = r.text().await.unwrap();
    let w: Value = serde_json::from_str(&raw).unwrap();
    let w = &w["webhook"];
    let keys = [
        "id",
        "address",
        "topic",
        "created_at",
        "updated_at",
        "format",
        "fields",
        "metafield_namespaces",
        "api_version",
        "private_metafield_namespaces",
    ];
    let mut at = 0;
    for key in keys {
        let pos = raw
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key}"));
        assert!(pos >= at, "{key} out of Shopify's order in {raw}");
        at = pos;
    }
    assert_eq!(w["id"], json!(1091138715786u64));
    assert_eq!(w["api_version"], V);
    assert_eq!(w["format"], "json");
    assert_eq!(w["fields"], json!([]));

    let dup = call(&sb, Method::POST, "webhooks.json", Some(body)).await;
    assert_eq!(dup.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json(dup).await,
        json!({"errors": {"address": ["for this topic has already been taken"]}})
    );
    let bad =
        json!({"webhook": {"topic": "customers/explode", "address": "https://example.com/x"}});
    let r = call(&sb, Method::POST, "webhooks.json", Some(bad)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors = json(r).await["errors"].clone();
    assert!(
        errors["topic"].is_array() && errors["address"].is_array(),
        "{errors}"
    );

    let list = json(
        call(
            &sb,
            Method::GET,
            "webhooks.json?topic=customers/update",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    let r = call(&sb, Method::DELETE, "webhooks/1091138715786.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list = json(call(&sb, Method::GET, "webhooks.json", None).await).await;
    assert_eq!(list, json!({"webhooks": []}));
}

#[tokio::test]
async fn api_changes_fire_signed_webhooks_with_every_header() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    for topic in ["customers/create", "customers/update", "customers/delete"] {
        let body = json!({"webhook": {"topic": topic, "address": address, "format": "json"}});
        assert_eq!(
            call(&sb, Method::POST, "webhooks.json", Some(body))
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let created = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(json!({"customer": {"email": "bob@biller.com", "first_name": "Bob"}})),
    )
    .await;
    let id = json(created).await["customer"]["id"].as_u64().unwrap();
    call(
        &sb,
        Method::PUT,
        &format!("customers/{id}.json"),
        Some(json!({"customer": {"last_name": "Biller"}})),
    )
    .await;
    call(&sb, Method::DELETE, &format!("customers/{id}.json"), None).await;

    let got = rx.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let topics: Vec<String> = got.iter().map(|r| r.h("x-shopify-topic")).collect();
    assert_eq!(
        topics,
        ["customers/create", "customers/update", "customers/delete"]
    );
    for r in &got {
        assert!(
            verifies(SECRET, &r.body, &r.h("x-shopify-hmac-sha256")),
            "HMAC of the raw body"
        );
        assert!(!verifies(
            "another-secret",
            &r.body,
            &r.h("x-shopify-hmac-sha256")
        ));
        assert_eq!(r.h("content-type"), "application/json");
        assert_eq!(r.h("x-shopify-shop-domain"), "acme.myshopify.com");
        assert_eq!(r.h("x-shopify-api-version"), V);
        assert!(uuid::Uuid::parse_str(&r.h("x-shopify-webhook-id")).is_ok());
        assert!(uuid::Uuid::parse_str(&r.h("x-shopify-event-id")).is_ok());
        let fired = OffsetDateTime::parse(&r.h("x-shopify-triggered-at"), &Rfc3339).unwrap();
        assert!(
            (fired - sb.clock().now()).abs() < time::Duration::seconds(1),
            "virtual time"
        );
    }
    let create = got[0].json();
    assert_eq!(create["id"], json!(id));
    assert_eq!(create["email"], "bob@biller.com");
    assert_eq!(got[1].json()["last_name"], "Biller");
    assert!(String::from_utf8_lossy(&got[0].body).starts_with(&format!("{{\"id\":{id},\"email\"")));
    assert_eq!(
        String::from_utf8_lossy(&got[2].body),
        format!(
            r#"{{"id":{id},"phone":null,"addresses":[],"tax_exemptions":[],"email_marketing_consent":null,"sms_marketing_consent":null,"admin_graphql_api_id":"gid://shopify/Customer/{id}"}}"#
        )
    );
    // The receiver has them; the emulator logs each once the answer is back.
    let log = sb.wait_for_deliveries(3, Duration::from_secs(2)).await;
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|a| a.delivered && a.status == Some(200) && a.attempt == 0)
    );
}

#[tokio::test]
async fn one_event_for_two_subscriptions_shares_the_event_id_not_the_webhook_id() {
    let sb = sandbox().await;
    let (rx1, a1) = Receiver::ok().await;
    let (rx2, a2) = Receiver::ok().await;
    sb.subscribe("orders/create", &a1).unwrap();
    sb.subscribe("orders/create", &a2).unwrap();
    let order = json!({"order": {"email": "jon@doe.ca", "line_items": [{"title": "Aviator sunglasses", "price": "89.99"}]}});
    assert_eq!(
        call(&sb, Method::POST, "orders.json", Some(order))
            .await
            .status(),
        StatusCode::CREATED
    );
    let (r1, r2) = (
        rx1.wait_for(1).await[0].clone(),
        rx2.wait_for(1).await[0].clone(),
    );
    assert_eq!(r1.h("x-shopify-event-id"), r2.h("x-shopify-event-id"));
    assert_ne!(r1.h("x-shopify-webhook-id"), r2.h("x-shopify-webhook-id"));
    assert_eq!(r1.body, r2.body);
    let o = r1.json();
    assert_eq!(o["line_items"][0]["price"], "89.99");
    assert_eq!(o["total_price"], "89.99");
    assert!(String::from_utf8_lossy(&r1.body).contains("\"id\":820982911946154508"));
}

#[tokio::test]
async fn subscribing_refuses_non_loopback_addresses() {
    let sb = sandbox().await;
    let err = sb
        .subscribe("customers/create", "https://example.com/hook")
        .unwrap_err();
    assert!(
        matches!(err, ShopifyError::Rejected { status: 422, .. }),
        "{err:?}"
    );
}

/// On a clock 7200× real time, the 4-hour schedule runs in about 2 s. The receiver always
/// answers 503: the webhook is retried 8 times at increasing intervals, the 8th exactly 4
/// virtual hours after the first attempt, each with the original bytes and IDs, and then
/// the subscription is gone.
#[tokio::test]
async fn eight_retries_over_four_hours_then_the_subscription_is_removed() {
    let sb = start(config(Clock::scaled(7200.0))).await;
    let (rx, address) = Receiver::start(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
    let sub = sb.subscribe("customers/create", &address).unwrap();
    sb.trigger_customer_change(&change("retry@x.io", "Re"))
        .unwrap();

    let log = sb.wait_for_deliveries(9, Duration::from_secs(5)).await;
    assert_eq!(log.len(), 9, "{log:#?}");
    for _ in 0..200 {
        if !sb.removed_subscriptions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = log[0].due;
    let offsets: Vec<i64> = log
        .iter()
        .map(|a| (a.due - first).whole_seconds())
        .collect();
    assert_eq!(offsets, [0, 60, 180, 420, 900, 1860, 3780, 7620, 14400]);
    let gaps: Vec<i64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "increasing: {gaps:?}");
    for (n, a) in log.iter().enumerate() {
        assert_eq!(a.attempt as usize, n);
        assert_eq!((a.status, a.delivered), (Some(503), false));
        assert!(
            a.at >= a.due && a.at - a.due < time::Duration::minutes(30),
            "{a:?}"
        );
        assert_eq!(
            (&a.webhook_id, &a.event_id),
            (&log[0].webhook_id, &log[0].event_id)
        );
    }
    let got = rx.all();
    assert_eq!(got.len(), 9);
    for r in &got {
        assert_eq!(r.body, got[0].body, "the original payload");
        for h in [
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-shopify-triggered-at",
            "x-shopify-hmac-sha256",
        ] {
            assert_eq!(r.h(h), got[0].h(h), "{h}");
        }
    }
    let removed = sb.removed_subscriptions();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].id, sub.id);
    assert!(sb.subscriptions().is_empty());
    let list = json(call(&sb, Method::GET, "webhooks.json", None).await).await;
    assert_eq!(list, json!({"webhooks": []}));
    // Nothing more is sent, however long we wait.
    sb.clock().advance(Duration::from_secs(24 * 3600));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sb.deliveries().len(), 9);
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_the_retry_and_retries_stop() {
    let sb = start(config(Clock::scaled(120.0))).await;
    let (rx, address) = Receiver::start(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.trigger_customer_change(&change("heal@x.io", "H"))
        .unwrap();
    rx.wait_for(1).await;
    rx.set_status(StatusCode::NO_CONTENT);
    let log = sb.wait_for_deliveries(2, Duration::from_secs(3)).await;
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[1].attempt, log[1].status, log[1].delivered),
        (1, Some(204), true)
    );
    assert_eq!((log[1].due - log[0].due).whole_seconds(), 60);
    sb.clock().advance(Duration::from_secs(5 * 3600));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sb.deliveries().len(), 2);
    assert_eq!(sb.pending_deliveries(), 0);
    assert_eq!(sb.subscriptions().len(), 1);
}

/// A receiver slower than Shopify's 5 s has failed, even if it would answer 200 later.
/// At 100× real time the virtual 5 s pass in 50 ms (the emulator still grants 200 ms of
/// real time before giving up); the receiver takes 2 s.
#[tokio::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    let sb = start(config(Clock::scaled(100.0))).await;
    let (_rx, address) = Receiver::start(StatusCode::OK, Duration::from_secs(2)).await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.trigger_customer_change(&change("slow@x.io", "S"))
        .unwrap();
    let log = sb.wait_for_deliveries(2, Duration::from_secs(4)).await;
    assert!(log.len() >= 2, "{log:?}");
    assert_eq!(log[0].status, None);
    assert!(
        log[0].error.as_deref().unwrap().contains("timed out"),
        "{log:?}"
    );
    assert_eq!(log[1].attempt, 1);
}

#[tokio::test]
async fn order_changes_fire_the_orders_topics_and_fields_trim_the_payload() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    for topic in ["orders/updated", "orders/delete"] {
        sb.subscribe(topic, &address).unwrap();
    }
    let trimmed = json!({"webhook": {"topic": "orders/create", "address": address, "fields": ["id", "total_price"]}});
    assert_eq!(
        call(&sb, Method::POST, "webhooks.json", Some(trimmed))
            .await
            .status(),
        StatusCode::CREATED
    );
    let order = json!({"order": {"email": "o@x.io", "line_items": [{"title": "T", "price": "2.50", "quantity": 3}]}});
    let id = json(call(&sb, Method::POST, "orders.json", Some(order)).await).await["order"]["id"]
        .as_u64()
        .unwrap();
    let note = json!({"order": {"note": "leave at the door"}});
    call(&sb, Method::PUT, &format!("orders/{id}.json"), Some(note)).await;
    call(&sb, Method::DELETE, &format!("orders/{id}.json"), None).await;
    let got = rx.wait_for(3).await;
    let topics: Vec<String> = got.iter().map(|r| r.h("x-shopify-topic")).collect();
    assert_eq!(topics, ["orders/create", "orders/updated", "orders/delete"]);
    assert_eq!(
        String::from_utf8_lossy(&got[0].body),
        format!(r#"{{"id":{id},"total_price":"7.50"}}"#)
    );
    assert_eq!(got[1].json()["note"], "leave at the door");
    assert_eq!(
        String::from_utf8_lossy(&got[2].body),
        format!(r#"{{"id":{id}}}"#)
    );
    for r in &got {
        assert!(verifies(SECRET, &r.body, &r.h("x-shopify-hmac-sha256")));
    }
}
