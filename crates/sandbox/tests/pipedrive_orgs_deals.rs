//! Pipedrive API v2 organizations and deals over real HTTP (saas-contracts.md §2.5, v2
//! OpenAPI): CRUD answers and object shapes, search item shapes, token costs (§2.7) and
//! the per-record create counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Client, Method, Response, StatusCode, Url};
use serde_json::{Value, json};
use switchboard_sandbox::pipedrive::PipedriveSandbox;

async fn call(
    sb: &PipedriveSandbox,
    method: Method,
    path: &str,
    json_body: Option<Value>,
) -> Response {
    let mut request = Client::new()
        .request(method, url(sb, path))
        .header("x-api-token", TOKEN);
    if let Some(b) = json_body {
        request = request.json(&b);
    }
    request.send().await.unwrap()
}

async fn search(sb: &PipedriveSandbox, path: &str, params: &[(&str, &str)]) -> Response {
    Client::new()
        .get(Url::parse_with_params(&url(sb, path), params).unwrap())
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn budget_left(response: &Response) -> u64 {
    header(response, "x-daily-ratelimit-token-remaining")
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn organization_crud_and_search_have_the_v2_shapes() {
    let sb = sandbox().await;
    let created = call(&sb, Method::POST, "/api/v2/organizations", Some(json!({
        "name": "Acme Corp",
        "address": {"value": "1 Main St, Springfield", "locality": "Springfield", "country": "USA"},
    })))
    .await;
    assert_eq!(
        created.status(),
        StatusCode::OK,
        "addOrganization answers 200"
    );
    let after_create = budget_left(&created);
    assert_eq!(after_create, 60_000 - 5, "create costs 5 tokens");
    let org = body(created).await["data"].clone();
    assert_eq!(
        keys(&org),
        [
            "id",
            "name",
            "owner_id",
            "add_time",
            "update_time",
            "is_deleted",
            "visible_to",
            "address",
            "label_ids",
            "custom_fields"
        ]
        .into()
    );
    assert_eq!(org["id"], json!(1));
    assert_eq!(org["owner_id"], json!(1));
    assert_eq!(org["visible_to"], json!(3));
    assert_eq!(
        keys(&org["address"]),
        [
            "value",
            "country",
            "admin_area_level_1",
            "admin_area_level_2",
            "locality",
            "sublocality",
            "route",
            "street_number",
            "postal_code"
        ]
        .into()
    );
    assert_eq!(org["address"]["locality"], json!("Springfield"));
    assert_eq!(org["address"]["route"], Value::Null);

    let nameless = call(
        &sb,
        Method::POST,
        "/api/v2/organizations",
        Some(json!({"visible_to": 3})),
    )
    .await;
    assert_eq!(nameless.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(nameless).await["success"], json!(false));

    let patched = call(
        &sb,
        Method::PATCH,
        "/api/v2/organizations/1",
        Some(json!({"name": "Acme Inc"})),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(body(patched).await["data"]["name"], json!("Acme Inc"));

    let found = search(
        &sb,
        "/api/v2/organizations/search",
        &[
            ("term", "acme inc"),
            ("fields", "name"),
            ("exact_match", "true"),
        ],
    )
    .await;
    assert_eq!(found.status(), StatusCode::OK);
    // The refused create is charged too (tokens are spent at admission), then the update
    // (5) and the search (20).
    assert_eq!(
        budget_left(&found),
        after_create - 5 - 5 - 20,
        "search costs 20"
    );
    let found = body(found).await;
    assert_eq!(found["additional_data"], json!({"next_cursor": null}));
    let item = &found["data"]["items"][0]["item"];
    assert_eq!(found["data"]["items"][0]["result_score"], json!(1.0));
    assert_eq!(
        keys(item),
        [
            "id",
            "type",
            "name",
            "address",
            "visible_to",
            "owner",
            "custom_fields",
            "notes"
        ]
        .into()
    );
    assert_eq!(item["type"], json!("organization"));
    assert_eq!(
        item["address"],
        json!("1 Main St, Springfield"),
        "a string in search items"
    );
    assert_eq!(item["owner"], json!({"id": 1}));

    let by_address = body(
        search(
            &sb,
            "/api/v2/organizations/search",
            &[("term", "springfield"), ("fields", "address")],
        )
        .await,
    )
    .await;
    assert_eq!(by_address["data"]["items"].as_array().unwrap().len(), 1);
    let wrong_field = search(
        &sb,
        "/api/v2/organizations/search",
        &[("term", "acme"), ("fields", "email")],
    )
    .await;
    assert_eq!(
        wrong_field.status(),
        StatusCode::BAD_REQUEST,
        "fields: address, custom_fields, notes, name"
    );

    let deleted = call(&sb, Method::DELETE, "/api/v2/organizations/1", None).await;
    assert_eq!(
        body(deleted).await,
        json!({"success": true, "data": {"id": 1}})
    );
    let gone = body(search(&sb, "/api/v2/organizations/search", &[("term", "acme")]).await).await;
    assert_eq!(gone["data"]["items"], json!([]));
    let soft = body(call(&sb, Method::GET, "/api/v2/organizations/1", None).await).await;
    assert_eq!(soft["data"]["is_deleted"], json!(true));
    assert_eq!(
        call(
            &sb,
            Method::PATCH,
            "/api/v2/organizations/1",
            Some(json!({"name": "X"}))
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(sb.creates_for_organization("ACME CORP"), 1);
    assert!(sb.organizations().is_empty());
}

#[tokio::test]
async fn deal_crud_and_search_have_the_v2_shapes() {
    let sb = sandbox().await;
    call(
        &sb,
        Method::POST,
        "/api/v2/organizations",
        Some(json!({"name": "Acme"})),
    )
    .await;
    create(
        &Client::new(),
        &sb,
        json!({"name": "Bob Buyer", "org_id": 1}),
    )
    .await;
    let created = call(
        &sb,
        Method::POST,
        "/api/v2/deals",
        Some(json!({
            "title": "Acme renewal", "value": 1500, "currency": "EUR", "person_id": 1,
            "org_id": 1, "stage_id": 2, "expected_close_date": "2025-06-30",
        })),
    )
    .await;
    assert_eq!(created.status(), StatusCode::OK);
    let deal = body(created).await["data"].clone();
    assert_eq!(
        keys(&deal),
        [
            "id",
            "title",
            "creator_user_id",
            "owner_id",
            "person_id",
            "org_id",
            "pipeline_id",
            "stage_id",
            "value",
            "currency",
            "add_time",
            "update_time",
            "stage_change_time",
            "is_deleted",
            "is_archived",
            "archive_time",
            "status",
            "probability",
            "lost_reason",
            "visible_to",
            "close_time",
            "won_time",
            "lost_time",
            "expected_close_date",
            "label_ids",
            "origin",
            "origin_id",
            "channel",
            "channel_id",
            "arr",
            "mrr",
            "acv",
            "custom_fields"
        ]
        .into()
    );
    assert_eq!(deal["value"], json!(1500), "an integer stays an integer");
    assert_eq!(deal["status"], json!("open"));
    assert_eq!(deal["pipeline_id"], json!(1));
    assert_eq!(deal["origin"], json!("API"));
    assert_eq!(deal["close_time"], Value::Null);

    for (bad, why) in [
        (
            json!({"lost_reason": "Too pricey"}),
            "lost_reason needs status lost",
        ),
        (
            json!({"won_time": "2025-01-01T00:00:00Z"}),
            "won_time needs status won",
        ),
        (json!({"person_id": 99}), "no person 99"),
        (json!({"value": "1500"}), "value is a number"),
        (json!({"status": "deleted"}), "open, won or lost"),
    ] {
        let refused = call(&sb, Method::PATCH, "/api/v2/deals/1", Some(bad)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    let untitled = call(
        &sb,
        Method::POST,
        "/api/v2/deals",
        Some(json!({"value": 5})),
    )
    .await;
    assert_eq!(
        untitled.status(),
        StatusCode::BAD_REQUEST,
        "title is required"
    );

    let lost = call(
        &sb,
        Method::PATCH,
        "/api/v2/deals/1",
        Some(json!({"status": "lost", "lost_reason": "Too pricey"})),
    )
    .await;
    assert_eq!(lost.status(), StatusCode::OK);
    let lost = body(lost).await["data"].clone();
    assert_eq!(lost["lost_reason"], json!("Too pricey"));
    assert!(lost["lost_time"].is_string() && lost["close_time"].is_string());

    let found = body(search(&sb, "/api/v2/deals/search", &[("term", "renewal")]).await).await;
    let item = &found["data"]["items"][0]["item"];
    assert_eq!(
        keys(item),
        [
            "id",
            "type",
            "title",
            "value",
            "currency",
            "status",
            "visible_to",
            "owner",
            "stage",
            "person",
            "organization",
            "custom_fields",
            "notes",
            "is_archived"
        ]
        .into()
    );
    assert_eq!(item["type"], json!("deal"));
    assert_eq!(item["stage"], json!({"id": 2, "name": "Contact Made"}));
    assert_eq!(item["person"], json!({"id": 1, "name": "Bob Buyer"}));
    assert_eq!(item["organization"], json!({"id": 1, "name": "Acme"}));
    assert_eq!(item["status"], json!("lost"));
    let open_only = body(
        search(
            &sb,
            "/api/v2/deals/search",
            &[("term", "renewal"), ("status", "open")],
        )
        .await,
    )
    .await;
    assert_eq!(open_only["data"]["items"], json!([]));
    let by_name = search(
        &sb,
        "/api/v2/deals/search",
        &[("term", "renewal"), ("fields", "name")],
    )
    .await;
    assert_eq!(
        by_name.status(),
        StatusCode::BAD_REQUEST,
        "deal fields: custom_fields, notes, title"
    );

    let person_search = body(
        search(
            &sb,
            "/api/v2/persons/search",
            &[("term", "bob buyer"), ("exact_match", "true")],
        )
        .await,
    )
    .await;
    assert_eq!(
        person_search["data"]["items"][0]["item"]["organization"],
        json!({"id": 1, "name": "Acme", "address": null})
    );

    let listed =
        body(call(&sb, Method::GET, "/api/v2/deals?status=lost&org_id=1", None).await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let deleted = call(&sb, Method::DELETE, "/api/v2/deals/1", None).await;
    assert_eq!(
        budget_left(&deleted),
        budget_left(&call(&sb, Method::GET, "/api/v2/deals/1", None).await) + 1,
        "get costs 1"
    );
    assert_eq!(
        body(deleted).await,
        json!({"success": true, "data": {"id": 1}})
    );
    let soft = body(call(&sb, Method::GET, "/api/v2/deals/1", None).await).await;
    assert_eq!(soft["data"]["is_deleted"], json!(true));
    assert!(sb.deals().is_empty());
    assert_eq!(sb.creates_for_deal("Acme renewal"), 1);
}

#[tokio::test]
async fn a_person_must_link_to_a_live_organization() {
    let sb = sandbox().await;
    let client = Client::new();
    let dangling = create(&client, &sb, json!({"name": "Lone Wolf", "org_id": 5})).await;
    assert_eq!(dangling.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sb.total_creates(), 0);
    let org = sb.seed_organization("Pack");
    let linked = create(&client, &sb, json!({"name": "Pack Wolf", "org_id": org.id})).await;
    assert_eq!(linked.status(), StatusCode::OK);
}
