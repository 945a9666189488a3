//! Any REST API as a sink target (`type: http` with a `target:` block): upsert by
//! configuration, no code.
//!
//! Check-before-create: the sink's xref first; else `search_path` (with `{key}` replaced by
//! the record's `match_field`, URL-encoded) and the ID at `search_pointer` in the answer;
//! then `update_method update_path` (`{id}` replaced) or `method path` (create) and the ID
//! at `id_pointer` in the answer. A record the source deleted is deleted with
//! `delete_method delete_path` (default `DELETE` on `update_path`). The body is the
//! canonical record's fields as JSON plus `switchboard_id` (the canonical ID), so a target
//! that stores it can be searched by it.
//! Answers are classified by [`crate::http`] (generic reading: `Retry-After` honoured).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use switchboard_core::Secret;
use switchboard_core::config::ConfigError;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use crate::http::{check_paced, network_error, send};
use crate::pace::Gate;

/// The `target:` block of a generic connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericTarget {
    /// API address, e.g. `https://api.example.com`.
    pub base_url: String,
    /// Method of a create (default `POST`).
    #[serde(default = "default_create_method")]
    pub method: String,
    /// Path of a create, e.g. `/v1/contacts`.
    pub path: String,
    /// Method of an update (default `PUT`).
    #[serde(default = "default_update_method")]
    pub update_method: String,
    /// Path of an update with `{id}`, e.g. `/v1/contacts/{id}`.
    pub update_path: String,
    /// Method of a delete (default `DELETE`).
    #[serde(default = "default_delete_method")]
    pub delete_method: String,
    /// Path of a delete with `{id}` (default: `update_path`).
    #[serde(default)]
    pub delete_path: Option<String>,
    /// Search path with `{key}`, e.g. `/v1/contacts?email={key}`; none: no search.
    #[serde(default)]
    pub search_path: Option<String>,
    /// JSON pointer to the found record's ID in the search answer, e.g. `/items/0/id`.
    #[serde(default)]
    pub search_pointer: Option<String>,
    /// Canonical field the search key comes from (default `id`: the Switchboard ID).
    #[serde(default = "default_match_field")]
    pub match_field: String,
    /// JSON pointer to the new record's ID in a create answer (default `/id`).
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// Bearer token, by reference (`${env:…}`, `${file:…}`).
    #[serde(default)]
    pub bearer: Option<Secret>,
    /// Another auth header: name and secret value.
    #[serde(default)]
    pub header: Option<AuthHeader>,
}

/// A named header carrying a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthHeader {
    /// Header name, e.g. `X-Api-Key`.
    pub name: String,
    /// Its value, by reference.
    pub value: Secret,
}

fn default_create_method() -> String {
    "POST".to_owned()
}
fn default_update_method() -> String {
    "PUT".to_owned()
}
fn default_delete_method() -> String {
    "DELETE".to_owned()
}
fn default_match_field() -> String {
    "id".to_owned()
}
fn default_id_pointer() -> String {
    "/id".to_owned()
}

impl GenericTarget {
    /// Checks the settings, naming the bad key under `at` (e.g. `connections.x.target`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        for (key, method) in [
            ("method", &self.method),
            ("update_method", &self.update_method),
            ("delete_method", &self.delete_method),
        ] {
            if Method::from_bytes(method.as_bytes()).is_err() {
                return Err(ConfigError::invalid(
                    format!("{at}.{key}"),
                    "not an HTTP method",
                ));
            }
        }
        if !self.base_url.starts_with("http://") && !self.base_url.starts_with("https://") {
            return Err(ConfigError::invalid(
                format!("{at}.base_url"),
                "must start with http:// or https://",
            ));
        }
        if !self.update_path.contains("{id}") {
            return Err(ConfigError::invalid(
                format!("{at}.update_path"),
                "must contain `{id}`, where the record's ID goes",
            ));
        }
        if self
            .delete_path
            .as_ref()
            .is_some_and(|p| !p.contains("{id}"))
        {
            return Err(ConfigError::invalid(
                format!("{at}.delete_path"),
                "must contain `{id}`, where the record's ID goes",
            ));
        }
        if let Some(search) = &self.search_path {
            if !search.contains("{key}") {
                return Err(ConfigError::invalid(
                    format!("{at}.search_path"),
                    "must contain `{key}`, where the match value goes",
                ));
            }
            if self.search_pointer.is_none() {
                return Err(ConfigError::invalid(
                    format!("{at}.search_pointer"),
                    "a search needs the JSON pointer of the found ID, e.g. /items/0/id",
                ));
            }
        }
        for (key, pointer) in [
            ("id_pointer", Some(&self.id_pointer)),
            ("search_pointer", self.search_pointer.as_ref()),
        ] {
            if pointer.is_some_and(|p| !p.starts_with('/')) {
                return Err(ConfigError::invalid(
                    format!("{at}.{key}"),
                    "a JSON pointer starts with `/`",
                ));
            }
        }
        Ok(())
    }
}

