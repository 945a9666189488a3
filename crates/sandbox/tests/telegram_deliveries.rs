//! Outbound webhook deliveries (saas-contracts.md §4.5, §4.6) against a receiver written
//! here: the `X-Telegram-Bot-Api-Secret-Token` header checked by an independent verifier,
//! the Update body, retries of failed deliveries on the sandbox clock, the 24-hour limit,
//! per-chat order, and the duplicate, out-of-order and schema switches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::telegram_helpers as helpers;

use std::time::Duration;

use helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use switchboard_sandbox::telegram::{
    SAMPLE_OTHER_USER_CHAT, SAMPLE_USER_CHAT, SchemaSwitch, TelegramSandbox,
};

const SECRET: &str = "Sw1tchb0ard_webhook-secret";

/// The receiver's check, written independently of the emulator: the header must be
/// present and equal the secret, compared in constant time (every byte is looked at, the
/// result does not depend on where the first difference is).
fn secret_matches(expected: &str, header: Option<&[u8]>) -> bool {
    let Some(given) = header else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

async fn with_webhook(sb: &TelegramSandbox, rx: Receiver, extra: serde_json::Value) -> String {
    let url = start_receiver(rx).await;
    let mut params = json!({"url": url, "secret_token": SECRET});
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, body) = call(sb, "setWebhook", params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    url
}

#[tokio::test]
async fn deliveries_carry_the_secret_token_header_and_the_update() {
    let sb = sandbox().await;
    let rx = Receiver::default();
    with_webhook(&sb, rx.clone(), json!({})).await;
    let injected = sb
        .inject_message(SAMPLE_USER_CHAT, "Where is order #1001?")
        .unwrap();
    wait_for("the delivery", || rx.count() == 1).await;

    let got = &rx.all()[0];
    let header = got
        .headers
        .get("x-telegram-bot-api-secret-token")
        .map(|v| v.as_bytes());
    assert!(secret_matches(SECRET, header), "the receiver accepts it");
    assert!(
        !secret_matches("Sw1tchb0ard_webhook-secreT", header),
        "a wrong secret would not match"
    );
    assert!(!secret_matches(SECRET, None));
    assert_eq!(got.headers["content-type"], "application/json");

    let raw = std::str::from_utf8(&got.body).unwrap();
    assert!(raw.starts_with("{\"update_id\":"), "update_id first: {raw}");
    let update = got.json();
    assert_eq!(update["update_id"], injected.update_id.unwrap());
    assert_eq!(update["message"]["message_id"], injected.message_id);
    assert_eq!(update["message"]["text"], "Where is order #1001?");
    assert_eq!(update["message"]["chat"]["id"], SAMPLE_USER_CHAT);
    assert_eq!(update.as_object().unwrap().len(), 2);

    wait_for("the pending count to drop", || {
        sb.pending_update_count() == 0
    })
    .await;
    let (_, info) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["pending_update_count"], 0);
    assert!(info["result"].get("last_error_date").is_none());
}

#[tokio::test]
async fn without_a_secret_token_there_is_no_header() {
    let sb = sandbox().await;
    let rx = Receiver::default();
    let url = start_receiver(rx.clone()).await;
    call(&sb, "setWebhook", json!({"url": url})).await;
    sb.inject_message(SAMPLE_USER_CHAT, "hi").unwrap();
    wait_for("the delivery", || rx.count() == 1).await;
    assert!(
        rx.all()[0]
            .headers
            .get("x-telegram-bot-api-secret-token")
            .is_none()
    );
}

/// Waits for `n` attempts in total and returns their virtual times, in milliseconds.
async fn attempts(sb: &TelegramSandbox, n: usize) -> Vec<i64> {
    wait_for(&format!("{n} attempts"), || sb.deliveries().len() >= n).await;
    sb.deliveries().iter().map(|d| d.at_millis).collect()
}

/// Equal up to the millisecond the frozen clock may tick over while the test runs.
fn assert_close(actual_ms: i64, expected_ms: i64) {
    assert!(
        (actual_ms - expected_ms).abs() <= 1,
        "{actual_ms} ms, expected {expected_ms} ms"
    );
}

