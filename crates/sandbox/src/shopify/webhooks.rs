//! Sender of Shopify webhook deliveries, signed the way Shopify signs them.
//!
//! Contract facts followed (saas-contracts.md §1.1–§1.3):
//! - A delivery is an HTTP POST of the raw JSON body with `Content-Type: application/json`
//!   and the headers `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256`, `X-Shopify-Shop-Domain`,
//!   `X-Shopify-API-Version`, `X-Shopify-Webhook-Id` (the five the official SDK's validator
//!   requires) plus `X-Shopify-Event-Id` and `X-Shopify-Triggered-At` (§1.1).
//! - The signature is base64 (not hex) HMAC-SHA256 of the **raw body bytes** keyed with the
//!   app's client secret (§1.2). It is computed here from `hmac` + `sha2` directly, never
//!   through Switchboard's own verification code.
//! - A retried delivery carries the original payload; the same event keeps its event ID
//!   (§1.1); the webhook ID is the idempotency key.
//! - Shopify gives a receiver 1 s to connect and 5 s in total; a timeout is a failure
//!   (§1.3). The sender uses exactly those timeouts.
//!
//! Each call here is one single delivery attempt, driven by the caller (a test re-delivers
//! by sending the same [`Delivery`] again). Deliveries triggered by the Admin API emulator,
//! with Shopify's retry schedule, live in `outbox.rs` and `dispatch.rs` and use the same
//! `delivery_headers` and [`sign`].

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::model::{Customer, customer_payload};

/// Shopify's connect timeout for webhook deliveries (§1.3).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Shopify's total timeout for webhook deliveries (§1.3).
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Namespace for deriving an event ID from a webhook ID, so that re-sending the same
/// webhook ID through [`ShopifyWebhooks::send`] repeats the same event ID.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5b1f_0c3e_7a2d_4e61_9c8b_2f4d_6a1e_0b37);

/// Why a delivery could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The target is not a loopback URL.
    #[error("refusing to send webhooks to {0}: the sandbox only sends to loopback addresses")]
    NotLoopback(String),
    /// A header value (shop domain, topic, version, IDs, signature) is not valid HTTP.
    #[error("invalid value for header {0}")]
    InvalidHeader(&'static str),
    /// Connecting, sending or waiting for the answer failed (including the 1 s / 5 s
    /// timeouts).
    #[error("webhook delivery failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// One delivery: what a retry repeats byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic, e.g. `customers/update`.
    pub topic: String,
    /// The raw JSON body.
    pub body: Vec<u8>,
    /// `X-Shopify-Webhook-Id`: the idempotency key of this delivery.
    pub webhook_id: String,
    /// `X-Shopify-Event-Id`: the underlying event.
    pub event_id: String,
    /// `X-Shopify-Triggered-At`: when the event fired.
    pub triggered_at: OffsetDateTime,
}

/// Sends signed webhooks for one shop to one loopback URL.
#[derive(Clone)]
pub struct ShopifyWebhooks {
    client: reqwest::Client,
    target_url: String,
    secret: Vec<u8>,
    shop_domain: String,
    api_version: String,
}

impl std::fmt::Debug for ShopifyWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyWebhooks")
            .field("target_url", &self.target_url)
            .field("secret", &"***")
            .field("shop_domain", &self.shop_domain)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Base64 HMAC-SHA256 of `body` keyed by `secret`: the `X-Shopify-Hmac-Sha256` value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the
    // runtime path panic-free and would produce a signature no receiver accepts.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

