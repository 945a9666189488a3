//! `sendMessage` results: the `Message` object of saas-contracts.md §4.2 — `message_id`
//! increasing per chat, `from` = the bot as `getMe` describes it, the `chat` object,
//! `date` from the sandbox clock, `text` and `entities`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::telegram_helpers as helpers;

use helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use switchboard_sandbox::telegram::{
    SAMPLE_CHANNEL_CHAT, SAMPLE_CHANNEL_USERNAME, SAMPLE_OTHER_USER_CHAT, SAMPLE_USER_CHAT,
    TelegramChat,
};

#[tokio::test]
async fn the_result_is_a_realistic_message() {
    let sb = frozen().await;
    let now = sb.clock().now().unix_timestamp();
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_USER_CHAT, "text": "Order #1001 received", "parse_mode": "HTML",
               "disable_notification": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"ok": true, "result": {
            "message_id": 1,
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "Switchboard Sandbox",
                     "username": "switchboard_sandbox_bot"},
            "chat": {"id": SAMPLE_USER_CHAT, "first_name": "Test", "username": "test_user",
                     "type": "private"},
            "date": now,
            "text": "Order #1001 received"}})
    );
    let (_, me) = call(&sb, "getMe", json!({})).await;
    for field in ["id", "is_bot", "first_name", "username"] {
        assert_eq!(
            body["result"]["from"][field], me["result"][field],
            "{field}"
        );
    }
}

#[tokio::test]
async fn message_ids_increase_per_chat_and_dates_follow_the_sandbox_clock() {
    let sb = frozen().await;
    let send = |chat: i64| call(&sb, "sendMessage", json!({"chat_id": chat, "text": "hi"}));
    let a1 = send(SAMPLE_USER_CHAT).await.1;
    sb.clock().advance(std::time::Duration::from_secs(3600));
    let a2 = send(SAMPLE_USER_CHAT).await.1;
    let b1 = send(SAMPLE_OTHER_USER_CHAT).await.1;
    assert_eq!(a1["result"]["message_id"], 1);
    assert_eq!(a2["result"]["message_id"], 2);
    assert_eq!(b1["result"]["message_id"], 1, "IDs are per chat");
    let (d1, d2) = (
        a1["result"]["date"].as_i64().unwrap(),
        a2["result"]["date"].as_i64().unwrap(),
    );
    assert_eq!(d2 - d1, 3600, "dates are virtual Unix seconds");

    // A user's message and the bot's reply share the chat's sequence.
    let injected = sb.inject_message(SAMPLE_USER_CHAT, "thanks").unwrap();
    assert_eq!(injected.message_id, 3);
    assert_eq!(send(SAMPLE_USER_CHAT).await.1["result"]["message_id"], 4);
}

#[tokio::test]
async fn parse_modes_produce_entities_on_the_plain_text() {
    let sb = sandbox().await;
    let (_, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_USER_CHAT, "parse_mode": "MarkdownV2",
               "text": "*Order* \\#1001 [track](https://t.example/1)"}),
    )
    .await;
    assert_eq!(body["result"]["text"], "Order #1001 track");
    assert_eq!(
        body["result"]["entities"],
        json!([{"offset": 0, "length": 5, "type": "bold"},
               {"offset": 12, "length": 5, "type": "text_link", "url": "https://t.example/1"}])
    );
}

#[tokio::test]
async fn channels_by_username_get_sender_chat_instead_of_from() {
    let sb = sandbox().await;
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": format!("@{SAMPLE_CHANNEL_USERNAME}"), "text": "news"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let m = &body["result"];
    assert_eq!(m["chat"]["id"], SAMPLE_CHANNEL_CHAT);
    assert_eq!(m["chat"]["type"], "channel");
    assert_eq!(m["sender_chat"]["id"], SAMPLE_CHANNEL_CHAT);
    assert!(m.get("from").is_none());
    // A user's @username is not a chat ID.
    let (status, _) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": "@test_user", "text": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn replies_need_an_existing_message_unless_allowed_without() {
    let sb = sandbox().await;
    let user = SAMPLE_USER_CHAT;
    let original = sb.inject_message(user, "where is my order?").unwrap();
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": user, "text": "on its way",
               "reply_parameters": {"message_id": original.message_id}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"]["reply_to_message"]["text"],
        "where is my order?"
    );
    assert_eq!(body["result"]["reply_to_message"]["from"]["id"], user);

    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": user, "text": "x", "reply_parameters": {"message_id": 999}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["description"],
        "Bad Request: message to be replied not found"
    );
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": user, "text": "x",
               "reply_parameters": "{\"message_id\": 999, \"allow_sending_without_reply\": true}"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["result"].get("reply_to_message").is_none());
}

#[tokio::test]
async fn sent_messages_are_recorded_and_counted_as_creates() {
    let sb = sandbox().await;
    sb.add_chat(TelegramChat::private(42, "Ada", None)).unwrap();
    for _ in 0..2 {
        let (status, _) = call(
            &sb,
            "sendMessage",
            json!({"chat_id": 42, "text": "Order shipped"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        sb.control().creates_for("42|Order shipped"),
        2,
        "a duplicate shows"
    );
    let sent = sb.messages_to(42);
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].message_id, sent[1].message_id), (1, 2));
    assert_eq!(sent[1].message["chat"]["first_name"], "Ada");

    let url = format!("{}/_sandbox/telegram/messages?chat_id=42", sb.base_url());
    let listed: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["text"], "Order shipped");
}