/// A writer for one generic target.
pub struct GenericWriter {
    http: reqwest::Client,
    settings: GenericTarget,
    gate: Gate,
}

impl GenericWriter {
    /// A writer for `settings` (validated at config load).
    pub fn new(settings: GenericTarget) -> Result<Self, ClassifiedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            settings,
            gate: Gate::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &GenericTarget {
        &self.settings
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClassifiedError> {
        self.gate.ready().await;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ClassifiedError::new(ErrorClass::Data, "target method is not HTTP"))?;
        let what = format!("http target {method}");
        let url = format!("{}{path}", self.settings.base_url.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method, url)
            .header("accept", "application/json");
        if let Some(bearer) = &self.settings.bearer {
            request = request.bearer_auth(bearer.expose());
        }
        if let Some(header) = &self.settings.header {
            request = request.header(header.name.as_str(), header.value.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = send(request).await.map_err(|e| network_error(&what, &e))?;
        let answer = check_paced(&crate::http::Generic, &what, answer, &self.gate)?;
        Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
    }

    /// The ID of the record whose match field is `key`, if search is configured.
    pub async fn find(&self, key: &str) -> Result<Option<String>, ClassifiedError> {
        let (Some(path), Some(pointer)) =
            (&self.settings.search_path, &self.settings.search_pointer)
        else {
            return Ok(None);
        };
        let path = path.replace("{key}", &encode(key));
        let answer = self.call("GET", &path, None).await?;
        Ok(answer.pointer(pointer).and_then(id_text))
    }

    /// Creates the record; its ID.
    pub async fn create(&self, body: &Value) -> Result<String, ClassifiedError> {
        let answer = self
            .call(&self.settings.method, &self.settings.path, Some(body))
            .await?;
        answer
            .pointer(&self.settings.id_pointer)
            .and_then(id_text)
            .ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Transient,
                    format!(
                        "http target: no ID at {} in the create answer",
                        self.settings.id_pointer
                    ),
                )
            })
    }

    /// Deletes record `id`; one that is already gone answers a `not_found` error.
    pub async fn delete(&self, id: &str) -> Result<(), ClassifiedError> {
        let path = self
            .settings
            .delete_path
            .as_deref()
            .unwrap_or(&self.settings.update_path)
            .replace("{id}", &encode(id));
        self.call(&self.settings.delete_method, &path, None)
            .await
            .map(|_| ())
    }

    /// Updates record `id`.
    pub async fn update(&self, id: &str, body: &Value) -> Result<(), ClassifiedError> {
        let path = self.settings.update_path.replace("{id}", &encode(id));
        self.call(&self.settings.update_method, &path, Some(body))
            .await
            .map(|_| ())
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target(extra: &str) -> GenericTarget {
        let yaml = format!(
            "{{\"base_url\": \"http://127.0.0.1:1\", \"path\": \"/c\", \"update_path\": \"/c/{{id}}\"{extra}}}"
        );
        serde_json::from_str(&yaml).unwrap()
    }

    fn bad_key(t: &GenericTarget) -> String {
        match t.validate("connections.x.target").unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn settings_name_the_bad_key() {
        assert!(target("").validate("t").is_ok());
        let mut t = target("");
        t.update_path = "/c".into();
        assert_eq!(bad_key(&t), "connections.x.target.update_path");
        let t = target(r#", "search_path": "/c?email={key}""#);
        assert_eq!(bad_key(&t), "connections.x.target.search_pointer");
        let t = target(r#", "search_path": "/c?email={key}", "search_pointer": "items/0/id""#);
        assert_eq!(bad_key(&t), "connections.x.target.search_pointer");
        let t = target(r#", "method": "PO ST""#);
        assert_eq!(bad_key(&t), "connections.x.target.method");
        assert!(
            serde_json::from_str::<GenericTarget>(
                r#"{"base_url": "x", "path": "/", "update_path": "/", "idpointer": "/id"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn keys_are_url_encoded() {
        assert_eq!(encode("a b@c.d"), "a%20b%40c.d");
    }
}
