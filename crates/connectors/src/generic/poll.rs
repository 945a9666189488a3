//! Settings of the generic REST poller (`type: http`, key `poll`): per entity a path, a
//! mode (`updated_since` or `page_cursor`) and JSON pointers (RFC 6901) to the records, the
//! record ID and the change time, so a new source needs no code.
//!
//! Guarantee: [`GenericPoll::validate`] rejects every setting the poller could not use at
//! startup, naming the full key (e.g. `connections.api.poll.entities.orders.path`), so a
//! bad pointer never surfaces as a silently empty poll.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_core::Secret;
use switchboard_core::config::ConfigError;

/// The poll settings of a generic connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericPoll {
    /// Scheme, host and optional base path, e.g. `https://api.example.com/v1`.
    pub base_url: String,
    /// Seconds between two polls.
    #[serde(default = "default_every_secs")]
    pub every_secs: u64,
    /// Credentials sent with every request, by reference.
    #[serde(default)]
    pub auth: Option<PollAuth>,
    /// Request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Entities by name (the `<entity>` of `sb.raw.<connection>.<entity>`).
    pub entities: BTreeMap<String, PollEntity>,
}

/// How requests authenticate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PollAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// A header of the API's choosing, e.g. `X-Api-Key`.
    Header {
        /// The header name.
        name: String,
        /// Its value.
        value: Secret,
    },
}

/// How an entity's changes are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollMode {
    /// Records changed at or after the cursor time, sent in a query parameter.
    UpdatedSince,
    /// An opaque cursor the API hands out with each page and takes back for the next.
    PageCursor,
}

/// How the `since` time is written in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2025-01-01T10:20:00Z` (also how string change times are read).
    #[default]
    Rfc3339,
    /// Unix seconds.
    Unix,
    /// Unix milliseconds.
    UnixMs,
}

/// One polled entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollEntity {
    /// Path under `base_url`, e.g. `/orders`.
    #[serde(default)]
    pub path: String,
    /// `updated_since` or `page_cursor`.
    pub mode: PollMode,
    /// Static query parameters sent on the first request of a walk, e.g. `limit: "100"`.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON pointer to the records array in the answer; `""` when the answer is the array.
    #[serde(default)]
    pub records_pointer: String,
    /// JSON pointer to the ID inside a record.
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer to the change time inside a record (required by `updated_since`;
    /// with `page_cursor` it makes event IDs follow versions).
    #[serde(default)]
    pub updated_pointer: Option<String>,
    /// `updated_since`: the query parameter carrying the cursor time. The API must return
    /// records changed **at or after** it (inclusive), or changes sharing the boundary time
    /// would be skipped.
    #[serde(default)]
    pub since_param: Option<String>,
    /// `updated_since`: how the cursor time is written and string times are read.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// `page_cursor`: JSON pointer to the next cursor in the answer (absent, null or empty
    /// at the end).
    #[serde(default)]
    pub next_cursor_pointer: Option<String>,
    /// `page_cursor`: the query parameter that sends the cursor back.
    #[serde(default)]
    pub cursor_param: Option<String>,
    /// Follow `Link: <…>; rel="next"` for further pages of one walk.
    #[serde(default)]
    pub link_pagination: bool,
}

impl GenericPoll {
    /// Checks what serde cannot: required keys per mode, pointer syntax, a usable URL.
    /// `key` is the dotted path of this `poll` block.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let base = reqwest::Url::parse(&self.base_url).map_err(|e| {
            ConfigError::invalid(format!("{key}.base_url"), format!("not a URL: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                format!("{key}.base_url"),
                "use an http or https URL",
            ));
        }
        if self.entities.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.entities"),
                "name at least one entity to poll",
            ));
        }
        for (name, entity) in &self.entities {
            let key = format!("{key}.entities.{name}");
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || name.is_empty()
            {
                return Err(ConfigError::invalid(
                    key,
                    "an entity name uses letters, digits, '-' or '_' (it names a topic)",
                ));
            }
            entity.validate(&key)?;
        }
        Ok(())
    }
}

