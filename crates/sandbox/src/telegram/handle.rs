//! [`TelegramSandbox`]: starting the emulator, inspecting it, and its in-process switches
//! (the twins of the `/_sandbox/telegram/` routes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::envelope::fault_body;
use super::{
    DeliveryRecord, Injected, SchemaSwitch, SentMessage, Shared, TelegramChat, TelegramConfig,
    TelegramError, TelegramSandbox, TelegramUser, api, control_api, webhook,
};
use crate::clock::Clock;
use crate::control::{Control, instrument};

impl TelegramSandbox {
    /// Binds `config.addr` (loopback only) and serves in a tokio task, with a second task
    /// delivering webhooks.
    pub async fn start(config: TelegramConfig) -> Result<Self, TelegramError> {
        if !crate::net::is_loopback_addr(&config.addr) {
            return Err(TelegramError::NotLoopback(config.addr));
        }
        let bot_id = config.bot_id().ok_or_else(|| {
            TelegramError::InvalidConfig(
                "bot_token must look like <bot id>:<secret>, e.g. 123456:ABC-DEF1234ghIkl".into(),
            )
        })?;
        if !(config.per_chat_per_second > 0.0 && config.per_chat_per_second.is_finite())
            || config.per_chat_burst == 0
            || config.global_per_second == 0
            || config.group_per_minute == 0
        {
            return Err(TelegramError::InvalidConfig(
                "rate limits must be greater than zero".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(config.webhook_timeout)
            .timeout(config.webhook_timeout)
            .build()?;
        let control = Control::new(config.clock.clone());
        let bot = TelegramUser {
            id: bot_id,
            is_bot: true,
            first_name: config.bot_first_name.clone(),
            last_name: None,
            username: Some(config.bot_username.clone()),
            language_code: None,
        };
        let shared = Arc::new(Shared::new(&config, bot, control.clone(), http));
        for chat in &config.chats {
            shared
                .add_chat(chat.clone())
                .map_err(TelegramError::InvalidConfig)?;
        }

        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| TelegramError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TelegramError::Bind {
                addr: config.addr,
                source,
            })?;
        // `redact` runs first, so the request log and fault rules never see the token.
        let app = instrument(api::router(shared.clone()), &control, fault_body)
            .merge(control_api::router(shared.clone()))
            .layer(axum::middleware::map_request(api::redact));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "Telegram emulator stopped with an error.");
            }
        });
        let delivery = webhook::spawn(shared.clone(), cancel.clone());
        tracing::info!(%addr, "Telegram emulator listening.");
        Ok(Self {
            shared,
            addr,
            cancel,
            tasks: Mutex::new(vec![server, delivery]),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `https://api.telegram.org` equivalent, e.g. `http://127.0.0.1:41234`; methods
    /// live at `/bot<token>/<method>` below it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of one method for the configured token, e.g. `…/bot123:abc/sendMessage`.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base_url(), self.shared.token)
    }

    /// Faults, outage, request log and counters (creates are keyed `"<chat_id>|<text>"`).
    pub fn control(&self) -> &Control {
        &self.shared.control
    }

    /// The sandbox clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// The bot, as `getMe` describes it.
    pub fn bot(&self) -> TelegramUser {
        self.shared.bot.clone()
    }

    /// Messages the bot sent, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.sent(None)
    }

    /// Messages the bot sent to one chat, oldest first.
    pub fn messages_to(&self, chat_id: i64) -> Vec<SentMessage> {
        self.shared.sent(Some(chat_id))
    }

    /// Adds (or replaces) a chat the bot knows.
    pub fn add_chat(&self, chat: TelegramChat) -> Result<(), TelegramError> {
        self.shared.add_chat(chat).map_err(TelegramError::Switch)
    }

    /// The user blocks (or unblocks) the bot; for groups and channels, the bot is removed.
    pub fn set_blocked(&self, chat_id: i64, blocked: bool) -> Result<(), TelegramError> {
        self.shared
            .set_blocked(chat_id, blocked)
            .map_err(TelegramError::Switch)
    }

    /// The group `chat_id` was upgraded to the (known) supergroup `to_chat_id`.
    pub fn migrate_group(&self, chat_id: i64, to_chat_id: i64) -> Result<(), TelegramError> {
        self.shared
            .migrate(chat_id, to_chat_id)
            .map_err(TelegramError::Switch)
    }

    /// A user writes `text` to the bot in `chat_id` (the chat's user in a private chat,
    /// `group_sender` in groups; a channel post in channels). It becomes an Update.
    pub fn inject_message(&self, chat_id: i64, text: &str) -> Result<Injected, TelegramError> {
        self.inject(chat_id, None, text)
    }

    /// Like [`inject_message`](Self::inject_message), from a given user.
    pub fn inject_message_from(
        &self,
        chat_id: i64,
        from: TelegramUser,
        text: &str,
    ) -> Result<Injected, TelegramError> {
        self.inject(chat_id, Some(from), text)
    }

    fn inject(
        &self,
        chat_id: i64,
        from: Option<TelegramUser>,
        text: &str,
    ) -> Result<Injected, TelegramError> {
        let (message_id, update_id) = self
            .shared
            .inject_message(chat_id, from, text)
            .map_err(TelegramError::Switch)?;
        Ok(Injected {
            message_id,
            update_id,
        })
    }

    /// Queues a raw Update body with one field (e.g. `{"edited_message": {…}}`); returns
    /// its `update_id` (`None` when `allowed_updates` filtered it out).
    pub fn inject_update(&self, update: Value) -> Result<Option<i64>, TelegramError> {
        self.shared
            .inject_update(update)
            .map_err(TelegramError::Switch)
    }

    /// Updates not yet delivered (webhook) or confirmed (`getUpdates`).
    pub fn pending_update_count(&self) -> usize {
        self.shared.lock().updates.pending.len()
    }

    /// The webhook URL, if one is set.
    pub fn webhook_url(&self) -> Option<String> {
        self.shared.lock().webhook.as_ref().map(|w| w.url.clone())
    }

    /// Every webhook delivery attempt, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared.deliveries()
    }

    /// Holds webhook deliveries back (updates stay pending) until called with `false`.
    pub fn pause_deliveries(&self, paused: bool) {
        self.shared.set_paused(paused);
    }

    /// Every accepted webhook delivery is sent `n` more times (0 turns it off).
    pub fn set_duplicate_deliveries(&self, n: u32) {
        self.shared.set_duplicates(n);
    }

    /// Deliver pending updates newest first, one at a time.
    pub fn set_out_of_order(&self, on: bool) {
        self.shared.set_out_of_order(on);
    }

    /// Adds a schema switch to every outbound Update.
    pub fn add_schema_switch(&self, switch: SchemaSwitch) {
        self.shared.add_schema_switch(switch);
    }

    /// Removes every schema switch.
    pub fn clear_schema_switches(&self) {
        self.shared.clear_schema_switches();
    }

    /// Flood control blocks every call of the bot for `d` (rounded up to whole seconds).
    pub fn flood_wait(&self, d: Duration) {
        self.shared.flood_wait(d);
    }

    /// Stops accepting connections and deliveries, and waits for both tasks. Calling it
    /// again is a no-op.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "Telegram emulator task ended abnormally.");
            }
        }
    }
}

impl Drop for TelegramSandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
