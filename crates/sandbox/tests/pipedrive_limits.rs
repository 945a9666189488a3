//! The Pipedrive emulator's rate limits, daily budget, fault injection, latency and
//! lifecycle, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::json;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveError, PipedriveSandbox};

#[tokio::test]
async fn burst_limit_gives_429_with_headers_and_recovers_after_the_window() {
    // Long enough that four quick requests surely land in one window on a busy machine.
    let window = Duration::from_secs(1);
    let sb = start(PipedriveConfig {
        burst_limit: 3,
        burst_window: window,
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    let client = Client::new();
    let get = || {
        client
            .get(url(&sb, "/api/v2/persons/1"))
            .header("x-api-token", TOKEN)
            .send()
    };
    sb.seed_person("Seed Ed", &["seed@example.com"]);
    for remaining in ["2", "1", "0"] {
        let response = get().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        assert_eq!(header(&response, "x-ratelimit-reset").as_deref(), Some("1"));
        assert!(header(&response, "x-daily-ratelimit-token-remaining").is_some());
    }
    let throttled = get().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&throttled, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&throttled, "x-ratelimit-reset").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(&throttled, "retry-after"),
        None,
        "strict: clients must use x-ratelimit-reset"
    );
    let envelope = body(throttled).await;
    assert_eq!(envelope["success"], json!(false));
    assert_eq!(envelope["errorCode"], json!(429));
    assert_eq!(sb.throttled_count(), 1);

    tokio::time::sleep(window + Duration::from_millis(50)).await;
    let recovered = get().await.unwrap();
    assert_eq!(recovered.status(), StatusCode::OK);
    assert_eq!(
        header(&recovered, "x-ratelimit-remaining").as_deref(),
        Some("2")
    );
    assert_eq!(sb.throttled_count(), 1);
}

#[tokio::test]
async fn search_has_its_own_tighter_limit_and_budget_costs() {
    let sb = start(PipedriveConfig {
        search_burst_limit: 2,
        daily_budget: 50,
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    let client = Client::new();
    let search = || {
        client
            .get(search_url(
                &sb,
                &[("term", "nobody@example.com"), ("exact_match", "true")],
            ))
            .header("x-api-token", TOKEN)
            .send()
    };
    let first = search().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(
        header(&first, "x-daily-ratelimit-token-remaining").as_deref(),
        Some("30")
    );
    assert_eq!(search().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        search().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "third search in the window"
    );
    // 10 tokens left: a create (5) fits, then a second create (5), then nothing does.
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let response = create(&client, &sb, json!({"name": "Budget Bee"})).await;
        assert_eq!(response.status(), expected);
        if expected == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(
                header(&response, "x-daily-ratelimit-token-remaining").as_deref(),
                Some("0")
            );
            assert_eq!(
                body(response).await["error"],
                json!("daily request budget exceeded")
            );
        }
    }
    assert_eq!(sb.daily_budget_remaining(), 0);
    assert_eq!(sb.throttled_count(), 2);
    assert_eq!(sb.total_creates(), 2);
}

#[tokio::test]
async fn fail_next_injects_realistic_failures_then_recovers() {
    let sb = sandbox().await;
    let client = Client::new();
    sb.fail_next(2, StatusCode::SERVICE_UNAVAILABLE);
    sb.fail_next(1, StatusCode::INTERNAL_SERVER_ERROR);
    let person = json!({"name": "Flaky Flo", "emails": [{"value": "flo@example.com"}]});
    for _ in 0..2 {
        let response = create(&client, &sb, person.clone()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            header(&response, "content-type")
                .unwrap()
                .starts_with("text/html")
        );
    }
    let response = create(&client, &sb, person.clone()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body(response).await,
        json!({"success": false, "error": "Internal Server Error", "code": "ERR_UNKNOWN"})
    );
    assert_eq!(
        sb.creates_for_email("flo@example.com"),
        0,
        "a failed call creates nothing"
    );
    assert_eq!(create(&client, &sb, person).await.status(), StatusCode::OK);
    assert_eq!(sb.creates_for_email("flo@example.com"), 1);
    assert_eq!(sb.request_count(), 4);
    let statuses: Vec<u16> = sb.requests().iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [503, 503, 500, 200]);
}

#[tokio::test]
async fn latency_delays_answers() {
    let sb = sandbox().await;
    let client = Client::new();
    sb.set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let response = client
        .get(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_loopback_and_shutdown_stops_serving() {
    let refused = PipedriveSandbox::start(PipedriveConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    assert!(matches!(refused, Err(PipedriveError::NotLoopback(_))));

    let sb = sandbox().await;
    let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let target = url(&sb, "/api/v2/persons/1");
    assert!(client.get(&target).send().await.is_ok());
    sb.shutdown().await;
    sb.shutdown().await;
    assert!(
        client.get(&target).send().await.is_err(),
        "nothing listens after shutdown"
    );
}

#[test]
fn config_debug_redacts_the_token() {
    let text = format!("{:?}", PipedriveConfig::new("super-secret-token"));
    assert!(!text.contains("super-secret-token") && text.contains("***"));
}

#[tokio::test]
async fn search_lag_hides_new_persons_from_search_for_a_while() {
    let lag = Duration::from_millis(500);
    let sb = start(PipedriveConfig {
        search_lag: lag,
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    let client = Client::new();
    create(
        &client,
        &sb,
        json!({"name": "Late Lu", "emails": [{"value": "lu@example.com"}]}),
    )
    .await;
    let find = || {
        client
            .get(search_url(
                &sb,
                &[
                    ("term", "lu@example.com"),
                    ("fields", "email"),
                    ("exact_match", "true"),
                ],
            ))
            .header("x-api-token", TOKEN)
            .send()
    };
    let early = body(find().await.unwrap()).await;
    assert_eq!(
        early["data"]["items"],
        json!([]),
        "the index has not caught up yet"
    );
    assert!(
        sb.person_by_email("lu@example.com").is_some(),
        "but the person exists"
    );
    tokio::time::sleep(lag + Duration::from_millis(50)).await;
    let late = body(find().await.unwrap()).await;
    assert_eq!(late["data"]["items"][0]["item"]["name"], json!("Late Lu"));
}
