//! The Shopify emulator's switches, in-process and over `/_sandbox/shopify/`: duplicate
//! deliveries, out-of-order deliveries, schema drift in webhooks and API responses, and
//! the "trigger a customer change" call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::shopify_support as support;

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use support::*;
use switchboard_sandbox::shopify::{CustomerChange, JsonType, Resource, SchemaSwitch, Scope};

fn change(email: &str, first: &str) -> CustomerChange {
    CustomerChange {
        email: email.to_owned(),
        first_name: Some(first.to_owned()),
        ..CustomerChange::default()
    }
}

fn sandbox_url(sb: &switchboard_sandbox::shopify::ShopifySandbox, path: &str) -> String {
    format!("{}/_sandbox/shopify/{path}", sb.base_url())
}

#[tokio::test]
async fn duplicates_send_each_webhook_twice_with_the_same_ids_and_bytes() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.subscribe("customers/update", &address).unwrap();
    let r = Client::new()
        .post(sandbox_url(&sb, "duplicates"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(sb.switches().duplicates);

    sb.trigger_customer_change(&change("dup@x.io", "D"))
        .unwrap();
    sb.trigger_customer_change(&change("dup@x.io", "Dee"))
        .unwrap();
    let got = rx.wait_for(4).await;
    assert_eq!(got.len(), 4);
    for pair in got.chunks(2) {
        for h in [
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-shopify-topic",
            "x-shopify-hmac-sha256",
            "x-shopify-triggered-at",
        ] {
            assert_eq!(pair[0].h(h), pair[1].h(h), "{h}");
        }
        assert_eq!(pair[0].body, pair[1].body);
        assert!(verifies(
            SECRET,
            &pair[1].body,
            &pair[1].h("x-shopify-hmac-sha256")
        ));
    }
    assert_ne!(
        got[0].h("x-shopify-event-id"),
        got[2].h("x-shopify-event-id")
    );
    let log = sb.wait_for_deliveries(4, Duration::from_secs(2)).await;
    assert_eq!(log.iter().filter(|a| a.duplicate).count(), 2);
    assert_eq!(
        sb.control().creates_for("dup@x.io"),
        1,
        "one customer, two deliveries"
    );

    sb.set_duplicates(false);
    sb.trigger_customer_change(&change("dup@x.io", "Once"))
        .unwrap();
    rx.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.all().len(), 5);
}