impl PollEntity {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') {
            return Err(ConfigError::invalid(
                format!("{key}.path"),
                "required: the path under base_url, starting with '/', e.g. /orders",
            ));
        }
        pointer(key, "records_pointer", Some(&self.records_pointer))?;
        pointer(key, "id_pointer", Some(&self.id_pointer))?;
        pointer(key, "updated_pointer", self.updated_pointer.as_ref())?;
        pointer(
            key,
            "next_cursor_pointer",
            self.next_cursor_pointer.as_ref(),
        )?;
        if self.id_pointer.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.id_pointer"),
                "point at the ID inside a record, e.g. /id",
            ));
        }
        let required = |name: &str, value: Option<&String>, why: &str| match value {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(ConfigError::invalid(
                format!("{key}.{name}"),
                why.to_owned(),
            )),
        };
        match self.mode {
            PollMode::UpdatedSince => {
                required(
                    "updated_pointer",
                    self.updated_pointer.as_ref(),
                    "mode updated_since needs the pointer to the change time, e.g. /updated_at",
                )?;
                required(
                    "since_param",
                    self.since_param.as_ref(),
                    "mode updated_since needs the query parameter that takes the time, e.g. updated_since",
                )?;
            }
            PollMode::PageCursor => {
                required(
                    "next_cursor_pointer",
                    self.next_cursor_pointer.as_ref(),
                    "mode page_cursor needs the pointer to the next cursor, e.g. /next_cursor",
                )?;
                required(
                    "cursor_param",
                    self.cursor_param.as_ref(),
                    "mode page_cursor needs the query parameter that sends the cursor, e.g. cursor",
                )?;
            }
        }
        Ok(())
    }
}

/// A JSON pointer is empty (the whole document) or starts with `/`, and every `~` is an
/// escape (`~0` or `~1`).
fn pointer(key: &str, name: &str, value: Option<&String>) -> Result<(), ConfigError> {
    let Some(value) = value else {
        return Ok(());
    };
    let escapes_ok = value
        .split('~')
        .skip(1)
        .all(|rest| rest.starts_with('0') || rest.starts_with('1'));
    if (value.is_empty() || value.starts_with('/')) && escapes_ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        format!("{key}.{name}"),
        format!(
            "`{value}` is not a JSON pointer (RFC 6901): start with '/', e.g. /data/id, and write '~' as ~0, '/' as ~1"
        ),
    ))
}

fn default_every_secs() -> u64 {
    60
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_id_pointer() -> String {
    "/id".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(yaml: serde_json::Value) -> Result<GenericPoll, ConfigError> {
        let poll: GenericPoll = serde_json::from_value(yaml).unwrap();
        poll.validate("connections.api.poll")?;
        Ok(poll)
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_complete_config_passes() {
        let poll = parse(serde_json::json!({"base_url": "http://127.0.0.1:1/v1", "entities": {
            "orders": {"path": "/orders", "mode": "updated_since", "since_param": "since",
                       "records_pointer": "/data", "updated_pointer": "/updated_at", "time_format": "unix_ms"},
            "events": {"path": "/events", "mode": "page_cursor", "next_cursor_pointer": "/next",
                       "cursor_param": "after"}}}))
        .unwrap();
        assert_eq!(poll.entities["orders"].time_format, TimeFormat::UnixMs);
        assert_eq!(poll.entities["events"].id_pointer, "/id");
    }

    #[test]
    fn a_missing_path_names_the_key() {
        let e = parse(serde_json::json!({"base_url": "http://x", "entities": {
            "orders": {"mode": "updated_since", "since_param": "since", "updated_pointer": "/u"}}}))
        .unwrap_err();
        assert_eq!(key_of(e), "connections.api.poll.entities.orders.path");
    }

    #[test]
    fn a_bad_pointer_names_the_key() {
        let e = parse(serde_json::json!({"base_url": "http://x", "entities": {
            "orders": {"path": "/o", "mode": "updated_since", "since_param": "since",
                       "updated_pointer": "updated_at"}}}))
        .unwrap_err();
        assert_eq!(
            key_of(e),
            "connections.api.poll.entities.orders.updated_pointer"
        );
        let e = parse(serde_json::json!({"base_url": "http://x", "entities": {
            "orders": {"path": "/o", "mode": "page_cursor", "cursor_param": "c",
                       "next_cursor_pointer": "/a~2b"}}}))
        .unwrap_err();
        assert_eq!(
            key_of(e),
            "connections.api.poll.entities.orders.next_cursor_pointer"
        );
    }

    #[test]
    fn each_mode_names_what_it_lacks() {
        let e = parse(serde_json::json!({"base_url": "http://x", "entities": {
            "orders": {"path": "/o", "mode": "updated_since", "updated_pointer": "/u"}}}))
        .unwrap_err();
        assert_eq!(
            key_of(e),
            "connections.api.poll.entities.orders.since_param"
        );
        let e = parse(serde_json::json!({"base_url": "http://x", "entities": {
            "events": {"path": "/e", "mode": "page_cursor", "next_cursor_pointer": "/n"}}}))
        .unwrap_err();
        assert_eq!(
            key_of(e),
            "connections.api.poll.entities.events.cursor_param"
        );
        let e = parse(serde_json::json!({"base_url": "ftp://x", "entities": {}})).unwrap_err();
        assert_eq!(key_of(e), "connections.api.poll.base_url");
    }
}
