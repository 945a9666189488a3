//! Webhooks and updates (saas-contracts.md §4.5, §4.6): `setWebhook` / `getWebhookInfo` /
//! `deleteWebhook`, the `getUpdates` conflict, `getUpdates` itself, and `allowed_updates`.
//! Deliveries, retries and switches are in `telegram_deliveries.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::telegram_helpers as helpers;

use std::time::Duration;

use helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use switchboard_sandbox::telegram::{SAMPLE_CHANNEL_CHAT, SAMPLE_USER_CHAT};

#[tokio::test]
async fn set_webhook_info_conflict_and_delete() {
    let sb = frozen().await;
    let (status, body) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"ok": true, "result": {"url": "", "has_custom_certificate": false,
                                      "pending_update_count": 0}})
    );

    let url = "http://127.0.0.1:9/telegram/hook";
    let (status, body) = call(
        &sb,
        "setWebhook",
        json!({"url": url, "secret_token": "s3cret_T-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"ok": true, "result": true, "description": "Webhook was set"})
    );

    let (_, body) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(
        body["result"],
        json!({"url": url, "has_custom_certificate": false, "pending_update_count": 0,
               "max_connections": 40})
    );

    let (status, body) = call(&sb, "getUpdates", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 409, "description":
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"})
    );

    let (_, body) = call(&sb, "deleteWebhook", json!({})).await;
    assert_eq!(
        body,
        json!({"ok": true, "result": true, "description": "Webhook was deleted"})
    );
    let (_, body) = call(&sb, "deleteWebhook", json!({})).await;
    assert_eq!(body["description"], "Webhook is already deleted");
    let (status, body) = call(&sb, "getUpdates", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ok": true, "result": []}))
    );
}

#[tokio::test]
async fn set_webhook_validates_url_secret_and_frequency() {
    let sb = frozen().await;
    let cases = [
        (
            json!({"url": "http://example.com/hook"}),
            "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
        ),
        (
            json!({"url": "https://example.com/hook"}),
            "Bad Request: bad webhook: the sandbox delivers webhooks to loopback addresses only",
        ),
        (
            json!({"url": "hook"}),
            "Bad Request: invalid webhook URL specified",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "secret_token": "123:abc"}),
            "Bad Request: secret token contains unallowed characters",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "secret_token": "a".repeat(257)}),
            "Bad Request: secret token is too long",
        ),
    ];
    for (params, description) in cases {
        // setWebhook with a URL is allowed once per second.
        sb.clock().advance(Duration::from_secs(1));
        let (status, body) = call(&sb, "setWebhook", params.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params}");
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 400, "description": description}),
            "{params}"
        );
    }
    assert_eq!(sb.webhook_url(), None);

    sb.clock().advance(Duration::from_secs(1));
    let hook = json!({"url": "http://127.0.0.1:9/x", "secret_token": "a".repeat(256), "max_connections": 1000});
    assert_eq!(
        call(&sb, "setWebhook", hook.clone()).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&sb, "setWebhook", hook.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["parameters"], json!({"retry_after": 1}));
    sb.clock().advance(Duration::from_secs(1));
    let (_, body) = call(&sb, "setWebhook", hook).await;
    assert_eq!(body["description"], "Webhook is already set");
    let (_, info) = call(&sb, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"]["max_connections"], 100,
        "clamped to 1-100 like the server"
    );
}

#[tokio::test]
async fn get_updates_returns_injected_messages_and_offsets_confirm_them() {
    let sb = sandbox().await;
    let first = sb.inject_message(SAMPLE_USER_CHAT, "/start").unwrap();
    let second = sb.inject_message(SAMPLE_CHANNEL_CHAT, "post").unwrap();
    assert_eq!(first.update_id, Some(10_000_001));
    assert_eq!(second.update_id, Some(10_000_002), "IDs increase by one");

    let (status, body) = call(&sb, "getUpdates", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let updates = body["result"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    let u = &updates[0];
    assert_eq!(u["update_id"], 10_000_001);
    assert_eq!(
        u.as_object().unwrap().len(),
        2,
        "update_id and one optional field"
    );
    assert_eq!(u["message"]["text"], "/start");
    assert_eq!(u["message"]["from"]["id"], SAMPLE_USER_CHAT);
    assert_eq!(u["message"]["from"]["is_bot"], false);
    assert_eq!(u["message"]["chat"]["type"], "private");
    assert_eq!(
        u["message"]["entities"],
        json!([{"offset": 0, "length": 6, "type": "bot_command"}])
    );
    assert_eq!(
        updates[1]["channel_post"]["sender_chat"]["id"],
        SAMPLE_CHANNEL_CHAT
    );

    let (_, body) = call(&sb, "getUpdates", json!({"offset": 10_000_002})).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    assert_eq!(sb.pending_update_count(), 1, "the first was confirmed");
    let (_, body) = call(&sb, "getUpdates", json!({"offset": 10_000_003})).await;
    assert_eq!(body["result"], json!([]));
    assert_eq!(sb.pending_update_count(), 0);
}

#[tokio::test]
async fn get_updates_long_polls_until_an_update_arrives() {
    let sb = sandbox().await;
    let url = format!("{}/_sandbox/telegram/incoming", sb.base_url());
    let poll = call(&sb, "getUpdates", json!({"timeout": 30}));
    let inject = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = reqwest::Client::new()
            .post(url)
            .json(&json!({"chat_id": SAMPLE_USER_CHAT, "text": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<serde_json::Value>().await.unwrap()
    };
    let ((status, body), injected) = tokio::join!(poll, inject);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"][0]["message"]["text"], "hello");
    assert_eq!(body["result"][0]["update_id"], injected["update_id"]);
}

#[tokio::test]
async fn allowed_updates_filters_what_is_queued() {
    let sb = sandbox().await;
    let (status, _) = call(
        &sb,
        "getUpdates",
        json!({"allowed_updates": ["edited_message"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let injected = sb.inject_message(SAMPLE_USER_CHAT, "hi").unwrap();
    assert_eq!(
        injected.update_id, None,
        "a message is not an edited_message"
    );
    let id = sb
        .inject_update(json!({"edited_message": {"message_id": 1, "date": 0, "text": "hi!",
                                                 "chat": {"id": SAMPLE_USER_CHAT, "type": "private"}}}))
        .unwrap();
    assert!(id.is_some());
    let (status, body) = call(&sb, "getUpdates", json!({"allowed_updates": "[\"x\""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // `[]` restores the default set.
    call(&sb, "getUpdates", json!({"allowed_updates": []})).await;
    assert!(
        sb.inject_message(SAMPLE_USER_CHAT, "again")
            .unwrap()
            .update_id
            .is_some()
    );
    assert!(
        sb.inject_update(json!({"chat_member": {}}))
            .unwrap()
            .is_none(),
        "opt-in type"
    );
}

#[tokio::test]
async fn undelivered_updates_are_kept_for_24_hours_and_can_be_dropped() {
    let sb = frozen().await;
    sb.inject_message(SAMPLE_USER_CHAT, "old").unwrap();
    sb.clock().advance(Duration::from_secs(23 * 3600));
    sb.inject_message(SAMPLE_USER_CHAT, "new").unwrap();
    sb.clock().advance(Duration::from_secs(3600));
    let (_, body) = call(&sb, "getUpdates", json!({})).await;
    let texts: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["new"], "the 24-hour-old update is gone");

    let (_, body) = call(&sb, "deleteWebhook", json!({"drop_pending_updates": true})).await;
    assert_eq!(body["result"], true);
    assert_eq!(sb.pending_update_count(), 0);
}
