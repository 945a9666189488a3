//! `getUpdates`, `setWebhook`, `deleteWebhook` and `getWebhookInfo`.
//!
//! Contract facts followed (saas-contracts.md §4.5; wording and order from the open-source
//! Bot API server, tdlib/telegram-bot-api `Client.cpp` and `WebhookActor.cpp`):
//! - While a webhook is set, `getUpdates` answers `409 Conflict: can't use getUpdates
//!   method while webhook is active; use deleteWebhook to delete the webhook first`
//!   (wording confirmed in several client issue threads).
//! - `getUpdates`: `offset`, `limit` 1–100 (default 100), `timeout` 0–50 s long polling on
//!   the sandbox clock, `allowed_updates`.
//! - `setWebhook`: an empty `url` removes the webhook. `max_connections` is clamped to
//!   1–100 (default 40), as the server clamps it. `secret_token` of 1–256 characters from
//!   `A-Z a-z 0-9 _ -`; otherwise `secret token is too long` / `secret token contains
//!   unallowed characters`. A URL that does not parse is `invalid webhook URL specified`.
//!   Setting a URL is allowed once per second (`429 retry after 1`). Success answers
//!   `true` with description `Webhook was set` (`Webhook is already set` when nothing
//!   changed); `deleteWebhook` answers `Webhook was deleted` / `Webhook is already
//!   deleted`. `drop_pending_updates` clears the queue.
//! - `getWebhookInfo`: `url` (empty without a webhook), `has_custom_certificate`,
//!   `pending_update_count`, and when set `max_connections`, `ip_address`,
//!   `last_error_date` + `last_error_message`, `allowed_updates` (if not the default).
//!
//! **Documented deviation**: real Telegram requires `https://` on ports 443, 80, 88 or 8443
//! (`bad webhook: An HTTPS URL must be provided for webhook`). The sandbox only ever
//! delivers to loopback, without TLS, so it accepts `http://` — and `https://` — to a
//! loopback host on any port, and still refuses every other host: plain `http://` to a
//! non-loopback host gets Telegram's own HTTPS error, anything else
//! `bad webhook: the sandbox delivers webhooks to loopback addresses only`.
//! Certificates (`certificate`, a file upload) are not emulated.

use std::time::Duration;

use serde_json::{Value, json};

use super::envelope::{ApiError, Success};
use super::params::Params;
use super::state::{Shared, Webhook};

const WEBHOOK_CONFLICT: &str = "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// Longest long poll the server allows, seconds.
const MAX_POLL_TIMEOUT: i64 = 50;