/// Nothing more is attempted during 150 ms of real time (an eternity for the task).
async fn no_attempt_beyond(sb: &TelegramSandbox, n: usize) {
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sb.deliveries().len(), n, "no early retry");
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_documented_schedule() {
    let sb = frozen().await;
    let rx = Receiver::answering(&[(500, None); 7]);
    with_webhook(&sb, rx.clone(), json!({})).await;
    let id = sb
        .inject_message(SAMPLE_USER_CHAT, "hi")
        .unwrap()
        .update_id
        .unwrap();

    // The first retry follows at once.
    let times = attempts(&sb, 2).await;
    assert_close(times[1] - times[0], 0);
    let (_, info) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["pending_update_count"], 1);
    assert_eq!(
        info["result"]["last_error_message"],
        "Wrong response from the webhook: 500 Internal Server Error"
    );
    let error_date = info["result"]["last_error_date"].as_i64().unwrap();
    assert!((error_date - sb.clock().now().unix_timestamp()).abs() <= 1);

    // Then 2, 4, 8, 16, 32 s, then the 60 s cap; never earlier.
    for (n, step) in [(3, 2), (4, 4), (5, 8), (6, 16), (7, 32), (8, 60)] {
        no_attempt_beyond(&sb, n - 1).await;
        sb.clock().advance(Duration::from_secs(step - 1));
        no_attempt_beyond(&sb, n - 1).await;
        sb.clock().advance(Duration::from_secs(1));
        let times = attempts(&sb, n).await;
        assert_close(times[n - 1] - times[n - 2], step as i64 * 1000);
    }
    // The 8th attempt got a 200: delivered once, gone from the queue.
    wait_for("the queue to empty", || sb.pending_update_count() == 0).await;
    let log = sb.deliveries();
    assert!(log.iter().all(|d| d.update_id == id));
    let statuses: Vec<Option<u16>> = log.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [Some(500); 7]
            .into_iter()
            .chain([Some(200)])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        log.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u32>>()
    );
    assert_eq!(rx.count(), 8);
}

#[tokio::test]
async fn retry_after_from_the_receiver_is_honoured() {
    let sb = frozen().await;
    let rx = Receiver::answering(&[(503, Some(30))]);
    with_webhook(&sb, rx.clone(), json!({})).await;
    sb.inject_message(SAMPLE_USER_CHAT, "hi").unwrap();
    attempts(&sb, 1).await;
    no_attempt_beyond(&sb, 1).await;
    sb.clock().advance(Duration::from_secs(29));
    no_attempt_beyond(&sb, 1).await;
    sb.clock().advance(Duration::from_secs(1));
    let times = attempts(&sb, 2).await;
    assert_close(times[1] - times[0], 30_000);
}

#[tokio::test]
async fn an_update_that_cannot_be_delivered_within_24_hours_is_dropped() {
    let sb = frozen().await;
    let rx = Receiver::answering(&[(500, None); 10_000]);
    with_webhook(&sb, rx.clone(), json!({})).await;
    sb.inject_message(SAMPLE_USER_CHAT, "hi").unwrap();
    attempts(&sb, 2).await;
    sb.clock().advance(Duration::from_secs(24 * 3600));
    wait_for("the update to be dropped", || {
        sb.pending_update_count() == 0
    })
    .await;
    let before = rx.count();
    sb.clock().advance(Duration::from_secs(3600));
    no_attempt_beyond(&sb, sb.deliveries().len()).await;
    assert_eq!(rx.count(), before);
}

#[tokio::test]
async fn a_failing_update_holds_back_its_chat_but_not_others() {
    let sb = frozen().await;
    let rx = Receiver::answering(&[(500, None), (500, None)]);
    with_webhook(&sb, rx.clone(), json!({})).await;
    let a1 = sb
        .inject_message(SAMPLE_USER_CHAT, "a1")
        .unwrap()
        .update_id
        .unwrap();
    wait_for("two failed attempts", || rx.count() == 2).await;
    let a2 = sb
        .inject_message(SAMPLE_USER_CHAT, "a2")
        .unwrap()
        .update_id
        .unwrap();
    let b1 = sb
        .inject_message(SAMPLE_OTHER_USER_CHAT, "b1")
        .unwrap()
        .update_id
        .unwrap();
    wait_for("the other chat's update", || rx.count() == 3).await;
    no_attempt_beyond(&sb, 3).await;
    assert_eq!(rx.all()[2].update_id(), b1, "another chat goes ahead");
    sb.clock().advance(Duration::from_secs(2));
    wait_for("the chat's updates", || rx.count() == 5).await;
    let order: Vec<i64> = rx.all()[3..].iter().map(Received::update_id).collect();
    assert_eq!(
        order,
        [a1, a2],
        "same chat: in order, after the retry succeeded"
    );
}

