//! Partial failure across targets, end to end: one contact flows to Pipedrive and to
//! Shopify. Pipedrive takes it; Shopify refuses it (422), so it is dead-lettered there. The
//! console lists the flow instance as needing review, with the target that succeeded and its
//! native ID, and the one that failed with its reason; Pipedrive's write is not rolled back
//! (the documented policy). An operator's redrive completes the instance: Shopify gets the
//! customer, Pipedrive still has exactly one person, and the instance leaves the list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::targets_support as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::{PipedriveSandbox, ShopifyConfig, ShopifySandbox, StatusCode};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const SHOP_TOKEN: &str = "shpat_partial_test";
const ADMIN: &str = "partial-admin-secret-51c2";
/// The connection rows of `/api/v1/connections`, by name.
async fn rows(http: &reqwest::Client, base: &str) -> std::collections::HashMap<String, Value> {
    let answer: Value = http
        .get(format!("{base}/api/v1/connections"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["connections"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c))
        .collect()
}

const FLOW: &str = "  - {name: contacts-everywhere, from: src.persons, mapping: test/contact.v1, to: contact, sinks: [{target: crm.persons}, {target: shop.customers}]}";

async fn partial_failures(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let answer: Value = http
        .get(format!("{base}/api/v1/partial-failures"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["flows"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_that_dead_letters_flags_the_instance_until_a_redrive_completes_it() {
    init_logging();
    ensure_stack();
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(CRM_TOKEN))
        .await
        .unwrap();
    let shop = ShopifySandbox::start(ShopifyConfig {
        bucket_size: 1000,
        leak_rate: 1000.0,
        ..ShopifyConfig::new(SHOP_TOKEN)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("partial");
    let connections = format!(
        "  crm: {{type: pipedrive, base_url: \"{}\", api_token: \"{}\", burst_limit: 1000000, search_limit: 1000000}}\n  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: \"2025-01\", webhook_secret: \"${{env:CARGO_PKG_NAME}}\", access_token: \"{}\", base_url: \"{}\"}}\n",
        pipedrive.base_url(),
        secret_ref(dir.path(), "crm", CRM_TOKEN),
        secret_ref(dir.path(), "shop", SHOP_TOKEN),
        shop.base_url(),
    );
    let yaml = sink_yaml(&prefix, &connections, FLOW, "")
        + &format!(
            "console: {{listen: \"127.0.0.1:0\", admin_token: \"{}\"}}\n",
            secret_ref(dir.path(), "admin", ADMIN)
        );

    // Shopify refuses the first customer it is sent.
    shop.control().add_fault(FaultRule::fail_next(
        "POST /admin/api/2025-01/customers.json",
        1,
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    let mut record = canonical(
        "contact",
        "persons",
        "p1",
        json!({"email": "split@example.com", "first_name": "Split", "last_name": "Brain", "phone": null}),
    );
    // The source changed it now, so the latency the console reports is this test's.
    let changed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    record["source_updated_at"] = json!(changed_at);
    let canonical_id = record["id"].as_str().unwrap().to_owned();
    produce(&prefix, "contact", &[record]).await;

    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let console = switchboard_console::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let base = format!("http://{}", console.addr);
    let http = reqwest::Client::new();

    // Flagged: Pipedrive delivered (kept, not rolled back), Shopify dead-lettered.
    let mut flagged = Vec::new();
    for _ in 0..120 {
        flagged = partial_failures(&http, &base).await;
        if !flagged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(flagged.len(), 1, "one instance needs review: {flagged:?}");
    let instance = &flagged[0];
    assert_eq!(instance["canonical_id"], canonical_id.as_str());
    let person = pipedrive.person_by_email("split@example.com").unwrap();
    let delivered: Vec<(&str, String)> = instance["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["connection"].as_str().unwrap(),
                d["native_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(delivered, [("crm", person.id.to_string())], "{instance}");
    let failed = instance["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{instance}");
    assert_eq!(failed[0]["connection"], "shop");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("422"),
        "{instance}"
    );
    assert!(shop.customers().is_empty());

    // The operator redrives the dead letter: the instance completes and leaves the list.
    let redrive = http
        .post(format!("{base}/api/v1/dlq/shop/redrive"))
        .bearer_auth(ADMIN)
        .json(&json!({"key": canonical_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), 200, "{:?}", redrive.text().await);
    assert!(
        eventually(Duration::from_secs(60), || shop
            .customer_by_email("split@example.com")
            .is_some())
        .await,
        "the redrive delivered to Shopify"
    );
    let mut cleared = false;
    for _ in 0..60 {
        if partial_failures(&http, &base).await.is_empty() {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(cleared, "the completed instance no longer needs review");

    // Rates from sb.deliveries: every outcome counts once in its window. Pipedrive delivered
    // its one record (1 of 1); Shopify dead-lettered it, then delivered it after the redrive
    // (1 of 2).
    let mut now = rows(&http, &base).await;
    for _ in 0..60 {
        if now["shop"]["success_rate_5m"].as_f64() == Some(0.5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = rows(&http, &base).await;
    }
    let (crm, shop_row) = (&now["crm"], &now["shop"]);
    assert_eq!(crm["success_rate_5m"].as_f64(), Some(1.0), "{crm}");
    assert_eq!(crm["success_rate_1h"].as_f64(), Some(1.0), "{crm}");
    let p95 = crm["p95_latency_ms"]
        .as_i64()
        .expect("crm has a p95 latency");
    assert!(
        (0..120_000).contains(&p95),
        "latency since the test's change: {crm}"
    );
    assert_eq!(
        shop_row["success_rate_5m"].as_f64(),
        Some(0.5),
        "{shop_row}"
    );
    assert_eq!(
        shop_row["success_rate_1h"].as_f64(),
        Some(0.5),
        "{shop_row}"
    );
    assert!(shop_row["p95_latency_ms"].as_i64().is_some(), "{shop_row}");
    let page = http
        .get(format!("{base}/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("100.0 % / 100.0 %"),
        "crm's rates on the dashboard"
    );
    assert!(
        page.contains("50.0 % / 50.0 %"),
        "shop's rates on the dashboard"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str, labels: &[&str]| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let ratio = "switchboard_connection_success_ratio";
    assert_eq!(
        gauge(ratio, &["connection=\"shop\"", "window=\"5m\""]),
        Some(0.5)
    );
    assert_eq!(
        gauge(ratio, &["connection=\"crm\"", "window=\"1h\""]),
        Some(1.0)
    );
    let p95_seconds = gauge(
        "switchboard_connection_latency_p95_seconds",
        &["connection=\"crm\""],
    );
    assert!(p95_seconds.is_some_and(|s| s >= 0.0), "{metrics}");
    assert_eq!(pipedrive.persons().len(), 1, "Pipedrive was written once");
    assert_eq!(shop.customers().len(), 1);
}
