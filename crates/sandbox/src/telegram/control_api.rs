//! Telegram-specific switches, in-process (on `Shared`, wrapped by `TelegramSandbox`) and
//! over HTTP under `/_sandbox/telegram/`. The routes are listed in the module doc of
//! `telegram/mod.rs`. Errors answer `{"error": "<why>"}` with 400 or 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{SentMessage, TelegramChat, TelegramUser};
use super::rate_limit::whole_seconds;
use super::schema::SchemaSwitch;
use super::state::{DeliveryRecord, Shared};

impl Shared {
    pub(crate) fn set_blocked(&self, chat_id: i64, blocked: bool) -> Result<(), String> {
        let mut inner = self.lock();
        let state = inner
            .chats
            .get_mut(&chat_id)
            .ok_or_else(|| unknown(chat_id))?;
        state.blocked = blocked;
        Ok(())
    }

    pub(crate) fn migrate(&self, chat_id: i64, to_chat_id: i64) -> Result<(), String> {
        let mut inner = self.lock();
        if !inner.chats.contains_key(&to_chat_id) {
            return Err(unknown(to_chat_id));
        }
        let state = inner
            .chats
            .get_mut(&chat_id)
            .ok_or_else(|| unknown(chat_id))?;
        state.migrated_to = Some(to_chat_id);
        Ok(())
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.lock().switches.paused = paused;
        self.wake.notify_one();
    }

    pub(crate) fn set_duplicates(&self, n: u32) {
        self.lock().switches.duplicates = n;
    }

    pub(crate) fn set_out_of_order(&self, on: bool) {
        self.lock().switches.out_of_order = on;
        self.wake.notify_one();
    }

    pub(crate) fn add_schema_switch(&self, switch: SchemaSwitch) {
        self.lock().schema.push(switch);
    }

    pub(crate) fn clear_schema_switches(&self) {
        self.lock().schema.clear();
    }

    pub(crate) fn schema_switches(&self) -> Vec<SchemaSwitch> {
        self.lock().schema.clone()
    }

    /// Starts a flood-control block of `d`: every call answers 429 until it ends.
    pub(crate) fn flood_wait(&self, d: Duration) {
        let now = self.now();
        self.lock()
            .limiter
            .block(now, whole_seconds(d.as_secs_f64()));
    }

    pub(crate) fn sent(&self, chat_id: Option<i64>) -> Vec<SentMessage> {
        let inner = self.lock();
        inner
            .sent
            .iter()
            .filter(|m| chat_id.is_none_or(|c| m.chat_id == c))
            .cloned()
            .collect()
    }

    pub(crate) fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().deliveries.clone()
    }
}

fn unknown(chat_id: i64) -> String {
    format!("chat {chat_id} is not known to the emulator")
}

fn error(status: StatusCode, why: impl Into<String>) -> Response {
    (status, Json(json!({ "error": why.into() }))).into_response()
}

fn done(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => error(StatusCode::NOT_FOUND, why),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatFilter {
    chat_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Blocked {
    blocked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Migrate {
    to_chat_id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Incoming {
    chat_id: i64,
    text: String,
    #[serde(default)]
    from: Option<TelegramUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivery {
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    duplicates: Option<u32>,
    #[serde(default)]
    out_of_order: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flood {
    retry_after: u32,
}

/// The `/_sandbox/telegram/` routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_sandbox/telegram/messages",
            get(|State(s): State<Arc<Shared>>, Query(f): Query<ChatFilter>| async move {
                Json(s.sent(f.chat_id))
            }),
        )
        .route(
            "/_sandbox/telegram/chats",
            post(|State(s): State<Arc<Shared>>, Json(chat): Json<TelegramChat>| async move {
                match s.add_chat(chat) {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(why) => error(StatusCode::BAD_REQUEST, why),
                }
            }),
        )
        .route(
            "/_sandbox/telegram/chats/{id}/blocked",
            post(
                |State(s): State<Arc<Shared>>, Path(id): Path<i64>, Json(b): Json<Blocked>| async move {
                    done(s.set_blocked(id, b.blocked))
                },
            ),
        )
        .route(
            "/_sandbox/telegram/chats/{id}/migrate",
            post(
                |State(s): State<Arc<Shared>>, Path(id): Path<i64>, Json(m): Json<Migrate>| async move {
                    done(s.migrate(id, m.to_chat_id))
                },
            ),
        )
        .route("/_sandbox/telegram/incoming", post(incoming))
        .route("/_sandbox/telegram/updates", post(raw_update))
        .route(
            "/_sandbox/telegram/deliveries",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.deliveries()) }),
        )
        .route(
            "/_sandbox/telegram/delivery",
            post(|State(s): State<Arc<Shared>>, Json(d): Json<Delivery>| async move {
                if let Some(n) = d.duplicates {
                    s.set_duplicates(n);
                }
                if let Some(on) = d.out_of_order {
                    s.set_out_of_order(on);
                }
                if let Some(paused) = d.paused {
                    s.set_paused(paused);
                }
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_sandbox/telegram/schema",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.schema_switches()) })
                .post(|State(s): State<Arc<Shared>>, Json(sw): Json<SchemaSwitch>| async move {
                    s.add_schema_switch(sw);
                    StatusCode::NO_CONTENT
                })
                .delete(|State(s): State<Arc<Shared>>| async move {
                    s.clear_schema_switches();
                    StatusCode::NO_CONTENT
                }),
        )
        .route(
            "/_sandbox/telegram/flood",
            post(|State(s): State<Arc<Shared>>, Json(f): Json<Flood>| async move {
                s.flood_wait(Duration::from_secs(u64::from(f.retry_after)));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

async fn incoming(State(s): State<Arc<Shared>>, Json(m): Json<Incoming>) -> Response {
    match s.inject_message(m.chat_id, m.from, &m.text) {
        Ok((message_id, update_id)) => {
            Json(json!({ "message_id": message_id, "update_id": update_id })).into_response()
        }
        Err(why) => error(StatusCode::NOT_FOUND, why),
    }
}

async fn raw_update(State(s): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    match s.inject_update(body) {
        Ok(update_id) => Json(json!({ "update_id": update_id })).into_response(),
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}
