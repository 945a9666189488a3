//! Contract tests of the Shopify Admin REST API emulator: auth, versions, customer and
//! order CRUD shapes and status codes, validation errors, listing filters and pagination.
//! Every expected status, header and body below is the one saas-contracts.md §1 (or the
//! source named in the emulator's module docs) states.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::shopify_support as support;

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use support::*;
use switchboard_sandbox::FaultRule;

fn new_customer(email: &str) -> Value {
    json!({"customer": {"email": email, "first_name": "Bob", "last_name": "Biller"}})
}

#[tokio::test]
async fn auth_is_the_access_token_header_and_401_has_shopifys_body() {
    let sb = sandbox().await;
    let url = sb.api_url(V, "customers.json");
    for token in [None, Some("shpat_wrong")] {
        let mut req = Client::new().get(&url);
        if let Some(t) = token {
            req = req.header("X-Shopify-Access-Token", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&r, "x-shopify-shop-api-call-limit"), None);
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#
        );
    }
    // A bearer token is not Shopify's scheme for the Admin REST API.
    let r = Client::new()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let ok = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(json(ok).await, json!({"customers": []}));
}

#[tokio::test]
async fn unsupported_and_missing_versions_fall_forward_to_the_oldest_supported() {
    let sb = sandbox().await;
    let get = |url: String| async move {
        Client::new()
            .get(url)
            .header("X-Shopify-Access-Token", TOKEN)
            .send()
            .await
            .unwrap()
    };
    let cases = [
        (sb.api_url("2025-07", "customers.json"), "2025-07"),
        (sb.api_url("2024-01", "customers.json"), "2025-04"),
        (sb.api_url("2025-05", "customers.json"), "2025-04"),
        (format!("{}/admin/customers.json", sb.base_url()), "2025-04"),
    ];
    for (url, served) in cases {
        let r = get(url.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header(&r, "x-shopify-api-version").as_deref(),
            Some(served),
            "{url}"
        );
    }
    let r = get(sb.api_url("v1", "customers.json")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await.unwrap(), r#"{"errors":"Not Found"}"#);
}

#[tokio::test]
async fn the_default_version_set_comes_from_the_clock() {
    let sb = start(switchboard_sandbox::shopify::ShopifyConfig {
        api_versions: None,
        ..config(frozen_clock())
    })
    .await;
    let versions = sb.api_versions();
    assert_eq!(
        versions.len(),
        4,
        "a year of quarterly versions: {versions:?}"
    );
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(
        header(&r, "x-shopify-api-version").as_deref(),
        Some(versions[0].as_str()),
        "2025-07 retired a year after release and fell forward"
    );
}

#[tokio::test]
async fn customers_are_created_read_updated_and_deleted_with_shopifys_shapes() {
    let sb = sandbox().await;
    let r = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(new_customer("bob@biller.com")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    let raw = r.text().await.unwrap();
    // Key order and exact big IDs as in Shopify's sample (§1.4).
    assert!(
        raw.starts_with(
            r#"{"customer":{"id":706405506930370084,"email":"bob@biller.com","created_at":""#
        ),
        "{raw}"
    );
    assert!(
        raw.ends_with(r#""admin_graphql_api_id":"gid://shopify/Customer/706405506930370084"}}"#)
    );
    let c: Value = serde_json::from_str(&raw).unwrap();
    let c = &c["customer"];
    let created_at = c["created_at"].as_str().unwrap();
    assert!(created_at.ends_with("-05:00"), "shop offset: {created_at}");
    assert_eq!(created_at.len(), "2021-12-31T19:00:00-05:00".len());
    assert_eq!(c["updated_at"], c["created_at"]);
    for (k, v) in [
        ("first_name", json!("Bob")),
        ("last_name", json!("Biller")),
        ("state", json!("disabled")),
        ("verified_email", json!(true)),
        ("tags", json!("")),
        ("currency", json!("USD")),
        ("phone", json!(null)),
        ("addresses", json!([])),
    ] {
        assert_eq!(c[k], v, "{k}");
    }
    assert_eq!(sb.control().creates_for("bob@biller.com"), 1);

    let got = json(call(&sb, Method::GET, "customers/706405506930370084.json", None).await).await;
    assert_eq!(&got["customer"], c);

    sb.clock().advance(Duration::from_secs(90));
    let body = json!({"customer": {"id": 706405506930370084u64, "first_name": "Robert", "phone": "+1 613 555 0123", "tags": "vip, vip,new"}});
    let r = call(
        &sb,
        Method::PUT,
        "customers/706405506930370084.json",
        Some(body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let u = json(r).await["customer"].clone();
    assert_eq!(u["first_name"], "Robert");
    assert_eq!(u["phone"], "+16135550123");
    assert_eq!(u["tags"], "vip, new");
    assert_eq!(u["created_at"], c["created_at"]);
    assert_ne!(u["updated_at"], c["updated_at"]);

    let r = call(
        &sb,
        Method::DELETE,
        "customers/706405506930370084.json",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "{}");
    let r = call(&sb, Method::GET, "customers/706405506930370084.json", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await.unwrap(), r#"{"errors":"Not Found"}"#);
    let r = call(
        &sb,
        Method::PUT,
        "customers/1.json",
        Some(new_customer("x@y.zz")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_taken_email_is_422_so_check_before_create_matters() {
    let sb = sandbox().await;
    let first = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(new_customer("bob@biller.com")),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(new_customer("BOB@biller.com")),
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        again.text().await.unwrap(),
        r#"{"errors":{"email":["has already been taken"]}}"#
    );
    assert_eq!(sb.control().creates_for("bob@biller.com"), 1);
    assert_eq!(sb.customers().len(), 1);

    let cases = [
        (
            json!({"customer": {"email": "not-an-email"}}),
            json!({"email": ["is invalid"]}),
        ),
        (
            json!({"customer": {"tags": "x"}}),
            json!({"base": ["Customer must have a name, phone number or email address"]}),
        ),
        (
            json!({"customer": {"first_name": "A", "phone": "555"}}),
            json!({"phone": ["is invalid"]}),
        ),
    ];
    for (body, errors) in cases {
        let r = call(&sb, Method::POST, "customers.json", Some(body.clone())).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(json(r).await, json!({ "errors": errors }), "{body}");
    }
}

#[tokio::test]
async fn a_missing_root_or_a_non_json_body_is_400() {
    let sb = sandbox().await;
    let r = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(json!({"email": "a@b.cc"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":{"customer":"Required parameter missing or invalid"}}"#
    );
    let r = Client::new()
        .post(sb.api_url(V, "orders.json"))
        .header("X-Shopify-Access-Token", TOKEN)
        .body(r#"{"order":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "no JSON content type");
    assert_eq!(
        json(r).await,
        json!({"errors": {"order": "Required parameter missing or invalid"}})
    );
}

#[tokio::test]
async fn orders_carry_line_items_money_strings_and_a_linked_customer() {
    let sb = sandbox().await;
    let body = json!({"order": {
        "line_items": [
            {"title": "Aviator sunglasses", "price": "89.99", "quantity": 2, "sku": "SKU2006-001"},
            {"title": "Case", "price": 5}
        ],
        "customer": {"email": "jon@doe.ca", "first_name": "Jon"},
        "source_identifier": "sb-order-1"
    }});
    let r = call(&sb, Method::POST, "orders.json", Some(body)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let raw = r.text().await.unwrap();
    assert!(
        raw.starts_with(r#"{"order":{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@doe.ca""#),
        "{raw}"
    );
    let o: Value = serde_json::from_str(&raw).unwrap();
    let o = &o["order"];
    assert_eq!(o["name"], "#1001");
    assert_eq!(o["order_number"], 1001);
    assert_eq!(o["total_price"], "184.98");
    assert_eq!(o["subtotal_price"], "184.98");
    assert_eq!(o["currency"], "USD");
    assert!(o["created_at"].as_str().unwrap().ends_with("-05:00"));
    let li = &o["line_items"][0];
    assert_eq!(li["id"], json!(487817672276298554u64));
    assert_eq!(
        li["admin_graphql_api_id"],
        "gid://shopify/LineItem/487817672276298554"
    );
    assert_eq!(
        (li["price"].clone(), li["quantity"].clone()),
        (json!("89.99"), json!(2))
    );
    assert_eq!(o["line_items"][1]["price"], "5.00");
    // The buyer was new: a customer was created and linked.
    let customer = sb.customer_by_email("jon@doe.ca").unwrap();
    assert_eq!(o["customer"]["id"], json!(customer.id));
    assert_eq!(
        o["customer"]["admin_graphql_api_id"],
        json!(customer.admin_graphql_api_id)
    );
    assert_eq!(sb.control().creates_for("sb-order-1"), 1);

    // A second order by the same buyer links to the same customer.
    let again =
        json!({"order": {"email": "jon@doe.ca", "line_items": [{"title": "X", "price": "1.00"}]}});
    let o2 = json(call(&sb, Method::POST, "orders.json", Some(again)).await).await;
    assert_eq!(o2["order"]["customer"]["id"], json!(customer.id));
    assert_eq!(sb.customers().len(), 1);

    let r = call(
        &sb,
        Method::PUT,
        "orders/820982911946154508.json",
        Some(json!({"order": {"note": "gift"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["order"]["note"], "gift");
    let list = json(call(&sb, Method::GET, "orders.json", None).await).await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 2);

    let bad = json!({"order": {"line_items": []}});
    let r = call(&sb, Method::POST, "orders.json", Some(bad)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json(r).await,
        json!({"errors": {"line_items": ["can't be blank"]}})
    );
    let r = call(&sb, Method::GET, "orders/1.json", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injected_faults_use_shopifys_error_shape_and_are_logged() {
    let sb = sandbox().await;
    sb.control().add_fault(FaultRule::fail_next(
        "GET /admin",
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
    ));
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":"An unexpected error occurred"}"#
    );
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let log = sb.control().requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, 500);
    assert_eq!(log[1].path, format!("/admin/api/{V}/customers.json"));
}
