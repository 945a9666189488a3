//! Verifying and reading a Shopify webhook delivery (saas-contracts.md §1.1–1.2).
//!
//! The signature is checked over the raw bytes before anything parses them, in constant
//! time, against the current and (during rotation) the previous secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use switchboard_core::envelope::Operation;

use super::{ShopifyConnection, WEBHOOK_ENTITIES, model};
use crate::webhook::{Received, WebhookError, ct_eq, header, hmac_sha256, json_object};

/// Verifies and parses one delivery.
pub fn receive(
    connection: &ShopifyConnection,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, WebhookError> {
    let signature = header(headers, "x-shopify-hmac-sha256").ok_or(WebhookError::Unauthorized)?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| WebhookError::Unauthorized)?;
    let valid = std::iter::once(&connection.webhook_secret)
        .chain(connection.previous_webhook_secret.as_ref())
        .any(|secret| verify(secret.expose().as_bytes(), body, &signature));
    if !valid {
        return Err(WebhookError::Unauthorized);
    }

    if let Some(domain) = header(headers, "x-shopify-shop-domain")
        && !domain.eq_ignore_ascii_case(&connection.shop_domain)
    {
        return Err(WebhookError::Malformed(format!(
            "delivery is for shop {domain}, this connection is {}",
            connection.shop_domain
        )));
    }
    let topic = header(headers, "x-shopify-topic")
        .ok_or_else(|| WebhookError::Malformed("X-Shopify-Topic header missing".into()))?;
    let (entity, operation) = parse_topic(topic)?;

    let payload = json_object(body)?;
    let record_id = model::record_id(&payload)
        .ok_or_else(|| WebhookError::Malformed("payload has no `id`".into()))?;

    Ok(Received {
        entity: entity.to_owned(),
        record_id,
        operation,
        source_timestamp: model::updated_at_millis(&payload).or_else(|| {
            header(headers, "x-shopify-triggered-at").and_then(crate::webhook::rfc3339_millis)
        }),
        api_version: header(headers, "x-shopify-api-version").map(str::to_owned),
        delivery_id: header(headers, "x-shopify-webhook-id").map(str::to_owned),
        version_identified: false,
    })
}

/// `customers/update` → (`customers`, update).
fn parse_topic(topic: &str) -> Result<(&str, Operation), WebhookError> {
    let (entity, action) = topic
        .split_once('/')
        .ok_or_else(|| WebhookError::Malformed(format!("unexpected topic `{topic}`")))?;
    if !WEBHOOK_ENTITIES.contains(&entity) {
        return Err(WebhookError::Malformed(format!(
            "topic `{topic}` is not one Switchboard subscribes to"
        )));
    }
    let operation = match action {
        "create" => Operation::Create,
        "update"
        | "updated"
        | "paid"
        | "fulfilled"
        | "partially_fulfilled"
        | "cancelled"
        | "enable"
        | "disable" => Operation::Update,
        "delete" => Operation::Delete,
        _ => {
            return Err(WebhookError::Malformed(format!(
                "topic `{topic}` has an unknown action"
            )));
        }
    };
    Ok((entity, operation))
}

fn verify(secret: &[u8], body: &[u8], signature: &[u8]) -> bool {
    hmac_sha256(secret, &[body]).is_some_and(|mac| ct_eq(&mac, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use switchboard_core::Secret;

    fn connection() -> ShopifyConnection {
        ShopifyConnection {
            shop_domain: "acme.myshopify.com".into(),
            api_version: "2025-01".into(),
            webhook_secret: Secret::from_value("hush"),
            previous_webhook_secret: None,
            access_token: None,
            base_url: None,
            reconcile: None,
        }
    }

    // Expected signature computed independently with Python:
    // base64.b64encode(hmac.new(b"hush", b'{"id":1}', hashlib.sha256).digest())
    const BODY: &[u8] = br#"{"id":1}"#;
    const SIGNATURE: &str = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=";

    fn headers(signature: &str, topic: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-shopify-hmac-sha256", signature.parse().unwrap());
        h.insert("x-shopify-topic", topic.parse().unwrap());
        h.insert("x-shopify-webhook-id", "w-1".parse().unwrap());
        h.insert(
            "x-shopify-shop-domain",
            "acme.myshopify.com".parse().unwrap(),
        );
        h
    }

    #[test]
    fn accepts_the_documented_signature() {
        let received =
            receive(&connection(), &headers(SIGNATURE, "customers/create"), BODY).unwrap();
        assert_eq!(received.entity, "customers");
        assert_eq!(received.record_id, "1");
        assert_eq!(received.operation, Operation::Create);
        assert_eq!(received.delivery_id.as_deref(), Some("w-1"));
    }

    #[test]
    fn rejects_a_wrong_or_missing_signature() {
        let other = STANDARD.encode([0u8; 32]);
        assert_eq!(
            receive(&connection(), &headers(&other, "customers/create"), BODY),
            Err(WebhookError::Unauthorized)
        );
        let mut h = headers(SIGNATURE, "customers/create");
        h.remove("x-shopify-hmac-sha256");
        assert_eq!(
            receive(&connection(), &h, BODY),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn accepts_the_previous_secret_during_rotation() {
        let mut c = connection();
        c.webhook_secret = Secret::from_value("new-secret");
        c.previous_webhook_secret = Some(Secret::from_value("hush"));
        assert!(receive(&c, &headers(SIGNATURE, "customers/update"), BODY).is_ok());
    }

    #[test]
    fn signed_garbage_is_malformed_not_unauthorized() {
        let body = b"{not json";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"hush").unwrap();
        mac.update(body);
        let sig = STANDARD.encode(mac.finalize().into_bytes());
        assert!(matches!(
            receive(&connection(), &headers(&sig, "customers/update"), body),
            Err(WebhookError::Malformed(_))
        ));
    }
}