impl ShopifyWebhooks {
    /// A sender for `shop_domain` (e.g. `acme.myshopify.com`) serialising with
    /// `api_version` (e.g. `2025-01`), posting to `target_url`, which must be loopback.
    pub fn new(
        target_url: impl Into<String>,
        secret: impl AsRef<[u8]>,
        shop_domain: impl Into<String>,
        api_version: impl Into<String>,
    ) -> Result<Self, WebhookError> {
        let target_url = target_url.into();
        if !crate::net::is_loopback_url(&target_url) {
            return Err(WebhookError::NotLoopback(target_url));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .build()?;
        Ok(Self {
            client,
            target_url,
            secret: secret.as_ref().to_vec(),
            shop_domain: shop_domain.into(),
            api_version: api_version.into(),
        })
    }

    /// The URL deliveries go to.
    pub fn target_url(&self) -> &str {
        &self.target_url
    }

    /// A `customers/*` payload (see [`customer_payload`]); here for discoverability.
    pub fn customer_payload(
        id: u64,
        email: &str,
        first_name: &str,
        last_name: &str,
        updated_at: OffsetDateTime,
    ) -> serde_json::Value {
        customer_payload(id, email, first_name, last_name, updated_at)
    }

    /// A new delivery of `body` for `topic`: fresh webhook and event IDs, fired now.
    pub fn delivery(&self, topic: &str, body: Vec<u8>) -> Delivery {
        Delivery {
            topic: topic.to_owned(),
            body,
            webhook_id: Uuid::new_v4().to_string(),
            event_id: Uuid::new_v4().to_string(),
            triggered_at: OffsetDateTime::now_utc(),
        }
    }

    /// A new delivery of a customer's payload.
    pub fn customer_delivery(&self, topic: &str, customer: &Customer) -> Delivery {
        self.delivery(topic, customer.to_body())
    }

    /// Posts `delivery`, correctly signed. Sending the same delivery again is a retry.
    pub async fn deliver(&self, delivery: &Delivery) -> Result<StatusCode, WebhookError> {
        let signature = sign(&self.secret, &delivery.body);
        self.deliver_with_signature(delivery, &signature).await
    }

    /// Posts `delivery` with the given `X-Shopify-Hmac-Sha256` value (e.g. a wrong one).
    pub async fn deliver_with_signature(
        &self,
        delivery: &Delivery,
        signature: &str,
    ) -> Result<StatusCode, WebhookError> {
        let headers = self.headers(delivery, signature)?;
        let response = self
            .client
            .post(&self.target_url)
            .headers(headers)
            .body(delivery.body.clone())
            .send()
            .await?;
        Ok(response.status())
    }

    /// Posts the raw `body` for `topic` with webhook ID `webhook_id`, correctly signed.
    /// The event ID is derived from the webhook ID, so re-sending the same webhook ID is a
    /// faithful re-delivery; the trigger time is now.
    pub async fn send(
        &self,
        topic: &str,
        body: &[u8],
        webhook_id: &str,
    ) -> Result<StatusCode, WebhookError> {
        let signature = sign(&self.secret, body);
        self.send_with_signature(topic, body, webhook_id, &signature)
            .await
    }

    /// Like [`send`](Self::send) but with the given signature header value.
    pub async fn send_with_signature(
        &self,
        topic: &str,
        body: &[u8],
        webhook_id: &str,
        signature: &str,
    ) -> Result<StatusCode, WebhookError> {
        let delivery = Delivery {
            topic: topic.to_owned(),
            body: body.to_vec(),
            webhook_id: webhook_id.to_owned(),
            event_id: Uuid::new_v5(&EVENT_ID_NAMESPACE, webhook_id.as_bytes()).to_string(),
            triggered_at: OffsetDateTime::now_utc(),
        };
        self.deliver_with_signature(&delivery, signature).await
    }

    fn headers(&self, delivery: &Delivery, signature: &str) -> Result<HeaderMap, WebhookError> {
        delivery_headers(&self.shop_domain, &self.api_version, delivery, signature)
    }
}

/// The headers of one delivery: `Content-Type: application/json` plus the seven
/// `X-Shopify-*` headers of §1.1. Shared by [`ShopifyWebhooks`] and the API emulator's
/// outbox, so both send exactly the same header set.
pub(crate) fn delivery_headers(
    shop_domain: &str,
    api_version: &str,
    delivery: &Delivery,
    signature: &str,
) -> Result<HeaderMap, WebhookError> {
    let triggered_at = delivery
        .triggered_at
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|_| WebhookError::InvalidHeader("X-Shopify-Triggered-At"))?;
    // Names in lower case as `HeaderName::from_static` requires; header names are
    // case-insensitive, so this is the same header as Shopify's `X-Shopify-Topic`.
    let pairs: [(&'static str, &str); 7] = [
        ("x-shopify-topic", &delivery.topic),
        ("x-shopify-hmac-sha256", signature),
        ("x-shopify-shop-domain", shop_domain),
        ("x-shopify-api-version", api_version),
        ("x-shopify-webhook-id", &delivery.webhook_id),
        ("x-shopify-event-id", &delivery.event_id),
        ("x-shopify-triggered-at", &triggered_at),
    ];
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in pairs {
        let value = HeaderValue::from_str(value).map_err(|_| WebhookError::InvalidHeader(name))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(headers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Expected value derived once, independently of this crate, with Python's standard
    /// library and cross-checked with OpenSSL:
    ///   python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    ///     b"hush-this-is-a-test-secret",
    ///     b"{\"id\":706405506930370084,\"email\":\"bob@biller.com\"}",
    ///     hashlib.sha256).digest()).decode())'
    ///   printf '%s' '<same body>' | openssl dgst -sha256 -hmac '<same secret>' -binary | base64
    #[test]
    fn signature_matches_an_independently_computed_vector() {
        let body = br#"{"id":706405506930370084,"email":"bob@biller.com"}"#;
        assert_eq!(
            sign(b"hush-this-is-a-test-secret", body),
            "VCAlfN5PFTE6o/FjSmN1oiBmAPanrR1Q3U2Ai3OHrl8="
        );
        assert_ne!(
            sign(b"hush-this-is-a-test-secreT", body),
            "VCAlfN5PFTE6o/FjSmN1oiBmAPanrR1Q3U2Ai3OHrl8="
        );
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        let err = ShopifyWebhooks::new(
            "https://example.com/hook",
            "s",
            "acme.myshopify.com",
            "2025-01",
        )
        .unwrap_err();
        assert!(matches!(err, WebhookError::NotLoopback(_)));
        assert!(
            ShopifyWebhooks::new("http://127.0.0.1:8080/webhooks/shop", "s", "a", "2025-01")
                .is_ok()
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let w = ShopifyWebhooks::new("http://127.0.0.1:1/x", "topsecret", "a", "2025-01").unwrap();
        assert!(!format!("{w:?}").contains("topsecret"));
    }
}