#[tokio::test]
async fn duplicate_switch_delivers_the_same_update_again() {
    let sb = sandbox().await;
    let rx = Receiver::default();
    with_webhook(&sb, rx.clone(), json!({})).await;
    sb.set_duplicate_deliveries(2);
    let id = sb
        .inject_message(SAMPLE_USER_CHAT, "hi")
        .unwrap()
        .update_id
        .unwrap();
    wait_for("three copies", || rx.count() == 3).await;
    let got = rx.all();
    assert!(got.iter().all(|r| r.update_id() == id));
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "byte-identical copies"
    );
    // The emulator logs a delivery once its answer is back, which can be after the
    // receiver has counted it.
    wait_for("three deliveries logged", || sb.deliveries().len() == 3).await;
    let dups: Vec<bool> = sb.deliveries().iter().map(|d| d.duplicate).collect();
    assert_eq!(dups, [false, true, true]);
}

#[tokio::test]
async fn out_of_order_switch_delivers_newest_first() {
    let sb = sandbox().await;
    let rx = Receiver::default();
    sb.pause_deliveries(true);
    with_webhook(&sb, rx.clone(), json!({})).await;
    let ids: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|t| {
            sb.inject_message(SAMPLE_USER_CHAT, t)
                .unwrap()
                .update_id
                .unwrap()
        })
        .collect();
    no_attempt_beyond(&sb, 0).await;
    assert_eq!(sb.pending_update_count(), 3, "paused");

    let url = format!("{}/_sandbox/telegram/delivery", sb.base_url());
    let r = reqwest::Client::new()
        .post(url)
        .json(&json!({"out_of_order": true, "paused": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    wait_for("three deliveries", || rx.count() == 3).await;
    let order: Vec<i64> = rx.all().iter().map(Received::update_id).collect();
    assert_eq!(order, [ids[2], ids[1], ids[0]]);
}

#[tokio::test]
async fn schema_switches_change_outbound_updates_until_cleared() {
    let sb = sandbox().await;
    let rx = Receiver::default();
    with_webhook(&sb, rx.clone(), json!({})).await;
    sb.add_schema_switch(SchemaSwitch::Rename {
        path: "message.text".into(),
        to: "body".into(),
    });
    sb.add_schema_switch(SchemaSwitch::ChangeType {
        path: "message.chat.id".into(),
    });
    let url = format!("{}/_sandbox/telegram/schema", sb.base_url());
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"op": "add", "path": "message.business_connection_id", "value": "bc1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    sb.inject_message(SAMPLE_USER_CHAT, "hi").unwrap();
    wait_for("the delivery", || rx.count() == 1).await;
    let m = rx.all()[0].json()["message"].clone();
    assert!(m.get("text").is_none());
    assert_eq!(m["body"], "hi");
    assert_eq!(m["chat"]["id"], json!(SAMPLE_USER_CHAT.to_string()));
    assert_eq!(m["business_connection_id"], "bc1");

    reqwest::Client::new().delete(&url).send().await.unwrap();
    sb.inject_message(SAMPLE_USER_CHAT, "again").unwrap();
    wait_for("the second delivery", || rx.count() == 2).await;
    let m = rx.all()[1].json()["message"].clone();
    assert_eq!(
        (m["text"].clone(), m["chat"]["id"].clone()),
        (json!("again"), json!(SAMPLE_USER_CHAT))
    );
}

#[tokio::test]
async fn drop_pending_updates_on_set_webhook_discards_the_queue() {
    let sb = sandbox().await;
    sb.inject_message(SAMPLE_USER_CHAT, "stale").unwrap();
    let rx = Receiver::default();
    with_webhook(&sb, rx.clone(), json!({"drop_pending_updates": true})).await;
    sb.inject_message(SAMPLE_USER_CHAT, "fresh").unwrap();
    wait_for("the delivery", || rx.count() == 1).await;
    no_attempt_beyond(&sb, 1).await;
    assert_eq!(rx.all()[0].json()["message"]["text"], "fresh");
}
