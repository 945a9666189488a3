//! The REST leaky bucket (saas-contracts.md §1.5), driven by the sandbox clock: a burst
//! fills the 40-marble bucket, the 41st call is 429 with `Retry-After`, and the bucket
//! leaks 2 marbles per (virtual) second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::shopify_support as support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use support::*;
use switchboard_sandbox::shopify::{RestPlan, ShopifyConfig};

const THROTTLED: &str = r#"{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}"#;

/// MUST SHOW: the 41st request inside a burst gets 429 with Retry-After, and the bucket
/// refills at 2/s (advance the clock 1 s → exactly 2 more requests fit).
#[tokio::test]
async fn the_41st_call_of_a_burst_is_429_and_the_bucket_leaks_two_per_second() {
    // The clock stands still, so the whole burst lands in one virtual instant.
    let sb = sandbox().await;
    for n in 1..=40 {
        let r = call(&sb, Method::GET, "customers.json", None).await;
        assert_eq!(r.status(), StatusCode::OK, "call {n}");
        assert_eq!(
            header(&r, "x-shopify-shop-api-call-limit"),
            Some(format!("{n}/40"))
        );
    }
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("2.0"));
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("40/40")
    );
    assert_eq!(r.text().await.unwrap(), THROTTLED);
    // Refused calls add no marble: still full, still refused.
    let r = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    sb.clock().advance(Duration::from_secs(1));
    assert_eq!(sb.bucket_used(), 38);
    for used in ["39/40", "40/40"] {
        let r = call(&sb, Method::GET, "customers.json", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "x-shopify-shop-api-call-limit").as_deref(),
            Some(used)
        );
    }
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "only two leaked");

    // Half a second leaks one marble; twenty seconds empty the bucket.
    sb.clock().advance(Duration::from_millis(500));
    assert_eq!(
        call(&sb, Method::GET, "customers.json", None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&sb, Method::GET, "customers.json", None)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    sb.clock().advance(Duration::from_secs(20));
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("1/40")
    );
}

#[tokio::test]
async fn every_authenticated_answer_counts_including_errors() {
    let sb = sandbox().await;
    let r = call(&sb, Method::GET, "customers/1.json", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("1/40")
    );
    let r = call(
        &sb,
        Method::POST,
        "customers.json",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("2/40")
    );
    let r = call(&sb, Method::GET, "nothing-here.json", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("3/40")
    );
}

#[tokio::test]
async fn the_plus_plan_has_a_bigger_faster_bucket() {
    let sb = start(ShopifyConfig::with_plan(
        config(frozen_clock()),
        RestPlan::Plus,
    ))
    .await;
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(
        header(&r, "x-shopify-shop-api-call-limit").as_deref(),
        Some("1/400")
    );
    for _ in 1..400 {
        call(&sb, Method::GET, "customers/count.json", None).await;
    }
    let r = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Exceeded 20 calls per second")
    );
    sb.clock().advance(Duration::from_secs(1));
    assert_eq!(sb.bucket_used(), 380);
}
