//! Sending messages with the Bot API (§4.2): `POST {base}/bot<token>/sendMessage`, JSON
//! body, `{"ok": true, "result": Message}`. Errors are `{"ok": false, "error_code",
//! "description", "parameters": {"retry_after"}}`; a 429's `retry_after` holds every call
//! of this bot (flood control blocks the whole bot, §4.3). The token is part of the URL,
//! so no URL ever reaches a message.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::Secret;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::TelegramConnection;
use crate::http::{check_paced, network_error, send};
use crate::pace::Gate;

/// A bot that sends messages.
pub struct TelegramClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    gate: Gate,
}

impl TelegramClient {
    /// A client for `connection`, which must have a `bot_token`.
    pub fn new(connection: &TelegramConnection) -> Result<Self, ClassifiedError> {
        let token = connection.bot_token.clone().ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Auth, "telegram bot_token is not configured")
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            base: connection.base_url.trim_end_matches('/').to_owned(),
            token,
            gate: Gate::default(),
        })
    }

    /// Sends `text` to `chat_id`; returns the message ID.
    pub async fn send_message(&self, chat_id: &str, text: &str) -> Result<i64, ClassifiedError> {
        self.gate.ready().await;
        let chat: Value = chat_id
            .parse::<i64>()
            .map_or_else(|_| Value::from(chat_id), Value::from);
        let url = format!("{}/bot{}/sendMessage", self.base, self.token.expose());
        let answer = send(
            self.http
                .post(url)
                .json(&json!({"chat_id": chat, "text": text, "disable_notification": false})),
        )
        .await
        .map_err(|e| network_error("telegram sendMessage", &e))?;
        let answer = check_paced(&super::Answers, "telegram sendMessage", answer, &self.gate)?;
        serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|b| b.pointer("/result/message_id")?.as_i64())
            .ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Transient,
                    "telegram sendMessage: no result.message_id in the answer",
                )
            })
    }
}
