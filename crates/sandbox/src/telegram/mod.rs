//! Emulator of the Telegram Bot API (saas-contracts.md §4): the request/response envelope,
//! `getMe`, `sendMessage` with flood control, `getUpdates`, and webhooks with outbound
//! Update delivery, retries and fault switches. In-process through [`TelegramSandbox`], or
//! over HTTP.
//!
//! Submodules name the facts they follow and the stricter choices they make:
//! - `api`: `/bot<token>/<method>` routing, token and method checks; `params`: query,
//!   form and JSON parameters; `envelope`: `{"ok":…}` bodies and error descriptions;
//! - `messages`: `getMe`, `sendMessage`; `markup`, `html`, `markdown`: `parse_mode`;
//! - `rate_limit`: per-chat, overall and per-group flood control with the bot-wide block;
//! - `webhook_api`: `getUpdates`, `setWebhook`, `deleteWebhook`, `getWebhookInfo`
//!   (including the documented loopback/`http://` deviation); `updates`: the update
//!   queue; `webhook`: outbound delivery and its retry schedule;
//! - `schema`: rename/add/change-type switches on outbound Updates; `model`: `User`,
//!   `Chat`, `Message`; `state`: shared state; `control_api`: the routes below.
//!
//! Control API (besides the common `/_sandbox/` routes of [`crate::control`]):
//! - `GET /_sandbox/telegram/messages[?chat_id=N]`: messages the bot sent.
//! - `POST /_sandbox/telegram/chats` with a `Chat` object (`{"id":…,"type":"private",
//!   "first_name":…}`): adds a known chat.
//! - `POST /_sandbox/telegram/chats/{id}/blocked` `{"blocked": true}`: the user blocks
//!   the bot (private) or the bot is removed (groups, channels): sends answer 403.
//! - `POST /_sandbox/telegram/chats/{id}/migrate` `{"to_chat_id": -100…}`: the group
//!   became that supergroup; sends answer 400 with `migrate_to_chat_id`.
//! - `POST /_sandbox/telegram/incoming` `{"chat_id": N, "text": "…", "from"?: User}`: a
//!   user writes to the bot; answers `{"message_id": M, "update_id": U}` (`update_id`
//!   null when `allowed_updates` filters it).
//! - `POST /_sandbox/telegram/updates` with an Update body (one field, e.g.
//!   `{"edited_message": {…}}`): queues it as is; answers `{"update_id": U}`.
//! - `GET /_sandbox/telegram/deliveries`: every webhook delivery attempt.
//! - `POST /_sandbox/telegram/delivery` `{"paused"?: bool, "duplicates"?: N,
//!   "out_of_order"?: bool}`: delivery switches.
//! - `GET|POST|DELETE /_sandbox/telegram/schema`: list, add (`{"op":"rename","path":
//!   "message.text","to":"body"}`, `{"op":"add","path":…,"value":…}`,
//!   `{"op":"change_type","path":…}`) or clear schema switches.
//! - `POST /_sandbox/telegram/flood` `{"retry_after": N}`: flood control blocks every call
//!   for N seconds, as after a real 429.

mod api;
mod control_api;
mod envelope;
mod html;
mod markdown;
mod markup;
mod messages;
mod model;
mod params;
mod rate_limit;
mod schema;
mod state;
mod updates;
mod webhook;
mod webhook_api;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use model::{ChatKind, SentMessage, TelegramChat, TelegramUser};
pub use schema::SchemaSwitch;
pub use state::DeliveryRecord;
pub use webhook::SECRET_HEADER;

use crate::clock::Clock;
use state::Shared;

/// The sample user's private chat (and user ID).
pub const SAMPLE_USER_CHAT: i64 = 111_111_111;
/// A second private chat.
pub const SAMPLE_OTHER_USER_CHAT: i64 = 222_222_222;
/// A basic group.
pub const SAMPLE_GROUP_CHAT: i64 = -4_000_000_001;
/// A supergroup.
pub const SAMPLE_SUPERGROUP_CHAT: i64 = -1_001_000_000_001;
/// A public channel, also reachable as `@switchboard_news`.
pub const SAMPLE_CHANNEL_CHAT: i64 = -1_001_000_000_002;
/// The channel's username.
pub const SAMPLE_CHANNEL_USERNAME: &str = "switchboard_news";

