//! The emulator's shared state: known chats and their messages, the update queue, the
//! webhook, flood control, switches and the delivery log.
//!
//! Message IDs are counted per chat and shared by both sides of a conversation (a user's
//! message and the bot's reply take consecutive IDs), as in Telegram private chats and
//! supergroups. Dates are Unix seconds of the sandbox clock.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::TelegramConfig;
use super::envelope::ApiError;
use super::model::{ChatKind, SentMessage, TelegramChat, TelegramUser, message_json};
use super::rate_limit::{Limits, RateLimiter};
use super::schema::SchemaSwitch;
use super::updates::{Updates, allowed, kind_of};
use crate::clock::Clock;
use crate::control::Control;

/// A chat and what happened in it.
#[derive(Debug)]
pub(crate) struct ChatState {
    pub chat: TelegramChat,
    /// The user blocked the bot (private) or the bot was removed (groups, channels).
    pub blocked: bool,
    /// The group was upgraded to this supergroup.
    pub migrated_to: Option<i64>,
    pub next_message_id: i64,
    /// Every message of the chat by ID, for `reply_parameters`.
    pub messages: BTreeMap<i64, Value>,
}

/// The webhook as `setWebhook` left it.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub max_connections: i64,
    pub ip_address: Option<String>,
    /// Unix date and text of the most recent delivery error.
    pub last_error: Option<(i64, String)>,
}

/// Delivery switches for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeliverySwitches {
    pub paused: bool,
    pub duplicates: u32,
    pub out_of_order: bool,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// The Update's `update_id`.
    pub update_id: i64,
    /// 1 for the first attempt, 2 for the first retry, …; duplicates repeat the number of
    /// the attempt they copy.
    pub attempt: u32,
    /// Virtual time of the attempt, RFC 3339.
    pub at: String,
    /// Virtual time of the attempt, Unix milliseconds.
    pub at_millis: i64,
    /// HTTP status answered, if the receiver answered.
    pub status: Option<u16>,
    /// Why the attempt failed (`Wrong response from the webhook: 500 Internal Server
    /// Error`, a connection error), if it did.
    pub error: Option<String>,
    /// True for an extra copy sent by the duplicate switch.
    pub duplicate: bool,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub chats: BTreeMap<i64, ChatState>,
    pub sent: Vec<SentMessage>,
    pub limiter: RateLimiter,
    pub updates: Updates,
    pub webhook: Option<Webhook>,
    /// `setWebhook` with a URL is allowed once per second (server source).
    pub next_set_webhook_at: f64,
    pub allowed_updates: Option<Vec<String>>,
    pub switches: DeliverySwitches,
    pub schema: Vec<SchemaSwitch>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// State shared by the API handlers, the control routes and the delivery task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub token: String,
    pub bot: TelegramUser,
    /// The user who sends injected messages to groups unless told otherwise.
    pub group_sender: TelegramUser,
    pub limits: Limits,
    pub max_text_length: usize,
    pub first_message_id: i64,
    /// Seconds an undelivered update is kept.
    pub retention: f64,
    /// Longest pause between webhook retries, seconds.
    pub retry_cap: f64,
    pub clock: Clock,
    pub control: Control,
    pub http: reqwest::Client,
    /// Wakes the delivery task.
    pub wake: Notify,
    /// Wakes long-polling `getUpdates` calls.
    pub arrived: Notify,
    inner: Mutex<Inner>,
}

/// Longest delivery log kept; older entries are dropped first.
const MAX_DELIVERY_LOG: usize = 10_000;

