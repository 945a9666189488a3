//! Routing of `GET|POST /bot<token>/<method>` (saas-contracts.md §4.1).
//!
//! Order of checks, each with the answer api.telegram.org gives in client fixtures:
//! 1. A path that is not `/bot<token>/<method>`, or an HTTP method other than GET/POST:
//!    `404 {"ok":false,"error_code":404,"description":"Not Found"}`.
//! 2. The token. A well-formed token (`<bot id>:<secret>`) that is not the bot's:
//!    `401 Unauthorized`. A malformed one (`bot<TOKEN>`, `botnull`) is `404 Not Found`,
//!    as observed for api.telegram.org (python-telegram-bot PR #461, pyTelegramBotAPI
//!    #817/#1461, bot4s/telegram #125).
//! 3. The method name, case-insensitive. An unknown method is `404 Not Found` — the
//!    description api.telegram.org answers with (bot4s/telegram #60 and others); the
//!    open-source server says `Not Found: method not found`, so a client must branch on
//!    `error_code`, never on the text.
//! 4. A running flood-control block (see `rate_limit.rs`): 429 with what is left of
//!    `retry_after`, for every method.
//! 5. Parameters (`params.rs`), then the method.
//!
//! The token is a secret that Telegram puts in the URL path. Before the request log and
//! fault rules see a call, [`redact`] rewrites its path to `/bot***/<method>` (and any
//! `secret_token=` query value to `***`), so `/_sandbox/requests` never shows either; a
//! `FaultRule` endpoint therefore reads e.g. `POST /bot***/sendMessage`.
//!
//! Emulated methods: `getMe`, `sendMessage`, `getUpdates`, `setWebhook`, `deleteWebhook`,
//! `getWebhookInfo`. Other real methods answer `404 Not Found` like unknown ones.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};

use super::envelope::{ApiError, Success};
use super::messages::{get_me, send_message};
use super::params::Params;
use super::state::Shared;
use super::webhook_api::{delete_webhook, get_updates, get_webhook_info, set_webhook};

/// The Bot API router: every path is resolved by hand, so `/_sandbox/` routes merged
/// next to it never collide with `/{token}/{method}`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(call).with_state(shared)
}

/// The request URI before [`redact`] rewrote it.
#[derive(Debug, Clone)]
pub(crate) struct RealUri(Uri);

/// Hides the token (and a `secret_token` query value) from everything after it.
pub(crate) async fn redact(mut req: Request) -> Request {
    let uri = req.uri().clone();
    let Some((_, method)) = split_path(uri.path()) else {
        return req;
    };
    let mut shown = format!("/bot***/{method}");
    if let Some(query) = uri.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("secret_token", _)) => "secret_token=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{shown}?{}", pairs.join("&"));
    }
    if let Ok(redacted) = Uri::builder().path_and_query(shown).build() {
        *req.uri_mut() = redacted;
        req.extensions_mut().insert(RealUri(uri));
    }
    req
}

async fn call(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    real: Option<Extension<RealUri>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let uri = real.map_or(uri, |Extension(RealUri(real))| real);
    match dispatch(&shared, &method, &uri, &headers, &body).await {
        Ok(success) => success.into_response(),
        Err(error) => error.into_response(),
    }
}

/// Splits `/bot<token>/<method>`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    (!token.is_empty() && !method.is_empty() && !method.contains('/')).then_some((token, method))
}

/// `<digits>:<letters, digits, _ or ->`, the shape of every BotFather token.
pub(crate) fn well_formed_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

const METHODS: [&str; 6] = [
    "getme",
    "sendmessage",
    "getupdates",
    "setwebhook",
    "deletewebhook",
    "getwebhookinfo",
];

async fn dispatch(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Success, ApiError> {
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::not_found());
    }
    let (token, name) = split_path(uri.path()).ok_or_else(ApiError::not_found)?;
    if token != shared.token {
        return Err(if well_formed_token(token) {
            ApiError::unauthorized()
        } else {
            ApiError::not_found()
        });
    }
    let name = name.to_ascii_lowercase();
    if !METHODS.contains(&name.as_str()) {
        return Err(ApiError::not_found());
    }
    if let Some(left) = shared.lock().limiter.blocked_for(shared.now()) {
        return Err(ApiError::too_many(left));
    }
    let params = Params::from_request(uri, headers, body)?;
    match name.as_str() {
        "getme" => Ok(get_me(shared)),
        "sendmessage" => send_message(shared, &params),
        "getupdates" => get_updates(shared, &params).await,
        "setwebhook" => set_webhook(shared, &params),
        "deletewebhook" => Ok(delete_webhook(shared, &params)),
        "getwebhookinfo" => Ok(get_webhook_info(shared)),
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tokens() {
        assert_eq!(
            split_path("/bot123:abc/sendMessage"),
            Some(("123:abc", "sendMessage"))
        );
        assert_eq!(split_path("/123:abc/sendMessage"), None);
        assert_eq!(split_path("/bot123:abc/"), None);
        assert_eq!(split_path("/bot123:abc/a/b"), None);
        assert!(well_formed_token(
            "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
        ));
        assert!(!well_formed_token("null"));
        assert!(!well_formed_token("TOKEN:{TOKEN}"));
    }
}
