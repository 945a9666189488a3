//! Telegram Bot API objects as the emulator serialises them: `User`, `Chat` and `Message`
//! (saas-contracts.md §4.2, §4.6).
//!
//! Field names and presence follow the Bot API types: an optional field that is not set is
//! left out, never sent as `null`, so a client that treats a missing field as an error is
//! caught. Private chats have positive IDs and the type `private`; groups, supergroups and
//! channels have negative IDs (§4.6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A Telegram user, or the bot itself (`is_bot: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramUser {
    /// User ID (may exceed 32 bits).
    pub id: i64,
    /// True for bots.
    #[serde(default)]
    pub is_bot: bool,
    /// First name, always present.
    pub first_name: String,
    /// Last name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Username without the `@`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's client, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

impl TelegramUser {
    /// A human user with an English client.
    pub fn human(id: i64, first_name: &str, username: Option<&str>) -> Self {
        Self {
            id,
            is_bot: false,
            first_name: first_name.to_owned(),
            last_name: None,
            username: username.map(str::to_owned),
            language_code: Some("en".to_owned()),
        }
    }

    /// The `User` JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The `type` of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// A one-to-one chat with a user (positive ID).
    Private,
    /// A basic group (negative ID).
    Group,
    /// A supergroup (negative ID, usually `-100…`).
    Supergroup,
    /// A channel (negative ID, usually `-100…`).
    Channel,
}

/// A chat the bot knows, as the `Chat` object of the Bot API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramChat {
    /// Chat ID: positive for private chats, negative for groups and channels.
    pub id: i64,
    /// Chat type.
    #[serde(rename = "type")]
    pub kind: ChatKind,
    /// Title, for groups, supergroups and channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Username without the `@`; for supergroups and channels it makes the chat reachable
    /// as `chat_id=@username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// First name of the other party of a private chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name of the other party of a private chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

impl TelegramChat {
    /// A private chat with the user `id`.
    pub fn private(id: i64, first_name: &str, username: Option<&str>) -> Self {
        Self {
            id,
            kind: ChatKind::Private,
            title: None,
            username: username.map(str::to_owned),
            first_name: Some(first_name.to_owned()),
            last_name: None,
        }
    }

    /// A basic group.
    pub fn group(id: i64, title: &str) -> Self {
        Self::titled(id, ChatKind::Group, title, None)
    }

    /// A supergroup, public when it has a username.
    pub fn supergroup(id: i64, title: &str, username: Option<&str>) -> Self {
        Self::titled(id, ChatKind::Supergroup, title, username)
    }

    /// A channel, public when it has a username.
    pub fn channel(id: i64, title: &str, username: Option<&str>) -> Self {
        Self::titled(id, ChatKind::Channel, title, username)
    }

    fn titled(id: i64, kind: ChatKind, title: &str, username: Option<&str>) -> Self {
        Self {
            id,
            kind,
            title: Some(title.to_owned()),
            username: username.map(str::to_owned),
            first_name: None,
            last_name: None,
        }
    }

    /// Checks the ID sign and the name fields against the chat type.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.kind {
            ChatKind::Private if self.id <= 0 => {
                Err(format!("private chat {} must have a positive ID", self.id))
            }
            ChatKind::Private if self.first_name.is_none() => {
                Err(format!("private chat {} needs a first_name", self.id))
            }
            ChatKind::Private => Ok(()),
            _ if self.id >= 0 => Err(format!(
                "group or channel chat {} must have a negative ID",
                self.id
            )),
            _ if self.title.is_none() => Err(format!("chat {} needs a title", self.id)),
            _ => Ok(()),
        }
    }

    /// True for chats that `@username` can address: public supergroups and channels (the
    /// Bot API documents `@channelusername` only; a user's username is not a chat ID).
    pub(crate) fn public_username(&self) -> Option<&str> {
        match self.kind {
            ChatKind::Supergroup | ChatKind::Channel => self.username.as_deref(),
            _ => None,
        }
    }

    /// The `Chat` JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The other party of a private chat, as a `User`.
    pub(crate) fn counterpart(&self) -> Option<TelegramUser> {
        (self.kind == ChatKind::Private).then(|| TelegramUser {
            id: self.id,
            is_bot: false,
            first_name: self.first_name.clone().unwrap_or_default(),
            last_name: self.last_name.clone(),
            username: self.username.clone(),
            language_code: Some("en".to_owned()),
        })
    }
}

/// A message the bot sent through `sendMessage`, as recorded by the emulator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMessage {
    /// Chat it went to.
    pub chat_id: i64,
    /// Its ID within the chat.
    pub message_id: i64,
    /// The text after entity parsing (what the user sees).
    pub text: String,
    /// The `parse_mode` given, as given.
    pub parse_mode: Option<String>,
    /// Whether `disable_notification` was set.
    pub disable_notification: bool,
    /// The `Message` object returned to the caller.
    pub message: Value,
}

/// Builds a `Message` object. Channel posts carry `sender_chat` instead of `from`, as the
/// Bot API sends them.
pub(crate) fn message_json(
    message_id: i64,
    from: &TelegramUser,
    chat: &TelegramChat,
    date: i64,
    text: &str,
    entities: &[Value],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("message_id".into(), json!(message_id));
    if chat.kind == ChatKind::Channel {
        m.insert("sender_chat".into(), chat.to_json());
    } else {
        m.insert("from".into(), from.to_json());
    }
    m.insert("chat".into(), chat.to_json());
    m.insert("date".into(), json!(date));
    m.insert("text".into(), json!(text));
    if !entities.is_empty() {
        m.insert("entities".into(), Value::Array(entities.to_vec()));
    }
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn chat_json_leaves_unset_fields_out() {
        let chat = TelegramChat::private(42, "Ada", None);
        assert_eq!(
            chat.to_json(),
            json!({"id": 42, "type": "private", "first_name": "Ada"})
        );
        let group = TelegramChat::group(-5, "Ops");
        assert_eq!(
            group.to_json(),
            json!({"id": -5, "type": "group", "title": "Ops"})
        );
    }

    #[test]
    fn id_signs_are_checked() {
        assert!(TelegramChat::private(-1, "x", None).validate().is_err());
        assert!(TelegramChat::group(1, "x").validate().is_err());
        assert!(
            TelegramChat::channel(-100, "x", Some("c"))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn only_public_groups_and_channels_are_reachable_by_username() {
        assert_eq!(
            TelegramChat::private(1, "a", Some("ada")).public_username(),
            None
        );
        assert_eq!(
            TelegramChat::channel(-1, "c", Some("news")).public_username(),
            Some("news")
        );
    }
}
