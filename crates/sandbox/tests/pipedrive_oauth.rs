//! Pipedrive OAuth 2.0 over real HTTP (saas-contracts.md §2.6): the token endpoint with
//! HTTP Basic client auth and form bodies, the authorization-code and refresh grants,
//! bearer calls with their own burst window (§2.7), expiry, rotation and revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use switchboard_sandbox::Clock;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// Base64 of `sandbox-client-id:sandbox-client-secret` (the config defaults), computed
/// once with python3 `base64.b64encode(b"sandbox-client-id:sandbox-client-secret")`.
const CLIENT_BASIC: &str = "Basic c2FuZGJveC1jbGllbnQtaWQ6c2FuZGJveC1jbGllbnQtc2VjcmV0";

fn live_401() -> Value {
    json!({"success":false,"error":"unauthorized access","errorCode":401,"error_info":"Please check developers.pipedrive.com"})
}

async fn token_request(sb: &PipedriveSandbox, form: &[(&str, &str)]) -> reqwest::Response {
    Client::new()
        .post(url(sb, "/oauth/token"))
        .header("authorization", CLIENT_BASIC)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn exchange_code(sb: &PipedriveSandbox) -> Value {
    let code = sb.authorization_code(REDIRECT);
    let response = token_request(
        sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    body(response).await
}

async fn refresh(sb: &PipedriveSandbox, refresh_token: &str) -> reqwest::Response {
    token_request(
        sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn bearer_get(sb: &PipedriveSandbox, access: &str) -> reqwest::Response {
    Client::new()
        .get(url(sb, "/api/v2/persons"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn code_exchange_answers_the_documented_token_and_bearer_calls_work() {
    let sb = sandbox().await;
    let code = sb.authorization_code(REDIRECT);
    let response = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let token = body(response).await;
    let keys: BTreeSet<&str> = token
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "api_domain",
            "expires_in",
            "refresh_token",
            "scope",
            "token_type"
        ]
        .into()
    );
    assert_eq!(token["token_type"], json!("Bearer"));
    assert_eq!(token["expires_in"], json!(3600));
    assert_eq!(
        token["api_domain"],
        json!(sb.base_url()),
        "calls go to api_domain"
    );
    assert!(token["scope"].is_string());

    let api = bearer_get(&sb, token["access_token"].as_str().unwrap()).await;
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(
        header(&api, "x-ratelimit-limit").as_deref(),
        Some("160"),
        "OAuth has its own, higher burst window (Growth)"
    );
    let reused = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body(reused).await["error"],
        json!("invalid_grant"),
        "codes are single-use"
    );
}

#[tokio::test]
async fn refresh_works_rotates_and_a_revoked_refresh_token_is_refused() {
    let sb = sandbox().await;
    let first = exchange_code(&sb).await;
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let response = refresh(&sb, old_refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = body(response).await;
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    assert_eq!(
        bearer_get(&sb, second["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );

    let stale = refresh(&sb, old_refresh).await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(stale).await["error"], json!("invalid_grant"));

    let new_refresh = second["refresh_token"].as_str().unwrap();
    let revoke = Client::new()
        .post(url(&sb, "/_sandbox/pipedrive/oauth/revoke"))
        .json(&json!({"refresh_token": new_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let revoked = refresh(&sb, new_refresh).await;
    assert_eq!(revoked.status(), StatusCode::BAD_REQUEST);
    let error = body(revoked).await;
    assert_eq!(error["error"], json!("invalid_grant"));
    assert!(error["error_description"].is_string());
}

#[tokio::test]
async fn an_expired_access_token_is_a_401_until_refreshed() {
    let clock = Clock::scaled(1e-9);
    let sb = start(PipedriveConfig {
        clock: clock.clone(),
        ..PipedriveConfig::new(TOKEN)
    })
    .await;
    let token = exchange_code(&sb).await;
    let access = token["access_token"].as_str().unwrap();
    clock.advance(Duration::from_secs(3599));
    assert_eq!(bearer_get(&sb, access).await.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    let expired = bearer_get(&sb, access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(expired).await, live_401());

    let renewed = body(refresh(&sb, token["refresh_token"].as_str().unwrap()).await).await;
    let fresh = renewed["access_token"].as_str().unwrap();
    assert_eq!(bearer_get(&sb, fresh).await.status(), StatusCode::OK);

    // The switch expires every token at once, over HTTP.
    let expire = Client::new()
        .post(url(&sb, "/_sandbox/pipedrive/oauth/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expire.status(), StatusCode::NO_CONTENT);
    let expired = bearer_get(&sb, fresh).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(expired).await, live_401());

    // A refresh token unused for 60 days is dead.
    clock.advance(Duration::from_secs(60 * 24 * 3600));
    let idle = refresh(&sb, renewed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(idle.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_token_endpoint_demands_basic_client_auth_and_a_form() {
    let sb = sandbox().await;
    let client = Client::new();
    let form = |code: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), REDIRECT.to_owned()),
        ]
    };
    let code = sb.authorization_code(REDIRECT);
    let cases = [
        (client.post(url(&sb, "/oauth/token")).form(&form(&code)), StatusCode::UNAUTHORIZED, "invalid_client"),
        (
            client.post(url(&sb, "/oauth/token")).basic_auth("sandbox-client-id", Some("wrong")).form(&form(&code)),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            client.post(url(&sb, "/oauth/token")).form(&[
                ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT),
                ("client_id", "sandbox-client-id"), ("client_secret", "sandbox-client-secret"),
            ]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            client.post(url(&sb, "/oauth/token")).header("authorization", CLIENT_BASIC)
                .json(&json!({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            client.post(url(&sb, "/oauth/token")).header("authorization", CLIENT_BASIC)
                .form(&[("grant_type", "password")]),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
    ];
    for (request, status, error) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{error}");
        assert_eq!(body(response).await["error"], json!(error));
    }
    let wrong_redirect = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
        ],
    )
    .await;
    assert_eq!(wrong_redirect.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(wrong_redirect).await["error"], json!("invalid_grant"));
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state() {
    let sb = sandbox().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = reqwest::Url::parse_with_params(
        &url(&sb, "/oauth/authorize"),
        &[
            ("client_id", "sandbox-client-id"),
            ("redirect_uri", REDIRECT),
            ("state", "xyz 1"),
        ],
    )
    .unwrap();
    let response = client.get(authorize).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(&header(&response, "location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz 1");
    let exchanged = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(exchanged.status(), StatusCode::OK);

    let code_over_http = client
        .post(url(&sb, "/_sandbox/pipedrive/authorize"))
        .json(&json!({"redirect_uri": REDIRECT}))
        .send()
        .await
        .unwrap();
    let code = body(code_over_http).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchanged = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(exchanged.status(), StatusCode::OK);
    let unknown_client = client
        .get(
            reqwest::Url::parse_with_params(
                &url(&sb, "/oauth/authorize"),
                &[("client_id", "someone-else"), ("redirect_uri", REDIRECT)],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_client.status(), StatusCode::BAD_REQUEST);
}
