//! Verifying and reading a Telegram `Update` delivery (saas-contracts.md §4.5–4.6).
//!
//! Messages are keyed by chat, so a conversation stays in order on its partition;
//! `update_id` (unique and increasing per bot) is the delivery ID for dedupe.

use http::HeaderMap;
use serde_json::Value;
use switchboard_core::envelope::Operation;

use super::TelegramConnection;
use crate::webhook::{Received, WebhookError, ct_eq, header, id_string, json_object};

/// Entities whose updates ingest publishes.
pub const WEBHOOK_ENTITIES: &[&str] = &["messages", "callback_queries", "chat_members", "updates"];

/// Verifies and parses one delivery.
pub fn receive(
    connection: &TelegramConnection,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, WebhookError> {
    let Some(current) = &connection.webhook_secret_token else {
        return Err(WebhookError::NotAccepted);
    };
    let given =
        header(headers, "x-telegram-bot-api-secret-token").ok_or(WebhookError::Unauthorized)?;
    let valid = std::iter::once(current)
        .chain(connection.previous_webhook_secret_token.as_ref())
        .any(|secret| ct_eq(secret.expose().as_bytes(), given.as_bytes()));
    if !valid {
        return Err(WebhookError::Unauthorized);
    }

    let update = json_object(body)?;
    let update_id = id_string(update.get("update_id"))
        .ok_or_else(|| WebhookError::Malformed("update_id missing".into()))?;
    let (kind, object) = update
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.as_str() != "update_id"))
        .ok_or_else(|| WebhookError::Malformed("update carries no object".into()))?;
    let (entity, operation, record_id) = match kind.as_str() {
        "message" | "channel_post" | "business_message" => {
            ("messages", Operation::Create, chat_id(object))
        }
        "edited_message" | "edited_channel_post" | "edited_business_message" => {
            ("messages", Operation::Update, chat_id(object))
        }
        "callback_query" => (
            "callback_queries",
            Operation::Create,
            id_string(object.get("id")),
        ),
        "my_chat_member" | "chat_member" => ("chat_members", Operation::Update, chat_id(object)),
        _ => ("updates", Operation::Create, Some(update_id.clone())),
    };
    let record_id =
        record_id.ok_or_else(|| WebhookError::Malformed(format!("{kind} has no chat or id")))?;
    let source_timestamp = ["edit_date", "date"]
        .iter()
        .find_map(|k| object.get(*k).and_then(Value::as_i64))
        .map(|secs| secs * 1000);
    Ok(Received {
        entity: entity.to_owned(),
        record_id,
        operation,
        source_timestamp,
        api_version: None,
        delivery_id: Some(update_id),
        version_identified: false,
    })
}

fn chat_id(object: &Value) -> Option<String> {
    id_string(object.get("chat").and_then(|c| c.get("id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Secret;

    fn connection() -> TelegramConnection {
        TelegramConnection {
            base_url: String::new(),
            bot_token: None,
            webhook_secret_token: Some(Secret::from_value("s3cret_token-1")),
            previous_webhook_secret_token: None,
            notify_chat_id: None,
        }
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-telegram-bot-api-secret-token", token.parse().unwrap());
        h
    }

    // The illustrative update of saas-contracts.md §4.6.
    const UPDATE: &str = r#"{"update_id": 10000001, "message": {"message_id": 1365,
        "from": {"id": 1111111, "is_bot": false, "first_name": "Test"},
        "chat": {"id": -1001111111, "type": "supergroup"}, "date": 1441645532, "text": "/start"}}"#;

    #[test]
    fn a_message_is_keyed_by_chat_and_deduped_by_update_id() {
        let r = receive(&connection(), &headers("s3cret_token-1"), UPDATE.as_bytes()).unwrap();
        assert_eq!(r.entity, "messages");
        assert_eq!(r.record_id, "-1001111111");
        assert_eq!(r.delivery_id.as_deref(), Some("10000001"));
        assert_eq!(r.source_timestamp, Some(1_441_645_532_000));
    }

    #[test]
    fn a_wrong_or_missing_secret_token_is_unauthorized() {
        assert_eq!(
            receive(&connection(), &headers("guess"), UPDATE.as_bytes()),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(
            receive(&connection(), &HeaderMap::new(), UPDATE.as_bytes()),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn without_a_configured_secret_no_webhook_is_accepted() {
        let mut c = connection();
        c.webhook_secret_token = None;
        assert_eq!(
            receive(&c, &headers("anything"), UPDATE.as_bytes()),
            Err(WebhookError::NotAccepted)
        );
    }
}
