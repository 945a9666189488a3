//! Telegram Bot API: webhook `Update`s in (saas-contracts.md §4).
//!
//! Telegram signs nothing; `setWebhook`'s `secret_token` comes back in the
//! `X-Telegram-Bot-Api-Secret-Token` header of every delivery, compared in constant time.

pub mod api;
pub mod target;
pub mod webhook;

use serde::Deserialize;
use switchboard_core::Secret;

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
