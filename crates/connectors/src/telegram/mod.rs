//! Telegram Bot API: webhook `Update`s in (saas-contracts.md §4).
//!
//! Telegram signs nothing; `setWebhook`'s `secret_token` comes back in the
//! `X-Telegram-Bot-Api-Secret-Token` header of every delivery, compared in constant time.

pub mod api;
pub mod target;
pub mod webhook;

use serde::Deserialize;
use switchboard_core::{Config, Secret};

use crate::target::{Entity, Writer};
use crate::webhook::{Received, WebhookError};

/// Settings of a Telegram bot connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConnection {
    /// `https://api.telegram.org` (or the sandbox's address).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The bot's token (for sending; never logged).
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// The `secret_token` given to `setWebhook`; without it the connection accepts no
    /// webhooks.
    #[serde(default)]
    pub webhook_secret_token: Option<Secret>,
    /// The previous secret token, accepted too while `setWebhook` is being re-run.
    #[serde(default)]
    pub previous_webhook_secret_token: Option<Secret>,
    /// Chat that order notifications go to (an integer ID or `@channel`), for Telegram as
    /// a sink target.
    #[serde(default)]
    pub notify_chat_id: Option<String>,
}

fn default_base_url() -> String {
    "https://api.telegram.org".to_owned()
}

impl crate::System for TelegramConnection {
    fn system(&self) -> &'static str {
        "telegram"
    }

    fn webhook_entities(&self) -> Vec<String> {
        match self.webhook_secret_token {
            Some(_) => crate::webhook::entity_names(webhook::WEBHOOK_ENTITIES),
            None => Vec::new(),
        }
    }

    fn receive_webhook(
        &self,
        headers: &::http::HeaderMap,
        body: &[u8],
        _now_secs: i64,
    ) -> Result<Received, WebhookError> {
        webhook::receive(self, headers, body)
    }

    fn target_entities(&self) -> Option<&'static [Entity]> {
        Some(target::ENTITIES)
    }

    fn target_needs(&self, name: &str, _config: &Config, _entity: &str) -> Result<(), String> {
        if self.bot_token.is_none() || self.notify_chat_id.is_none() {
            return Err(format!(
                "connection `{name}`: notifications need bot_token and notify_chat_id"
            ));
        }
        Ok(())
    }

    fn writer(&self, _name: &str) -> anyhow::Result<Box<dyn Writer>> {
        Ok(Box::new(target::TelegramTarget::new(self)?))
    }
}

/// How Bot API answers read: `parameters.retry_after` in the JSON body (§4.3); a 403 is
/// "bot was blocked by the user": the chat refuses, not the token.
pub struct Answers;

impl crate::http::Answers for Answers {
    fn class_of(&self, status: reqwest::StatusCode, _body: &str) -> switchboard_core::ErrorClass {
        match status.as_u16() {
            403 => switchboard_core::ErrorClass::Data,
            _ => crate::http::class_of(status),
        }
    }

    fn retry_after(
        &self,
        headers: &::http::HeaderMap,
        body: &str,
        _now_ms: i64,
    ) -> Option<std::time::Duration> {
        use crate::http::{header_number, wait_secs};
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|b| b.pointer("/parameters/retry_after")?.as_f64())
            .map(wait_secs)
            .or_else(|| header_number(headers, "retry-after").map(wait_secs))
    }
}
