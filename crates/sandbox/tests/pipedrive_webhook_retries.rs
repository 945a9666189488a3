//! Pipedrive webhook delivery policy on a nearly frozen sandbox clock moved by hand
//! (saas-contracts.md §2.4): retries after 3, 30 and 150 s, the ban after 10 failed first
//! attempts (events during the ban lost), and removal after 3 days without success.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::common::pipedrive_receiver as receiver;

use std::time::Duration;

use common::*;
use receiver::*;
use reqwest::Client;
use serde_json::json;
use switchboard_sandbox::pipedrive::DeliveryOutcome;

#[tokio::test]
async fn failed_first_attempt_is_retried_after_3_30_and_150_seconds() {
    let clock = frozen_clock();
    let sb = sandbox_on(&clock).await;
    let client = Client::new();
    let receiver = Receiver::start(clock.clone()).await;
    receiver.respond_with(500);
    subscribe_all(&client, &sb, &receiver).await;
    create(&client, &sb, json!({"name": "Retry Rita"})).await;
    receiver.wait_for(1).await;
    let nap = Duration::from_millis(150);
    for (n, delay) in [(2, 3.0), (3, 30.0), (4, 150.0)] {
        settle().await;
        clock.advance(Duration::from_secs_f64(delay - 0.1));
        receiver.assert_stays_at(n - 1, nap).await;
        clock.advance(Duration::from_millis(100));
        let hits = receiver.wait_for(n).await;
        let (before, now) = (&hits[n - 2], &hits[n - 1]);
        assert_eq!(
            now.body["meta"]["attempt"],
            json!(n),
            "meta.attempt counts up"
        );
        assert_eq!(
            now.body["meta"]["id"], hits[0].body["meta"]["id"],
            "same event"
        );
        assert_eq!(now.body["data"], hits[0].body["data"], "same payload");
        let gap = (now.at - before.at).as_seconds_f64();
        assert!(
            (delay..delay + 0.05).contains(&gap),
            "attempt {n} after {gap} s"
        );
    }
    settle().await;
    clock.advance(Duration::from_secs(3600));
    receiver.assert_stays_at(4, nap).await;
    let attempts: Vec<(u8, DeliveryOutcome, Option<u16>)> = sb
        .deliveries()
        .iter()
        .map(|d| (d.attempt, d.outcome, d.status))
        .collect();
    assert_eq!(
        attempts,
        (1..=4)
            .map(|a| (a, DeliveryOutcome::Failed, Some(500)))
            .collect::<Vec<_>>()
    );
    let state = &sb.webhooks()[0];
    assert_eq!(
        state.failed_first_attempts, 1,
        "failed retries do not count"
    );
}

#[tokio::test]
async fn a_retry_that_succeeds_ends_the_schedule() {
    let clock = frozen_clock();
    let sb = sandbox_on(&clock).await;
    let client = Client::new();
    let receiver = Receiver::start(clock.clone()).await;
    receiver.script(&[503]);
    subscribe_all(&client, &sb, &receiver).await;
    create(&client, &sb, json!({"name": "Second Chance"})).await;
    receiver.wait_for(1).await;
    settle().await;
    clock.advance(Duration::from_secs(3));
    let hits = receiver.wait_for(2).await;
    assert_eq!(hits[1].body["meta"]["attempt"], json!(2));
    clock.advance(Duration::from_secs(200));
    receiver
        .assert_stays_at(2, Duration::from_millis(150))
        .await;
}

#[tokio::test]
async fn ten_failed_first_attempts_ban_the_webhook_for_30_minutes() {
    let clock = frozen_clock();
    let sb = sandbox_on(&clock).await;
    let client = Client::new();
    let receiver = Receiver::start(clock.clone()).await;
    receiver.respond_with(500);
    subscribe(
        &client,
        &sb,
        json!({"subscription_url": receiver.url,
        "event_action": "create", "event_object": "person"}),
    )
    .await;
    for i in 1..=9 {
        create(&client, &sb, json!({"name": format!("Fail {i}")})).await;
    }
    receiver.wait_for(9).await;
    settle().await;
    assert_eq!(sb.webhooks()[0].failed_first_attempts, 9);
    assert_eq!(sb.webhooks()[0].banned_until, None, "9 is not yet a ban");
    create(&client, &sb, json!({"name": "Fail 10"})).await;
    receiver.wait_for(10).await;
    settle().await;
    let state = sb.webhooks()[0].clone();
    assert!(state.banned_until.is_some(), "banned at 10");
    assert_eq!(state.failed_first_attempts, 0, "the counter restarts");

    receiver.respond_with(200);
    create(&client, &sb, json!({"name": "During Ban"})).await;
    settle().await;
    // Retries of the 10 failed events fall due during the ban too.
    clock.advance(Duration::from_secs(29 * 60));
    receiver
        .assert_stays_at(10, Duration::from_millis(200))
        .await;
    let lost: Vec<_> = sb
        .deliveries()
        .into_iter()
        .filter(|d| d.outcome == DeliveryOutcome::LostToBan)
        .collect();
    assert!(
        lost.iter().any(|d| d.entity_id == "11" && d.attempt == 1),
        "the event during the ban is lost: {lost:#?}"
    );

    clock.advance(Duration::from_secs(61));
    create(&client, &sb, json!({"name": "After Ban"})).await;
    let hits = receiver.wait_for(11).await;
    assert_eq!(hits[10].body["meta"]["entity_id"], json!("12"));
    assert_eq!(hits[10].body["meta"]["attempt"], json!(1));
}

#[tokio::test]
async fn a_webhook_without_success_for_3_days_is_deleted() {
    let clock = frozen_clock();
    let sb = sandbox_on(&clock).await;
    let client = Client::new();
    let receiver = Receiver::start(clock.clone()).await;
    receiver.respond_with(500);
    subscribe_all(&client, &sb, &receiver).await;
    create(&client, &sb, json!({"name": "Never Delivered"})).await;
    receiver.wait_for(1).await;
    settle().await;
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    receiver.wait_for(2).await;
    settle().await;
    let listed = send(&client, &sb, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "2 days: still there"
    );
    clock.advance(Duration::from_secs(24 * 3600));
    receiver.wait_for(3).await;
    settle().await;
    let listed = send(&client, &sb, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["data"], json!([]), "3 days without success: deleted");
    let removed = &sb.webhooks()[0].webhook;
    assert_eq!(removed.is_active, 0);
    assert!(removed.remove_reason.is_some());
    receiver.respond_with(200);
    create(&client, &sb, json!({"name": "Nobody Listens"})).await;
    clock.advance(Duration::from_secs(600));
    receiver
        .assert_stays_at(3, Duration::from_millis(200))
        .await;
}
