//! Exact emulator OAuth2 contract (saas-contracts.md §3.1): consent redirect, code
//! exchange, 10-minute access tokens, refresh-token rotation, the 570 s too-early rule, and
//! the expiry/revocation switches. The clock is frozen and advanced by the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::exact_helpers as helpers;

use std::time::Duration;

use helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn consent_redirects_back_with_a_code_that_exchanges_for_a_token_pair() {
    let sb = start(config()).await;
    let response = client()
        .get(format!("{}/api/oauth2/auth", sb.base_url()))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("state", "xyz 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = reqwest::Url::parse(&header(&response, "location").unwrap()).unwrap();
    assert!(
        location.as_str().starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(query[1], ("state".to_owned(), "xyz 1".to_owned()));
    let code = &query[0].1;
    assert!(
        code.contains('!'),
        "real codes contain '!', which clients must form-encode"
    );

    let answer = exchange_code(&sb, code).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], json!("600"), "expires_in is a string");
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert!(body["refresh_token"].as_str().unwrap().len() > 20);

    // Single use.
    let again = exchange_code(&sb, code).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn consent_and_token_requests_are_checked() {
    let sb = start(config()).await;
    let bad_redirect = client()
        .get(format!("{}/api/oauth2/auth", sb.base_url()))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_redirect.status(), 400);
    assert_eq!(
        header(&bad_redirect, "location"),
        None,
        "never redirect to an unregistered URI"
    );

    let code = sb.issue_authorization_code();
    let wrong_secret = token_call(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(wrong_secret.status(), 400);
    assert_eq!(
        wrong_secret.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client"})
    );

    let as_json = client()
        .post(format!("{}/api/oauth2/token", sb.base_url()))
        .json(
            &json!({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID, "client_secret": SECRET}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        as_json.status(),
        400,
        "the token endpoint is form-encoded only"
    );
    assert_eq!(
        as_json.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Codes live 3 minutes.
    sb.clock().advance(Duration::from_secs(180));
    let late = exchange_code(&sb, &code).await;
    assert_eq!(late.status(), 400);
    assert_eq!(
        late.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn access_tokens_live_ten_minutes_and_expiry_says_so() {
    let sb = start(config()).await;
    let tokens = pair(exchange_code(&sb, &sb.issue_authorization_code()).await).await;
    let me = |token: String| {
        let url = format!(
            "{}/api/v1/current/Me?$select=CurrentDivision",
            sb.base_url()
        );
        async move {
            client()
                .get(url)
                .bearer_auth(token)
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap()
        }
    };
    sb.clock().advance(Duration::from_millis(599_900));
    assert_eq!(me(tokens.access_token.clone()).await.status(), 200);
    sb.clock().advance(Duration::from_millis(100));
    let expired = me(tokens.access_token.clone()).await;
    assert_eq!(expired.status(), 401);
    let challenge = header(&expired, "www-authenticate").unwrap();
    assert!(challenge.contains("access token expired"), "{challenge}");
    assert_eq!(
        header(&expired, "x-ratelimit-minutely-remaining"),
        None,
        "401s are not counted"
    );

    let unknown = me("not-a-token".to_owned()).await;
    assert_eq!(unknown.status(), 401);
    assert!(
        !header(&unknown, "www-authenticate")
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_refused() {
    let sb = start(config()).await;
    let first = pair(exchange_code(&sb, &sb.issue_authorization_code()).await).await;
    sb.clock().advance(Duration::from_secs(570));
    let second = pair(refresh(&sb, &first.refresh_token).await).await;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);

    // The old refresh token died the moment the new one was issued (picqer #644).
    let reused = refresh(&sb, &first.refresh_token).await;
    assert_eq!(reused.status(), 401);
    assert_eq!(
        reused.json::<Value>().await.unwrap(),
        json!({"error": "unauthorized_client", "error_description": "Old refresh token used."})
    );
    // Strict: so did the old access token.
    let api = Api {
        client: client(),
        base: sb.base_url(),
        token: first.access_token.clone(),
    };
    assert_eq!(api.get("current/Me").await.status(), 401);
    let api = Api {
        token: second.access_token.clone(),
        ..api
    };
    assert_eq!(api.get("current/Me").await.status(), 200);

    // Even much later the old one stays dead, and the new one rotates in turn.
    sb.clock().advance(Duration::from_secs(3600));
    assert_eq!(refresh(&sb, &first.refresh_token).await.status(), 401);
    let third = pair(refresh(&sb, &second.refresh_token).await).await;
    assert_eq!(refresh(&sb, &second.refresh_token).await.status(), 401);
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn refreshing_before_570_seconds_is_refused_without_rotating() {
    let sb = start(config()).await;
    let first = pair(exchange_code(&sb, &sb.issue_authorization_code()).await).await;
    sb.clock().advance(Duration::from_millis(569_900));
    let early = refresh(&sb, &first.refresh_token).await;
    assert_eq!(early.status(), 400);
    assert_eq!(
        header(&early, "reason").as_deref(),
        Some("TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired")
    );
    assert_eq!(
        early.json::<Value>().await.unwrap(),
        json!({"error": "access_denied", "error_description": "Rate limit exceeded: access_token not expired"})
    );
    // The refused call did not use the refresh token up.
    sb.clock().advance(Duration::from_millis(100));
    let second = pair(refresh(&sb, &first.refresh_token).await).await;
    // And the rule counts from the newest access token.
    sb.clock().advance(Duration::from_secs(300));
    assert_eq!(refresh(&sb, &second.refresh_token).await.status(), 400);
}

#[tokio::test]
async fn switches_expire_tokens_and_revoke_refresh_tokens_over_http() {
    let sb = start(config()).await;
    let tokens = pair(exchange_code(&sb, &sb.issue_authorization_code()).await).await;
    let api = Api {
        client: client(),
        base: sb.base_url(),
        token: tokens.access_token.clone(),
    };
    assert_eq!(api.get("current/Me").await.status(), 200);
    let sw = |path: &str| client().post(format!("{}/_sandbox/exact/{path}", sb.base_url()));
    assert_eq!(sw("expire-tokens").send().await.unwrap().status(), 204);
    let expired = api.get("current/Me").await;
    assert_eq!(expired.status(), 401);
    assert!(
        header(&expired, "www-authenticate")
            .unwrap()
            .contains("access token expired")
    );
    // An expired token may be refreshed at once (its ten minutes are over).
    let fresh = pair(refresh(&sb, &tokens.refresh_token).await).await;

    let revoked = sw("revoke")
        .json(&json!({"refresh_token": fresh.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        revoked.json::<Value>().await.unwrap(),
        json!({"revoked": 1})
    );
    sb.expire_access_tokens();
    let refused = refresh(&sb, &fresh.refresh_token).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let code: Value = sw("authorize").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        exchange_code(&sb, code["code"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_unused_refresh_token_expires_after_30_days() {
    let sb = start(config()).await;
    let tokens = pair(exchange_code(&sb, &sb.issue_authorization_code()).await).await;
    sb.clock().advance(Duration::from_secs(30 * 86_400));
    let response = refresh(&sb, &tokens.refresh_token).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let text = body["error_description"].as_str().unwrap();
    assert!(
        text.starts_with("The refresh token expired at ") && text.contains(" and it is now "),
        "{text}"
    );
}
