//! The Pipedrive emulator's switches: schema drift on API answers and webhook payloads,
//! and the shared control layer (faults, outage, request log, create counters) rendering
//! Pipedrive's error shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::common::pipedrive_receiver as receiver;

use common::*;
use receiver::Receiver;
use reqwest::{Client, StatusCode};
use serde_json::json;
use switchboard_sandbox::FaultRule;
use switchboard_sandbox::pipedrive::{Entity, JsonType, SchemaSwitch, SchemaTarget};

#[tokio::test]
async fn schema_switches_drift_webhooks_and_api_separately() {
    let sb = sandbox().await;
    let client = Client::new();
    let receiver = Receiver::start(sb.clock().clone()).await;
    client
        .post(url(&sb, "/v1/webhooks"))
        .header("x-api-token", TOKEN)
        .json(&json!({"subscription_url": receiver.url, "event_action": "*", "event_object": "person"}))
        .send()
        .await
        .unwrap();
    let added = client
        .post(url(&sb, "/_sandbox/pipedrive/schema"))
        .json(&json!({"rename": {"from": "emails", "to": "email"}, "target": "webhooks"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::NO_CONTENT);
    let invalid = client
        .post(url(&sb, "/_sandbox/pipedrive/schema"))
        .json(&json!({"target": "api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        invalid.status(),
        StatusCode::BAD_REQUEST,
        "a switch needs one change"
    );
    sb.add_schema_switch(
        SchemaSwitch::change_type("id", JsonType::String)
            .only(SchemaTarget::Api)
            .for_entity(Entity::Person),
    )
    .unwrap();
    sb.add_schema_switch(SchemaSwitch::add("lifecycle_stage", json!("lead")))
        .unwrap();

    let created = create(
        &client,
        &sb,
        json!({"name": "Drifty Dee", "emails": [{"value": "dee@example.com"}]}),
    )
    .await;
    let person = body(created).await["data"].clone();
    assert_eq!(person["id"], json!("1"), "API: id as a string");
    assert!(
        person.get("emails").is_some(),
        "API keeps emails (webhook-only rename)"
    );
    assert_eq!(person["lifecycle_stage"], json!("lead"), "added everywhere");

    let hit = &receiver.wait_for(1).await[0].body;
    assert_eq!(hit["data"]["email"][0]["value"], json!("dee@example.com"));
    assert!(
        hit["data"].get("emails").is_none(),
        "webhook: emails renamed to email"
    );
    assert_eq!(
        hit["data"]["id"],
        json!(1),
        "webhook id untouched (API-only switch)"
    );
    assert_eq!(hit["data"]["lifecycle_stage"], json!("lead"));
    assert_eq!(hit["meta"]["entity_id"], json!("1"), "meta never drifts");

    let listed = body(
        client
            .get(url(&sb, "/_sandbox/pipedrive/schema"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    client
        .delete(url(&sb, "/_sandbox/pipedrive/schema"))
        .send()
        .await
        .unwrap();
    let got = client
        .get(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(body(got).await["data"]["id"], json!(1), "cleared");
}

#[tokio::test]
async fn control_faults_and_outages_answer_in_pipedrive_shapes() {
    let sb = sandbox().await;
    let client = Client::new();
    sb.control().add_fault(FaultRule::fail_next(
        "POST /api/v2/deals",
        1,
        StatusCode::BAD_GATEWAY,
    ));
    let failed = client
        .post(url(&sb, "/api/v2/deals"))
        .header("x-api-token", TOKEN)
        .json(&json!({"title": "Flaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert!(
        header(&failed, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(sb.creates_for_deal("Flaky"), 0);

    sb.control().add_fault(FaultRule::fail_next(
        "GET /api/v2/persons",
        1,
        StatusCode::TOO_MANY_REQUESTS,
    ));
    let throttled = client
        .get(url(&sb, "/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let envelope = body(throttled).await;
    assert_eq!(envelope["success"], json!(false));
    assert_eq!(envelope["data"], serde_json::Value::Null);

    let outage = client
        .post(url(&sb, "/_sandbox/outage"))
        .json(&json!({"seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(outage.status(), StatusCode::NO_CONTENT);
    let down = client
        .get(url(&sb, "/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        header(&down, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    sb.clock().advance(std::time::Duration::from_secs(61));
    let up = client
        .get(url(&sb, "/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.status(),
        StatusCode::OK,
        "the outage ends on the sandbox clock"
    );

    let statuses: Vec<u16> = sb.requests().iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [502, 429, 503, 200],
        "the /_sandbox/ calls are not logged"
    );
    assert!(sb.requests().iter().all(|r| !r.at.is_empty()));
    let counters = body(
        client
            .get(url(&sb, "/_sandbox/counters"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(counters["requests"], json!(4));
    assert_eq!(sb.request_count(), 4);
}

#[tokio::test]
async fn creates_are_counted_on_the_control_per_record_key() {
    let sb = sandbox().await;
    let client = Client::new();
    create(&client, &sb, json!({"name": "Two Mails", "emails": [{"value": "a@x.io"}, {"value": "A@x.io"}, {"value": "b@x.io"}]})).await;
    create(&client, &sb, json!({"name": "No Mail"})).await;
    let counters = sb.control().counters();
    assert_eq!(
        counters.creates.get("a@x.io"),
        Some(&1),
        "once per distinct email"
    );
    assert_eq!(counters.creates.get("b@x.io"), Some(&1));
    assert_eq!(
        counters.creates.get("person:2"),
        Some(&1),
        "no email: by ID"
    );
    assert_eq!(sb.creates_for_email("A@X.IO"), 1);
}
