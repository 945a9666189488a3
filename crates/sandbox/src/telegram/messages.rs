//! `getMe` and `sendMessage`.
//!
//! Contract facts followed (saas-contracts.md §4.2, §4.3; checks in the order of the
//! open-source Bot API server, tdlib/telegram-bot-api `Client.cpp`, which validates the
//! text before it looks at the chat):
//! 1. `text` with `parse_mode` (`unsupported parse_mode`, `can't parse entities: …`); after
//!    parsing and whitespace stripping, empty is `message text is empty` and more than
//!    4096 UTF-16 units is `message is too long` (UTF-16 is the stricter count: an emoji
//!    counts 2).
//! 2. `reply_markup` must be a JSON object.
//! 3. `chat_id`: empty is `chat_id is empty`; an unknown ID or `@username` is
//!    `chat not found`; a group upgraded to a supergroup answers 400 with
//!    `parameters.migrate_to_chat_id`.
//! 4. A chat that blocked the bot: `403 Forbidden: bot was blocked by the user` (private),
//!    `bot was kicked from the group chat` / `… supergroup chat`, `bot is not a member of
//!    the channel chat`.
//! 5. `reply_parameters.message_id` (or the older `reply_to_message_id`) must exist in the
//!    chat unless `allow_sending_without_reply`: `message to be replied not found`.
//! 6. Flood control (`rate_limit.rs`), then the message is stored and returned as a
//!    `Message`: `message_id` increasing per chat, `from` = the bot (channel posts carry
//!    `sender_chat` instead), `chat`, `date` from the sandbox clock, `text`, `entities`.
//!
//! Every sent message counts as a create under the key `"<chat_id>|<text>"`, so a test
//! sees a notification delivered twice.

use serde_json::{Value, json};

use super::envelope::{ApiError, Success};
use super::markup::{self, ParseMode};
use super::model::{ChatKind, SentMessage, message_json};
use super::params::Params;
use super::state::Shared;

/// `getMe`: the bot's `User` with the bot-only capability fields.
pub(crate) fn get_me(shared: &Shared) -> Success {
    let mut me = shared.bot.to_json();
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(false);
    me["supports_inline_queries"] = json!(false);
    me["can_connect_to_business"] = json!(false);
    me["has_main_web_app"] = json!(false);
    Success::new(me)
}

fn blocked_reason(kind: ChatKind) -> &'static str {
    match kind {
        ChatKind::Private => "bot was blocked by the user",
        ChatKind::Group => "bot was kicked from the group chat",
        ChatKind::Supergroup => "bot was kicked from the supergroup chat",
        ChatKind::Channel => "bot is not a member of the channel chat",
    }
}

/// The message to reply to, and whether a missing one may be ignored.
fn reply_target(p: &Params) -> Result<(i64, bool), ApiError> {
    match p.json("reply_parameters") {
        Err(())
        | Ok(Some(Value::Array(_) | Value::String(_) | Value::Number(_) | Value::Bool(_))) => Err(
            ApiError::bad_request("can't parse reply parameters JSON object"),
        ),
        Ok(Some(rp)) => Ok((
            rp.get("message_id").and_then(Value::as_i64).unwrap_or(0),
            rp.get("allow_sending_without_reply")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )),
        Ok(None) => Ok((
            p.int("reply_to_message_id").unwrap_or(0),
            p.flag("allow_sending_without_reply"),
        )),
    }
}

fn explicit_entities(p: &Params) -> Result<Vec<Value>, ApiError> {
    match p.json("entities") {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(Value::Array(list)))
            if list.iter().all(|e| {
                e.get("type").is_some_and(Value::is_string)
                    && e.get("offset").is_some_and(Value::is_u64)
                    && e.get("length").is_some_and(Value::is_u64)
            }) =>
        {
            Ok(list)
        }
        _ => Err(ApiError::bad_request("can't parse entities JSON object")),
    }
}

/// `sendMessage`.
pub(crate) fn send_message(shared: &Shared, p: &Params) -> Result<Success, ApiError> {
    let parse_mode = p.text("parse_mode");
    let mode = ParseMode::parse(parse_mode.as_deref()).map_err(ApiError::bad_request)?;
    let mut formatted = markup::format(&p.text("text").unwrap_or_default(), mode)
        .map_err(|reason| ApiError::bad_request(format!("can't parse entities: {reason}")))?;
    if mode == ParseMode::Plain {
        formatted.entities = explicit_entities(p)?;
    }
    if formatted.text.is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    let len = formatted.len_utf16();
    if len > shared.max_text_length {
        return Err(ApiError::bad_request("message is too long"));
    }
    let reply_markup = match p.json("reply_markup") {
        Ok(None) => None,
        Ok(Some(markup @ Value::Object(_))) => Some(markup),
        _ => {
            return Err(ApiError::bad_request(
                "can't parse reply keyboard markup JSON object",
            ));
        }
    };
    let (reply_to, allow_without_reply) = reply_target(p)?;

    let now = shared.now();
    let date = shared.epoch();
    let mut inner = shared.lock();
    let chat_id = inner.resolve_chat(&p.text("chat_id").unwrap_or_default())?;
    let (kind, blocked, migrated_to, replied) = {
        let state = inner
            .chats
            .get(&chat_id)
            .ok_or_else(|| ApiError::bad_request("chat not found"))?;
        let replied = (reply_to > 0)
            .then(|| state.messages.get(&reply_to).cloned())
            .flatten();
        (state.chat.kind, state.blocked, state.migrated_to, replied)
    };
    if let Some(to) = migrated_to {
        return Err(ApiError::migrated(to));
    }
    if blocked {
        return Err(ApiError::forbidden(blocked_reason(kind)));
    }
    if reply_to > 0 && replied.is_none() && !allow_without_reply {
        return Err(ApiError::bad_request("message to be replied not found"));
    }
    inner
        .limiter
        .admit_message(&shared.limits, chat_id, len, now)
        .map_err(ApiError::too_many)?;

    let state = inner
        .chats
        .get_mut(&chat_id)
        .ok_or_else(|| ApiError::bad_request("chat not found"))?;
    let message_id = state.next_message_id;
    state.next_message_id += 1;
    let mut message = message_json(
        message_id,
        &shared.bot,
        &state.chat,
        date,
        &formatted.text,
        &formatted.entities,
    );
    if let Some(replied) = replied {
        message.insert("reply_to_message".into(), replied);
    }
    if p.flag("protect_content") {
        message.insert("has_protected_content".into(), json!(true));
    }
    // Only inline keyboards are echoed back on the sent message.
    if let Some(markup) = reply_markup.filter(|m| m.get("inline_keyboard").is_some()) {
        message.insert("reply_markup".into(), markup);
    }
    let message = Value::Object(message);
    state.messages.insert(message_id, message.clone());
    inner.sent.push(SentMessage {
        chat_id,
        message_id,
        text: formatted.text.clone(),
        parse_mode,
        disable_notification: p.flag("disable_notification"),
        message: message.clone(),
    });
    drop(inner);
    shared
        .control
        .count_create(&format!("{chat_id}|{}", formatted.text));
    Ok(Success::new(message))
}