/// `allowed_updates` as a list of names; `None` when absent. A value that is not a JSON
/// array of strings is refused (the stricter choice: the server would ignore it and the
/// bot would silently receive the default set).
fn allowed_updates(p: &Params) -> Result<Option<Vec<String>>, ApiError> {
    let invalid = || ApiError::bad_request("can't parse allowed_updates JSON array");
    match p.json("allowed_updates").map_err(|()| invalid())? {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

/// `getUpdates`.
pub(crate) async fn get_updates(shared: &Shared, p: &Params) -> Result<Success, ApiError> {
    let offset = p.int("offset").unwrap_or(0);
    let limit = usize::try_from(p.clamped("limit", 100, 1, 100)).unwrap_or(100);
    let timeout = p.clamped("timeout", 0, 0, MAX_POLL_TIMEOUT);
    let allowed = allowed_updates(p)?;
    {
        let mut inner = shared.lock();
        if inner.webhook.is_some() {
            return Err(ApiError::conflict(WEBHOOK_CONFLICT));
        }
        if let Some(allowed) = allowed {
            inner.allowed_updates = Some(allowed);
        }
    }
    let deadline = shared.clock.now() + Duration::from_secs(timeout.unsigned_abs());
    loop {
        // Registered before looking, so an update queued in between still wakes us.
        let arrived = shared.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let batch: Vec<Value> = {
            let mut inner = shared.lock();
            inner.updates.expire(shared.now(), shared.retention);
            let polled = inner.updates.poll(offset, limit);
            polled
                .iter()
                .map(|u| shared.outbound(&inner, u.id, &u.body))
                .collect()
        };
        if !batch.is_empty() || shared.clock.now() >= deadline {
            return Ok(Success::new(Value::Array(batch)));
        }
        tokio::select! {
            () = &mut arrived => {}
            () = shared.clock.sleep_until(deadline) => {}
        }
    }
}

fn check_secret(secret: &str) -> Result<(), ApiError> {
    if secret.chars().count() > 256 {
        return Err(ApiError::bad_request("secret token is too long"));
    }
    if !secret
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::bad_request(
            "secret token contains unallowed characters",
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| ApiError::bad_request("invalid webhook URL specified"))?;
    let scheme = parsed.scheme();
    if scheme != "https" && scheme != "http" || parsed.host_str().is_none() {
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    }
    if !crate::net::is_loopback_url(url) {
        return Err(ApiError::bad_request(if scheme == "http" {
            "bad webhook: An HTTPS URL must be provided for webhook"
        } else {
            "bad webhook: the sandbox delivers webhooks to loopback addresses only"
        }));
    }
    Ok(())
}

/// `setWebhook`.
pub(crate) fn set_webhook(shared: &Shared, p: &Params) -> Result<Success, ApiError> {
    let url = p.text("url").unwrap_or_default();
    if url.is_empty() {
        return Ok(delete_webhook(shared, p));
    }
    let now = shared.now();
    {
        let mut inner = shared.lock();
        if now < inner.next_set_webhook_at {
            inner.limiter.block(now, 1);
            return Err(ApiError::too_many(1));
        }
        inner.next_set_webhook_at = now + 1.0;
    }
    let secret_token = p.text("secret_token").filter(|s| !s.is_empty());
    if let Some(secret) = &secret_token {
        check_secret(secret)?;
    }
    check_url(&url)?;
    let max_connections = p.clamped("max_connections", 40, 1, 100);
    let ip_address = p.text("ip_address").filter(|s| !s.is_empty());
    let allowed = allowed_updates(p)?;
    let drop_pending = p.flag("drop_pending_updates");

    let mut inner = shared.lock();
    if let Some(allowed) = allowed {
        inner.allowed_updates = Some(allowed);
    }
    let unchanged = inner.webhook.as_ref().is_some_and(|w| {
        w.url == url
            && w.secret_token == secret_token
            && w.max_connections == max_connections
            && w.ip_address == ip_address
    });
    if unchanged && !drop_pending {
        return Ok(Success::described(json!(true), "Webhook is already set"));
    }
    if drop_pending {
        inner.updates.clear();
    }
    inner.webhook = Some(Webhook {
        url,
        secret_token,
        max_connections,
        ip_address,
        last_error: None,
    });
    shared.wake.notify_one();
    Ok(Success::described(json!(true), "Webhook was set"))
}

/// `deleteWebhook` (and `setWebhook` with an empty URL).
pub(crate) fn delete_webhook(shared: &Shared, p: &Params) -> Success {
    let mut inner = shared.lock();
    if p.flag("drop_pending_updates") {
        inner.updates.clear();
    }
    if inner.webhook.take().is_some() {
        Success::described(json!(true), "Webhook was deleted")
    } else {
        Success::described(json!(true), "Webhook is already deleted")
    }
}

/// `getWebhookInfo`.
pub(crate) fn get_webhook_info(shared: &Shared) -> Success {
    let now = shared.now();
    let mut inner = shared.lock();
    inner.updates.expire(now, shared.retention);
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": inner.updates.pending.len(),
    });
    if let Some(w) = &inner.webhook {
        info["url"] = json!(w.url);
        if let Some(ip) = &w.ip_address {
            info["ip_address"] = json!(ip);
        }
        if let Some((date, message)) = &w.last_error {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
        info["max_connections"] = json!(w.max_connections);
        if let Some(allowed) = inner.allowed_updates.as_ref().filter(|a| !a.is_empty()) {
            info["allowed_updates"] = json!(allowed);
        }
    }
    Success::new(info)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_tokens_follow_the_documented_alphabet_and_length() {
        assert!(check_secret("Abc_09-xyz").is_ok());
        assert!(check_secret(&"a".repeat(256)).is_ok());
        assert_eq!(
            check_secret(&"a".repeat(257)).unwrap_err().description,
            "Bad Request: secret token is too long"
        );
        assert_eq!(
            check_secret("123:abc").unwrap_err().description,
            "Bad Request: secret token contains unallowed characters"
        );
    }

    #[test]
    fn webhook_urls_must_be_loopback() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("https://localhost:8443/hook").is_ok());
        assert_eq!(
            check_url("http://example.com/hook")
                .unwrap_err()
                .description,
            "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        );
        assert!(check_url("https://example.com/hook").is_err());
        assert_eq!(
            check_url("not a url").unwrap_err().description,
            "Bad Request: invalid webhook URL specified"
        );
        assert!(check_url("ftp://127.0.0.1/x").is_err());
    }
}