#[tokio::test]
async fn out_of_order_swaps_consecutive_webhooks_and_releases_a_lonely_one_late() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.subscribe("customers/update", &address).unwrap();
    // The create and the update are two subscriptions; swap per subscription would not
    // reorder them, so use one topic twice: two updates.
    sb.trigger_customer_change(&change("ooo@x.io", "Zero"))
        .unwrap();
    rx.wait_for(1).await;
    let r = Client::new()
        .post(sandbox_url(&sb, "out-of-order"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    sb.trigger_customer_change(&change("ooo@x.io", "First"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.all().len(), 1, "the first update is held");
    sb.trigger_customer_change(&change("ooo@x.io", "Second"))
        .unwrap();
    let got = rx.wait_for(3).await;
    let names: Vec<String> = got
        .iter()
        .map(|r| r.json()["first_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["Zero", "Second", "First"],
        "the later change arrives first"
    );
    let stamps: Vec<String> = got.iter().map(|r| r.h("x-shopify-triggered-at")).collect();
    assert!(
        stamps[1] >= stamps[2],
        "Triggered-At tells the truth about the order"
    );

    // A held webhook with no successor goes out alone after the hold limit.
    sb.trigger_customer_change(&change("ooo@x.io", "Lonely"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.all().len(), 3);
    assert_eq!(sb.pending_deliveries(), 1);
    sb.clock().advance(Duration::from_secs(31));
    let got = rx.wait_for(4).await;
    assert_eq!(got[3].json()["first_name"], "Lonely");
}

#[tokio::test]
async fn schema_switches_drift_webhooks_and_api_responses() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.add_schema_switch(SchemaSwitch::rename("email", "email_address"))
        .unwrap();
    sb.add_schema_switch(SchemaSwitch::retype("id", JsonType::String))
        .unwrap();
    sb.add_schema_switch(SchemaSwitch::add("loyalty_tier", json!("gold")).only(Scope::Webhooks))
        .unwrap();
    sb.add_schema_switch(SchemaSwitch::add("never", json!(1)).for_resource(Resource::Order))
        .unwrap();
    let (customer, topic) = sb
        .trigger_customer_change(&change("drift@x.io", "D"))
        .unwrap();
    assert_eq!(topic, "customers/create");

    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(
        body["id"],
        json!(customer.id.to_string()),
        "every digit kept"
    );
    assert_eq!(body["email_address"], "drift@x.io");
    assert!(body.get("email").is_none());
    assert_eq!(body["loyalty_tier"], "gold");
    assert!(body.get("never").is_none(), "order-only switch");
    let raw = String::from_utf8_lossy(&got[0].body).to_string();
    assert!(
        raw.starts_with(&format!(
            r#"{{"id":"{}","email_address":"drift@x.io""#,
            customer.id
        )),
        "renamed in place: {raw}"
    );
    assert!(verifies(
        SECRET,
        &got[0].body,
        &got[0].h("x-shopify-hmac-sha256")
    ));

    let r = call(
        &sb,
        Method::GET,
        &format!("customers/{}.json", customer.id),
        None,
    )
    .await;
    let api = json(r).await["customer"].clone();
    assert_eq!(api["id"], json!(customer.id.to_string()));
    assert_eq!(api["email_address"], "drift@x.io");
    assert!(api.get("loyalty_tier").is_none(), "webhook-only switch");

    sb.clear_schema_switches();
    let r = call(
        &sb,
        Method::GET,
        &format!("customers/{}.json", customer.id),
        None,
    )
    .await;
    assert_eq!(json(r).await["customer"]["id"], json!(customer.id));
}

#[tokio::test]
async fn schema_switches_over_http_are_validated() {
    let sb = sandbox().await;
    let client = Client::new();
    let post = |body: serde_json::Value| client.post(sandbox_url(&sb, "schema")).json(&body).send();
    let ok =
        post(json!({"retype": {"field": "line_items.price", "to": "number"}, "resource": "order"}))
            .await
            .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let two = post(json!({"rename": {"from": "a", "to": "b"}, "add": {"field": "c", "value": 1}}))
        .await
        .unwrap();
    assert_eq!(two.status(), StatusCode::BAD_REQUEST);
    let unknown = post(json!({"delete": {"field": "a"}})).await.unwrap();
    assert!(unknown.status().is_client_error());
    let switches: serde_json::Value = client
        .get(sandbox_url(&sb, "switches"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(switches["schema"].as_array().unwrap().len(), 1);

    let order =
        json!({"order": {"email": "n@x.io", "line_items": [{"title": "T", "price": "89.99"}]}});
    let r = call(&sb, Method::POST, "orders.json", Some(order)).await;
    assert_eq!(
        json(r).await["order"]["line_items"][0]["price"],
        json!(89.99)
    );
    let r = client
        .delete(sandbox_url(&sb, "schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(sb.switches().schema.is_empty());
}

#[tokio::test]
async fn the_trigger_route_creates_then_updates_and_fires_webhooks() {
    let sb = sandbox().await;
    let (rx, address) = Receiver::ok().await;
    sb.subscribe("customers/create", &address).unwrap();
    sb.subscribe("customers/update", &address).unwrap();
    let trigger = |body: serde_json::Value| {
        Client::new()
            .post(sandbox_url(&sb, "trigger/customer"))
            .json(&body)
            .send()
    };
    let r = trigger(json!({"email": "demo@x.io", "first_name": "Demo"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let first = json(r).await;
    assert_eq!(first["topic"], "customers/create");
    // Unchanged data still fires: the trigger exists to make a webhook happen.
    let r = trigger(json!({"email": "demo@x.io"})).await.unwrap();
    assert_eq!(json(r).await["topic"], "customers/update");
    let got = rx.wait_for(2).await;
    let topics: Vec<String> = got.iter().map(|r| r.h("x-shopify-topic")).collect();
    assert_eq!(topics, ["customers/create", "customers/update"]);
    assert_eq!(got[1].json()["id"], first["customer"]["id"]);

    sb.wait_for_deliveries(2, Duration::from_secs(2)).await;
    let r = trigger(json!({"email": "not an email"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let log: serde_json::Value = Client::new()
        .get(sandbox_url(&sb, "deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[0]["status"], 200);
    assert!(
        sb.control().requests().is_empty(),
        "sandbox routes are not API calls"
    );
}