impl Shared {
    pub(crate) fn new(
        config: &TelegramConfig,
        bot: TelegramUser,
        control: Control,
        http: reqwest::Client,
    ) -> Self {
        Self {
            token: config.bot_token.clone(),
            bot,
            group_sender: config.group_sender.clone(),
            limits: Limits {
                per_chat_per_second: config.per_chat_per_second,
                per_chat_burst: config.per_chat_burst,
                global_per_second: config.global_per_second,
                group_per_minute: config.group_per_minute,
                long_message_chars: config.long_message_chars,
            },
            max_text_length: config.max_text_length,
            first_message_id: config.first_message_id,
            retention: config.update_retention.as_secs_f64(),
            retry_cap: config.webhook_retry_cap.as_secs_f64(),
            clock: control.clock().clone(),
            control,
            http,
            wake: Notify::new(),
            arrived: Notify::new(),
            inner: Mutex::new(Inner {
                chats: BTreeMap::new(),
                sent: Vec::new(),
                limiter: RateLimiter::default(),
                updates: Updates::new(config.first_update_id),
                webhook: None,
                next_set_webhook_at: f64::MIN,
                allowed_updates: None,
                switches: DeliverySwitches::default(),
                schema: Vec::new(),
                deliveries: Vec::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtual now, Unix seconds with fractions.
    pub(crate) fn now(&self) -> f64 {
        self.clock.now().unix_timestamp_nanos() as f64 / 1e9
    }

    /// Virtual now, whole Unix seconds (the `date` fields).
    pub(crate) fn epoch(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Adds or replaces a known chat.
    pub(crate) fn add_chat(&self, chat: TelegramChat) -> Result<(), String> {
        chat.validate()?;
        let mut inner = self.lock();
        let next = self.first_message_id;
        let state = inner.chats.entry(chat.id).or_insert_with(|| ChatState {
            chat: chat.clone(),
            blocked: false,
            migrated_to: None,
            next_message_id: next,
            messages: BTreeMap::new(),
        });
        state.chat = chat;
        Ok(())
    }

    /// Queues an Update body and wakes its consumers; `None` when `allowed_updates`
    /// filters it out.
    pub(crate) fn enqueue(
        &self,
        inner: &mut Inner,
        body: Value,
        chat_id: Option<i64>,
    ) -> Option<i64> {
        let kind = kind_of(&body)?.to_owned();
        if !allowed(inner.allowed_updates.as_deref(), &kind) {
            return None;
        }
        let id = inner.updates.push(body, chat_id, self.now());
        self.wake.notify_one();
        self.arrived.notify_waiters();
        Some(id)
    }

    /// A user writes `text` in `chat_id` (a channel post for channels). Returns the new
    /// message ID and the update ID (`None` when filtered by `allowed_updates`).
    pub(crate) fn inject_message(
        &self,
        chat_id: i64,
        from: Option<TelegramUser>,
        text: &str,
    ) -> Result<(i64, Option<i64>), String> {
        let date = self.epoch();
        let mut inner = self.lock();
        let state = inner
            .chats
            .get_mut(&chat_id)
            .ok_or_else(|| format!("chat {chat_id} is not known to the emulator"))?;
        let sender = from
            .or_else(|| state.chat.counterpart())
            .unwrap_or_else(|| self.group_sender.clone());
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let mut entities = Vec::new();
        // A leading `/command` is marked as Telegram marks it.
        if let Some(command) = text
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        {
            entities.push(json!({"offset": 0, "length": command.encode_utf16().count(), "type": "bot_command"}));
        }
        let message = Value::Object(message_json(
            message_id,
            &sender,
            &state.chat,
            date,
            text,
            &entities,
        ));
        state.messages.insert(message_id, message.clone());
        let kind = if state.chat.kind == ChatKind::Channel {
            "channel_post"
        } else {
            "message"
        };
        let mut body = serde_json::Map::new();
        body.insert(kind.to_owned(), message);
        let update_id = self.enqueue(&mut inner, Value::Object(body), Some(chat_id));
        Ok((message_id, update_id))
    }

    /// Queues a raw Update body (one optional field; any `update_id` is replaced).
    pub(crate) fn inject_update(&self, mut body: Value) -> Result<Option<i64>, String> {
        let obj = body
            .as_object_mut()
            .ok_or("an Update must be a JSON object")?;
        obj.remove("update_id");
        if obj.len() != 1 {
            return Err(format!(
                "an Update carries exactly one optional field (message, edited_message, …), found {}",
                obj.len()
            ));
        }
        let chat_id = obj
            .values()
            .next()
            .and_then(|v| {
                v.pointer("/chat/id")
                    .or_else(|| v.pointer("/message/chat/id"))
            })
            .and_then(Value::as_i64);
        let mut inner = self.lock();
        Ok(self.enqueue(&mut inner, body, chat_id))
    }

    /// Appends to the delivery log.
    pub(crate) fn log_delivery(&self, inner: &mut Inner, record: DeliveryRecord) {
        if inner.deliveries.len() >= MAX_DELIVERY_LOG {
            inner.deliveries.remove(0);
        }
        inner.deliveries.push(record);
    }

    /// An outbound Update: `update_id` first, then the body, with schema switches applied.
    pub(crate) fn outbound(&self, inner: &Inner, id: i64, body: &Value) -> Value {
        let mut update = json!({ "update_id": id });
        if let (Some(out), Some(fields)) = (update.as_object_mut(), body.as_object()) {
            out.extend(fields.clone());
        }
        for switch in &inner.schema {
            switch.apply(&mut update);
        }
        update
    }
}

impl Inner {
    /// Resolves a `chat_id` argument: an integer ID, or `@username` of a public
    /// supergroup or channel. Anything else is `chat not found`.
    pub(crate) fn resolve_chat(&self, raw: &str) -> Result<i64, ApiError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ApiError::bad_request("chat_id is empty"));
        }
        let found = match raw.strip_prefix('@') {
            Some(name) => self.chats.values().find(|s| {
                s.chat
                    .public_username()
                    .is_some_and(|u| u.eq_ignore_ascii_case(name))
            }),
            None => raw.parse::<i64>().ok().and_then(|id| self.chats.get(&id)),
        };
        found
            .map(|s| s.chat.id)
            .ok_or_else(|| ApiError::bad_request("chat not found"))
    }
}

/// Serialises an Update with `update_id` first, as the Bot API server writes it
/// (`serde_json` maps are sorted, which would put `update_id` last).
pub(crate) fn update_text(update: &Value) -> String {
    let Some(obj) = update.as_object() else {
        return update.to_string();
    };
    let mut parts = Vec::with_capacity(obj.len());
    if let Some(id) = obj.get("update_id") {
        parts.push(format!("\"update_id\":{id}"));
    }
    for (k, v) in obj.iter().filter(|(k, _)| *k != "update_id") {
        parts.push(format!("{}:{v}", Value::String(k.clone())));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn update_id_comes_first_on_the_wire() {
        let u = json!({"update_id": 7, "message": {"text": "hi"}});
        assert_eq!(
            update_text(&u),
            r#"{"update_id":7,"message":{"text":"hi"}}"#
        );
        let back: Value = serde_json::from_str(&update_text(&u)).unwrap();
        assert_eq!(back, u);
    }
}