/// How the emulator behaves. Build with [`TelegramConfig::new`] and override fields with
/// struct-update syntax: `TelegramConfig { per_chat_burst: 1, ..TelegramConfig::new(t) }`.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The bot token, `<bot id>:<secret>` as BotFather issues them; the bot's user ID is
    /// the number before the colon. Never logged.
    pub bot_token: String,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The sandbox clock (dates, flood control, retries, retention).
    pub clock: Clock,
    /// The bot's `first_name`.
    pub bot_first_name: String,
    /// The bot's `username`.
    pub bot_username: String,
    /// Chats the bot knows; others are `chat not found`.
    pub chats: Vec<TelegramChat>,
    /// Who writes injected messages to groups unless told otherwise.
    pub group_sender: TelegramUser,
    /// ID of the first message in each chat.
    pub first_message_id: i64,
    /// ID of the first update.
    pub first_update_id: i64,
    /// Longest message text after entity parsing, UTF-16 units (4096).
    pub max_text_length: usize,
    /// Per-chat refill rate, messages per second (about 1).
    pub per_chat_per_second: f64,
    /// Per-chat burst tolerated (3).
    pub per_chat_burst: u32,
    /// Messages per second across all chats (30).
    pub global_per_second: u32,
    /// Messages per minute per group, supergroup or channel (20).
    pub group_per_minute: u32,
    /// Texts longer than this (UTF-16 units) count double against the per-chat limit (500).
    pub long_message_chars: usize,
    /// How long an undelivered update is kept (24 h).
    pub update_retention: Duration,
    /// Longest pause between webhook retries (60 s).
    pub webhook_retry_cap: Duration,
    /// Real-time timeout of one webhook POST (connect and answer).
    pub webhook_timeout: Duration,
}

impl TelegramConfig {
    /// Defaults from the Bot API contract, on `127.0.0.1:0`, the real clock, and five
    /// sample chats (see the `SAMPLE_*` constants).
    pub fn new(bot_token: impl Into<String>) -> Self {
        Self {
            bot_token: bot_token.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Clock::real(),
            bot_first_name: "Switchboard Sandbox".to_owned(),
            bot_username: "switchboard_sandbox_bot".to_owned(),
            chats: vec![
                TelegramChat::private(SAMPLE_USER_CHAT, "Test", Some("test_user")),
                TelegramChat::private(SAMPLE_OTHER_USER_CHAT, "Ada", Some("ada_l")),
                TelegramChat::group(SAMPLE_GROUP_CHAT, "Switchboard Ops"),
                TelegramChat::supergroup(SAMPLE_SUPERGROUP_CHAT, "Switchboard Alerts", None),
                TelegramChat::channel(
                    SAMPLE_CHANNEL_CHAT,
                    "Switchboard News",
                    Some(SAMPLE_CHANNEL_USERNAME),
                ),
            ],
            group_sender: TelegramUser::human(SAMPLE_USER_CHAT, "Test", Some("test_user")),
            first_message_id: 1,
            first_update_id: 10_000_001,
            max_text_length: 4096,
            per_chat_per_second: 1.0,
            per_chat_burst: 3,
            global_per_second: 30,
            group_per_minute: 20,
            long_message_chars: 500,
            update_retention: Duration::from_secs(24 * 3600),
            webhook_retry_cap: Duration::from_secs(60),
            webhook_timeout: Duration::from_secs(10),
        }
    }

    /// The bot's user ID: the number before the colon of the token.
    pub fn bot_id(&self) -> Option<i64> {
        if !api::well_formed_token(&self.bot_token) {
            return None;
        }
        self.bot_token.split_once(':')?.0.parse().ok()
    }
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("bot_token", &"***")
            .field("addr", &self.addr)
            .field("bot_username", &self.bot_username)
            .field("chats", &self.chats.len())
            .field("per_chat_per_second", &self.per_chat_per_second)
            .field("per_chat_burst", &self.per_chat_burst)
            .field("global_per_second", &self.global_per_second)
            .field("group_per_minute", &self.group_per_minute)
            .field("update_retention", &self.update_retention)
            .field("webhook_retry_cap", &self.webhook_retry_cap)
            .finish_non_exhaustive()
    }
}

/// Why the emulator could not start, or a switch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The configured address is not loopback.
    #[error(
        "refusing to listen on {0}: the sandbox only binds loopback addresses such as 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The configuration cannot work.
    #[error("invalid Telegram emulator configuration: {0}")]
    InvalidConfig(String),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP client for webhook deliveries could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A switch named a chat the emulator does not know, or got an invalid value.
    #[error("{0}")]
    Switch(String),
}

/// A message injected as if a user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// The new message's ID in its chat.
    pub message_id: i64,
    /// The Update's ID; `None` when `allowed_updates` filtered it out.
    pub update_id: Option<i64>,
}

/// A running Telegram Bot API emulator. Dropping it stops the server; [`shutdown`] also
/// waits.
///
/// [`shutdown`]: TelegramSandbox::shutdown
#[derive(Debug)]
pub struct TelegramSandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

mod handle;
