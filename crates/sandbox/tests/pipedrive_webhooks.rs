//! Pipedrive webhooks v2 against a real receiver: the `/v1/webhooks` endpoints, payload
//! shapes for create/change/delete (saas-contracts.md §2.1), HTTP Basic auth (§2.3), and
//! the duplicate, out-of-order and trigger switches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::common::pipedrive_receiver as receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use receiver::*;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use switchboard_sandbox::pipedrive::{DeliveryOutcome, Entity, PipedriveConfig, Trigger};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn meta_keys() -> BTreeSet<String> {
    [
        "action",
        "entity",
        "entity_id",
        "id",
        "correlation_id",
        "company_id",
        "user_id",
        "webhook_id",
        "webhook_owner_id",
        "is_bulk_edit",
        "timestamp",
        "type",
        "version",
        "change_source",
        "attempt",
        "host",
        "permitted_user_ids",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn assert_uuid(v: &Value) {
    let s = v.as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(s).unwrap();
    assert_eq!(parsed.hyphenated().to_string(), s, "hyphenated UUID");
}

#[tokio::test]
async fn webhook_endpoints_create_list_delete_and_refuse_what_they_must() {
    // Room for 40+ calls in one burst window.
    let sb = start(PipedriveConfig {
        burst_limit: 100,
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    let client = Client::new();
    let receiver = Receiver::start(sb.clock().clone()).await;
    let webhook = subscribe_all(&client, &sb, &receiver).await;
    assert_eq!(webhook["id"], json!(1));
    assert_eq!(webhook["version"], json!("2.0"), "2.0 is the default");
    assert_eq!(webhook["is_active"], json!(1));
    assert_eq!(webhook["type"], json!("general"));
    assert_eq!(webhook["subscription_url"], json!(receiver.url));
    assert_eq!(webhook["http_auth_user"], json!("sb-hook"));
    for absent in [
        "remove_time",
        "remove_reason",
        "last_delivery_time",
        "last_http_status",
    ] {
        assert_eq!(webhook[absent], Value::Null, "{absent}");
    }
    let listed = send(&client, &sb, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["status"], json!("ok"));
    assert_eq!(listed["success"], json!(true));
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    for (bad, why) in [
        (
            json!({"subscription_url": receiver.url, "event_action": "added", "event_object": "person"}),
            "v1 action",
        ),
        (
            json!({"subscription_url": receiver.url, "event_action": "*", "event_object": "person", "version": "1.0"}),
            "v1 payloads",
        ),
        (
            json!({"subscription_url": "https://hooks.example.com/x", "event_action": "*", "event_object": "*"}),
            "not loopback",
        ),
        (json!({"event_action": "*", "event_object": "*"}), "no url"),
    ] {
        let response = subscribe(&client, &sb, bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(body(response).await["success"], json!(false));
    }

    for _ in 1..40 {
        let r = subscribe(&client, &sb, json!({"subscription_url": receiver.url, "event_action": "create", "event_object": "deal"})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let forty_first = subscribe(
        &client,
        &sb,
        json!({"subscription_url": receiver.url, "event_action": "create", "event_object": "deal"}),
    )
    .await;
    assert_eq!(
        forty_first.status(),
        StatusCode::BAD_REQUEST,
        "40 webhooks per user"
    );

    let deleted = send(
        &client,
        &sb,
        reqwest::Method::DELETE,
        "/v1/webhooks/1",
        None,
    )
    .await;
    assert_eq!(deleted, json!({"status": "ok", "success": true}));
    let again = client
        .delete(url(&sb, "/v1/webhooks/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let listed = send(&client, &sb, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 39);
}

#[tokio::test]
async fn create_change_delete_payloads_follow_v2_with_basic_auth() {
    let sb = sandbox().await;
    let client = Client::new();
    let receiver = Receiver::start(sb.clock().clone()).await;
    let webhook = subscribe_all(&client, &sb, &receiver).await;
    let email = json!([{"value": "ada@example.com", "primary": true, "label": "work"}]);
    send(
        &client,
        &sb,
        reqwest::Method::POST,
        "/api/v2/persons",
        Some(json!({"name": "Ada Lovelace", "emails": email})),
    )
    .await;
    // Each edit lands in a later second, so update_time differs every time: it must
    // still never count as a change on its own.
    let later = || sb.clock().advance(Duration::from_secs(5));
    later();
    send(
        &client,
        &sb,
        reqwest::Method::PATCH,
        "/api/v2/persons/1",
        Some(json!({"name": "Ada King"})),
    )
    .await;
    later();
    send(
        &client,
        &sb,
        reqwest::Method::PATCH,
        "/api/v2/persons/1",
        Some(json!({"name": "Ada King"})),
    )
    .await; // no change: no event
    later();
    send(
        &client,
        &sb,
        reqwest::Method::DELETE,
        "/api/v2/persons/1",
        None,
    )
    .await;
    let hits = receiver.wait_for(3).await;
    receiver
        .assert_stays_at(3, Duration::from_millis(200))
        .await;

    for hit in &hits {
        assert_eq!(hit.authorization.as_deref(), Some(BASIC_AUTH));
        assert_eq!(hit.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            keys(&hit.body),
            ["data", "meta", "previous"].map(str::to_owned).into()
        );
        let meta = &hit.body["meta"];
        assert_eq!(keys(meta), meta_keys());
        assert_eq!(meta["entity"], json!("person"));
        assert_eq!(meta["entity_id"], json!("1"), "a string");
        assert_uuid(&meta["id"]);
        assert_uuid(&meta["correlation_id"]);
        assert_eq!(meta["company_id"], json!("100"));
        assert_eq!(meta["user_id"], json!("1"));
        assert_eq!(meta["webhook_id"], json!(webhook["id"].to_string()));
        assert_eq!(meta["webhook_owner_id"], json!("1"));
        assert_eq!(meta["is_bulk_edit"], json!(false));
        assert_eq!(meta["type"], json!("general"));
        assert_eq!(meta["version"], json!("2.0"));
        assert_eq!(meta["change_source"], json!("api"));
        assert_eq!(meta["attempt"], json!(1));
        assert_eq!(meta["host"], json!("sandbox.pipedrive.com"));
        assert_eq!(meta["permitted_user_ids"], json!(["1"]));
        let ts = meta["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2022-11-24T15:18:35.616Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        OffsetDateTime::parse(ts, &Rfc3339).unwrap();
    }
    let ids: BTreeSet<&str> = hits
        .iter()
        .map(|h| h.body["meta"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "each event has its own meta.id");

    let (create, change, delete) = (&hits[0].body, &hits[1].body, &hits[2].body);
    assert_eq!(create["meta"]["action"], json!("create"));
    assert_eq!(create["previous"], Value::Null);
    assert_eq!(create["data"]["name"], json!("Ada Lovelace"));
    assert_eq!(create["data"]["emails"], email);
    assert_eq!(
        create["data"]["visible_to"],
        json!("3"),
        "a string in webhooks"
    );
    assert_eq!(create["data"]["custom_fields"], json!({}));

    assert_eq!(change["meta"]["action"], json!("change"));
    assert_eq!(change["data"]["name"], json!("Ada King"));
    assert_eq!(
        change["previous"],
        json!({"name": "Ada Lovelace", "last_name": "Lovelace"}),
        "only the changed fields, with their old values"
    );

    assert_eq!(delete["meta"]["action"], json!("delete"));
    assert_eq!(delete["data"], Value::Null);
    assert_eq!(
        delete["previous"]["name"],
        json!("Ada King"),
        "the last state"
    );
    assert_eq!(delete["previous"]["emails"], email);

    let log = sb.deliveries();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered && d.status == Some(200))
    );
    let state = &sb.webhooks()[0].webhook;
    assert_eq!(state.last_http_status, Some(200));
}

#[tokio::test]
async fn organizations_and_deals_fire_events_and_filters_apply() {
    let sb = sandbox().await;
    let client = Client::new();
    let all = Receiver::start(sb.clock().clone()).await;
    let deal_creates = Receiver::start(sb.clock().clone()).await;
    subscribe_all(&client, &sb, &all).await;
    let r = subscribe(
        &client,
        &sb,
        json!({"subscription_url": deal_creates.url,
        "event_action": "create", "event_object": "deal"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    send(
        &client,
        &sb,
        reqwest::Method::POST,
        "/api/v2/organizations",
        Some(json!({"name": "Acme"})),
    )
    .await;
    send(
        &client,
        &sb,
        reqwest::Method::POST,
        "/api/v2/deals",
        Some(json!({"title": "Big one", "value": 100, "org_id": 1})),
    )
    .await;
    send(
        &client,
        &sb,
        reqwest::Method::PATCH,
        "/api/v2/deals/1",
        Some(json!({"value": 250})),
    )
    .await;
    let hits = all.wait_for(3).await;
    let actions: Vec<(&str, &str)> = hits
        .iter()
        .map(|h| {
            (
                h.body["meta"]["entity"].as_str().unwrap(),
                h.body["meta"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("organization", "create"),
            ("deal", "create"),
            ("deal", "change")
        ]
    );
    assert_eq!(hits[2].body["previous"], json!({"value": 100}));
    assert_eq!(hits[2].body["data"]["value"], json!(250));
    let only = deal_creates.wait_for(1).await;
    deal_creates
        .assert_stays_at(1, Duration::from_millis(200))
        .await;
    assert_eq!(only[0].body["meta"]["entity"], json!("deal"));
    assert_eq!(
        only[0].authorization, None,
        "no credentials configured, no header"
    );
}

#[tokio::test]
async fn duplicate_and_out_of_order_switches_over_http() {
    let sb = sandbox().await;
    let client = Client::new();
    let receiver = Receiver::start(sb.clock().clone()).await;
    subscribe_all(&client, &sb, &receiver).await;
    let switch = |body: Value| {
        client
            .post(url(&sb, "/_sandbox/pipedrive/deliveries"))
            .json(&body)
            .send()
    };
    assert_eq!(
        switch(json!({"out_of_order": true}))
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    create(&client, &sb, json!({"name": "First Made"})).await;
    create(&client, &sb, json!({"name": "Second Made"})).await;
    let hits = receiver.wait_for(2).await;
    let order: Vec<&Value> = hits.iter().map(|h| &h.body["meta"]["entity_id"]).collect();
    assert_eq!(
        order,
        [&json!("2"), &json!("1")],
        "the later event overtakes"
    );

    switch(json!({"out_of_order": false, "duplicate": true}))
        .await
        .unwrap();
    create(&client, &sb, json!({"name": "Twice Told"})).await;
    let hits = receiver.wait_for(4).await;
    assert_eq!(
        hits[2].body, hits[3].body,
        "the same delivery, same meta.id, twice"
    );
    let log: Vec<bool> = sb.deliveries().iter().map(|d| d.duplicate).collect();
    assert_eq!(log, [false, false, false, true]);
}

#[tokio::test]
async fn a_trigger_is_a_change_from_the_app() {
    let sb = sandbox().await;
    let client = Client::new();
    let receiver = Receiver::start(sb.clock().clone()).await;
    subscribe_all(&client, &sb, &receiver).await;
    sb.seed_person("Demo Dora", &["dora@example.com"]);
    let response = client
        .post(url(&sb, "/_sandbox/pipedrive/trigger"))
        .json(&json!({"entity": "person", "id": 1, "fields": {"name": "Dora Explorer"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await["data"]["name"], json!("Dora Explorer"));
    sb.trigger(Trigger::create(
        Entity::Organization,
        json!({"name": "Demo Org"}),
    ))
    .unwrap();
    let refused = sb.trigger(Trigger::change(Entity::Deal, 7, json!({"title": "x"})));
    assert!(refused.is_err(), "no deal 7");
    let hits = receiver.wait_for(2).await;
    assert_eq!(hits[0].body["meta"]["change_source"], json!("app"));
    assert_eq!(
        hits[0].body["previous"],
        json!({"name": "Demo Dora", "first_name": "Demo", "last_name": "Dora"})
    );
    assert_eq!(hits[1].body["meta"]["entity"], json!("organization"));
    assert_eq!(sb.creates_for_organization("demo org"), 1);
}

#[test]
fn the_delivery_timeout_is_ten_seconds() {
    assert_eq!(
        PipedriveConfig::new("t").webhook_timeout,
        Duration::from_secs(10)
    );
}
