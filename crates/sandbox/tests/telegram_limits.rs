//! Flood control (saas-contracts.md §4.3, §4.4) on a frozen sandbox clock: the per-chat
//! limit (1 message/s, burst 3), 30 messages/s overall, 20 messages/min per group, the
//! exact 429 body with `parameters.retry_after`, and the bot-wide block while
//! `retry_after` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::telegram_helpers as helpers;

use std::time::Duration;

use helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_sandbox::telegram::{
    SAMPLE_GROUP_CHAT, SAMPLE_OTHER_USER_CHAT, SAMPLE_USER_CHAT, TelegramChat, TelegramConfig,
};

fn too_many(retry_after: u64) -> Value {
    json!({"ok": false, "error_code": 429,
           "description": format!("Too Many Requests: retry after {retry_after}"),
           "parameters": {"retry_after": retry_after}})
}

#[tokio::test]
async fn per_chat_limit_gives_429_with_retry_after() {
    let sb = frozen().await;
    let send = |chat: i64| call(&sb, "sendMessage", json!({"chat_id": chat, "text": "ping"}));
    for i in 0..3 {
        assert_eq!(
            send(SAMPLE_USER_CHAT).await.0,
            StatusCode::OK,
            "burst message {i}"
        );
    }
    let (status, body) = send(SAMPLE_USER_CHAT).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, too_many(1));
    assert_eq!(
        sb.messages_to(SAMPLE_USER_CHAT).len(),
        3,
        "the refused one is not sent"
    );

    sb.clock().advance(Duration::from_secs(1));
    assert_eq!(
        send(SAMPLE_USER_CHAT).await.0,
        StatusCode::OK,
        "one more after a second"
    );
    assert_eq!(
        send(SAMPLE_USER_CHAT).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn while_retry_after_runs_every_call_of_the_bot_is_blocked() {
    // One message per 10 s, no burst: the second message waits 10 s.
    let sb = start(TelegramConfig {
        clock: frozen_clock(),
        per_chat_per_second: 0.1,
        per_chat_burst: 1,
        ..TelegramConfig::new(TOKEN)
    })
    .await;
    let msg = |chat: i64| json!({"chat_id": chat, "text": "ping"});
    assert_eq!(
        call(&sb, "sendMessage", msg(SAMPLE_USER_CHAT)).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&sb, "sendMessage", msg(SAMPLE_USER_CHAT)).await;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(10))
    );

    // Another chat, and methods that send nothing, are refused too, with what is left.
    sb.clock().advance(Duration::from_secs(4));
    let (status, body) = call(&sb, "sendMessage", msg(SAMPLE_OTHER_USER_CHAT)).await;
    assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, too_many(6)));
    let (status, body) = call(&sb, "getMe", json!({})).await;
    assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, too_many(6)));
    let (status, _) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    sb.clock().advance(Duration::from_secs(6));
    assert_eq!(call(&sb, "getMe", json!({})).await.0, StatusCode::OK);
    assert_eq!(
        call(&sb, "sendMessage", msg(SAMPLE_OTHER_USER_CHAT))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn thirty_messages_per_second_overall() {
    let mut config = TelegramConfig {
        clock: frozen_clock(),
        ..TelegramConfig::new(TOKEN)
    };
    config.chats = (1..=31)
        .map(|id| TelegramChat::private(id, &format!("User {id}"), None))
        .collect();
    let sb = start(config).await;
    for chat in 1..=30 {
        let (status, body) =
            call(&sb, "sendMessage", json!({"chat_id": chat, "text": "sale"})).await;
        assert_eq!(status, StatusCode::OK, "message {chat}: {body}");
    }
    let (status, body) = call(&sb, "sendMessage", json!({"chat_id": 31, "text": "sale"})).await;
    assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, too_many(1)));
    sb.clock().advance(Duration::from_secs(1));
    assert_eq!(
        call(&sb, "sendMessage", json!({"chat_id": 31, "text": "sale"}))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn twenty_messages_per_minute_per_group() {
    let sb = frozen().await;
    // One per second keeps the per-chat limit happy; the group limit still bites.
    for i in 0..20 {
        let (status, body) = call(
            &sb,
            "sendMessage",
            json!({"chat_id": SAMPLE_GROUP_CHAT, "text": "x"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "message {i}: {body}");
        sb.clock().advance(Duration::from_secs(1));
    }
    // The first of the 20 went out 20 s ago: a slot frees 40 s from now.
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_GROUP_CHAT, "text": "x"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(40))
    );
    sb.clock().advance(Duration::from_secs(40));
    let (status, _) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_GROUP_CHAT, "text": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn flood_wait_switch_blocks_the_bot_in_process_and_over_http() {
    let sb = frozen().await;
    sb.flood_wait(Duration::from_secs(35));
    let (status, body) = call(&sb, "getMe", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(35))
    );
    sb.clock().advance(Duration::from_secs(35));
    assert_eq!(call(&sb, "getMe", json!({})).await.0, StatusCode::OK);

    let url = format!("{}/_sandbox/telegram/flood", sb.base_url());
    let r = reqwest::Client::new()
        .post(url)
        .json(&json!({"retry_after": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_USER_CHAT, "text": "x"}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, too_many(7)));
}
