//! The Telegram Bot API envelope and error shapes, exactly as saas-contracts.md §4.1 and
//! §4.3 state them: `{"ok":true,"result":…}`, and `{"ok":false,"error_code":N,
//! "description":"…"}` with the HTTP status equal to `error_code`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::telegram_helpers as helpers;

use helpers::*;
use reqwest::{Client, StatusCode};
use serde_json::json;
use switchboard_sandbox::FaultRule;
use switchboard_sandbox::telegram::{
    SAMPLE_GROUP_CHAT, SAMPLE_SUPERGROUP_CHAT, SAMPLE_USER_CHAT, TelegramConfig, TelegramError,
    TelegramSandbox,
};

#[tokio::test]
async fn get_me_answers_the_success_envelope_with_the_bot_user() {
    let sb = sandbox().await;
    let (status, body) = get(&sb.method_url("getMe")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"ok": true, "result": {
            "id": BOT_ID, "is_bot": true, "first_name": "Switchboard Sandbox",
            "username": "switchboard_sandbox_bot", "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false}})
    );
}

#[tokio::test]
async fn a_wrong_token_is_401_unauthorized() {
    let sb = sandbox().await;
    let url = format!("{}/bot123456:wrong-secret/getMe", sb.base_url());
    let (status, body) = get(&url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
}

#[tokio::test]
async fn unknown_methods_and_malformed_paths_are_404_not_found() {
    let sb = sandbox().await;
    let not_found = json!({"ok": false, "error_code": 404, "description": "Not Found"});
    for url in [
        sb.method_url("sendMesage"),
        sb.method_url("getChatMenuButtonX"),
        format!("{}/botnull/getMe", sb.base_url()),
        format!("{}/{TOKEN}/getMe", sb.base_url()),
        format!("{}/bot{TOKEN}", sb.base_url()),
    ] {
        let (status, body) = get(&url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(body, not_found, "{url}");
    }
}

#[tokio::test]
async fn method_names_are_case_insensitive() {
    let sb = sandbox().await;
    for name in ["getme", "GETME", "GetMe"] {
        let (status, body) = get(&sb.method_url(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body["result"]["id"], BOT_ID);
    }
}

#[tokio::test]
async fn parameters_come_from_the_query_string_a_form_or_json() {
    let sb = sandbox().await;
    let client = Client::new();
    let by_query = client
        .get(sb.method_url("sendMessage"))
        .query(&[
            ("chat_id", SAMPLE_USER_CHAT.to_string()),
            ("text", "q".into()),
        ])
        .send()
        .await
        .unwrap();
    let by_form = client
        .post(sb.method_url("sendMessage"))
        .form(&[
            ("chat_id", SAMPLE_USER_CHAT.to_string()),
            ("text", "f é".into()),
        ])
        .send()
        .await
        .unwrap();
    let by_json = client
        .post(sb.method_url("sendMessage"))
        .json(&json!({"chat_id": SAMPLE_USER_CHAT, "text": "j"}))
        .send()
        .await
        .unwrap();
    let mut texts = Vec::new();
    for response in [by_query, by_form, by_json] {
        let (status, body) = parsed(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        texts.push(body["result"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(texts, ["q", "f é", "j"]);
}

async fn bad_request(sb: &TelegramSandbox, params: serde_json::Value, description: &str) {
    let (status, body) = call(sb, "sendMessage", params.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{params}");
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 400, "description": description}),
        "{params}"
    );
}

#[tokio::test]
async fn bad_parameters_are_400_bad_request_with_the_reason() {
    let sb = sandbox().await;
    let user = SAMPLE_USER_CHAT;
    bad_request(
        &sb,
        json!({"chat_id": 999, "text": "x"}),
        "Bad Request: chat not found",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": "@nobody", "text": "x"}),
        "Bad Request: chat not found",
    )
    .await;
    bad_request(&sb, json!({"text": "x"}), "Bad Request: chat_id is empty").await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": ""}),
        "Bad Request: message text is empty",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user}),
        "Bad Request: message text is empty",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": " \n "}),
        "Bad Request: message text is empty",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": "<b></b>", "parse_mode": "HTML"}),
        "Bad Request: message text is empty",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": "x", "parse_mode": "Markdown3"}),
        "Bad Request: unsupported parse_mode",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": "Order #1001 received.", "parse_mode": "MarkdownV2"}),
        "Bad Request: can't parse entities: Character '#' is reserved and must be escaped with the preceding '\\'",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": "<b>x", "parse_mode": "HTML"}),
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
    )
    .await;
    bad_request(
        &sb,
        json!({"chat_id": user, "text": "a".repeat(4097)}),
        "Bad Request: message is too long",
    )
    .await;
    // 4096 counts after entity parsing: markup does not count.
    let (status, _) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": user, "text": format!("<b>{}</b>", "a".repeat(4096)), "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_gives_403_forbidden() {
    let sb = sandbox().await;
    sb.set_blocked(SAMPLE_USER_CHAT, true).unwrap();
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_USER_CHAT, "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    sb.set_blocked(SAMPLE_USER_CHAT, false).unwrap();
    let (status, _) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_USER_CHAT, "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The same switch over HTTP, on a group: the bot was removed.
    let url = format!(
        "{}/_sandbox/telegram/chats/{SAMPLE_GROUP_CHAT}/blocked",
        sb.base_url()
    );
    let r = Client::new()
        .post(url)
        .json(&json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_GROUP_CHAT, "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["description"],
        "Forbidden: bot was kicked from the group chat"
    );
}

#[tokio::test]
async fn a_migrated_group_answers_400_with_migrate_to_chat_id() {
    let sb = sandbox().await;
    sb.migrate_group(SAMPLE_GROUP_CHAT, SAMPLE_SUPERGROUP_CHAT)
        .unwrap();
    let (status, body) = call(
        &sb,
        "sendMessage",
        json!({"chat_id": SAMPLE_GROUP_CHAT, "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 400,
               "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": SAMPLE_SUPERGROUP_CHAT}})
    );
}

#[tokio::test]
async fn injected_faults_keep_the_telegram_error_envelope_and_are_logged() {
    let sb = sandbox().await;
    sb.control().add_fault(FaultRule::fail_next(
        "POST /bot***/getMe",
        1,
        StatusCode::BAD_GATEWAY,
    ));
    let (status, body) = call(&sb, "getMe", json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
    );
    let (status, _) = call(&sb, "getMe", json!({})).await;
    assert_eq!(status, StatusCode::OK, "the fault applied once");
    let log = sb.control().requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].path.as_str(), log[0].status),
        ("/bot***/getMe", 502)
    );
    assert_eq!(
        (log[1].path.as_str(), log[1].status),
        ("/bot***/getMe", 200)
    );
}

#[tokio::test]
async fn the_request_log_never_shows_the_token_or_the_secret_token() {
    let sb = sandbox().await;
    let url = format!(
        "{}?url=http://127.0.0.1:9/x&secret_token=s3cret-Value",
        sb.method_url("setWebhook")
    );
    let (status, _) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    let logged = &sb.control().requests()[0].path;
    assert_eq!(
        logged,
        "/bot***/setWebhook?url=http://127.0.0.1:9/x&secret_token=***"
    );
    assert!(!logged.contains("ABC-DEF") && !logged.contains("s3cret"));
}

#[tokio::test]
async fn start_refuses_non_loopback_addresses_and_malformed_tokens() {
    let err = TelegramSandbox::start(TelegramConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..TelegramConfig::new(TOKEN)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, TelegramError::NotLoopback(_)));
    let err = TelegramSandbox::start(TelegramConfig::new("not-a-token"))
        .await
        .unwrap_err();
    assert!(matches!(err, TelegramError::InvalidConfig(_)));
    let config = TelegramConfig::new(TOKEN);
    assert!(
        !format!("{config:?}").contains("ABC-DEF"),
        "the token is never printed"
    );
}
