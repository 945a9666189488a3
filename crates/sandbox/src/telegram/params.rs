//! Method parameters, from wherever the Bot API accepts them (saas-contracts.md §4.1): the
//! query string, an `application/x-www-form-urlencoded` body, or an `application/json`
//! body. Body values win over query values of the same name.
//!
//! As in the Bot API, every parameter is read as text first: a JSON number or boolean is
//! its literal, a JSON object or array its JSON text, and fields that take objects
//! (`reply_parameters`, `reply_markup`, `allowed_updates`, `entities`) accept either a
//! JSON value or a JSON-encoded string.
//!
//! Emulator choices: `multipart/form-data` (file uploads) is not emulated and answers
//! `400 Bad Request: multipart/form-data is not supported by the sandbox`; a JSON body that
//! is not a JSON object answers `400 Bad Request: can't parse JSON body`; a body with any
//! other content type is ignored, as if no parameters were sent.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Uri, header};
use serde_json::Value;

use super::envelope::ApiError;

/// The parameters of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params(BTreeMap<String, Value>);

impl Params {
    /// Collects the parameters of a request.
    pub(crate) fn from_request(
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut params = Self::default();
        if let Some(query) = uri.query() {
            params.add_form(query.as_bytes());
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        if content_type.starts_with("application/json") {
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
                return Err(ApiError::bad_request("can't parse JSON body"));
            };
            params.0.extend(map);
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            params.add_form(body);
        } else if content_type.starts_with("multipart/form-data") {
            return Err(ApiError::bad_request(
                "multipart/form-data is not supported by the sandbox",
            ));
        }
        Ok(params)
    }

    /// Parameters given directly (in-process use and unit tests).
    #[cfg(test)]
    pub(crate) fn from_json(value: Value) -> Self {
        match value {
            Value::Object(map) => Self(map.into_iter().collect()),
            _ => Self::default(),
        }
    }

    fn add_form(&mut self, raw: &[u8]) {
        // `Url::query_pairs` is the WHATWG form decoder (`+` is a space, %-escapes).
        let text = String::from_utf8_lossy(raw);
        let Ok(mut url) = reqwest::Url::parse("http://sandbox.invalid/") else {
            return;
        };
        url.set_query(Some(&text));
        for (k, v) in url.query_pairs() {
            self.0.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }

    /// The parameter as text (see the module doc); `None` when absent or `null`.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The Bot API's boolean reading: `true` (any case) or `1`.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.text(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// An integer parameter; `None` when absent or not an integer.
    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.text(name)?.trim().parse().ok()
    }

    /// An integer clamped to `min..=max`, `default` when absent or not an integer (the
    /// open-source Bot API server reads `limit`, `timeout` and `max_connections` this way).
    pub(crate) fn clamped(&self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        self.int(name).unwrap_or(default).clamp(min, max)
    }

    /// A JSON-valued parameter: a JSON value as is, or a string holding JSON.
    /// `Ok(None)` when absent; `Err(())` when a string is not valid JSON.
    pub(crate) fn json(&self, name: &str) -> Result<Option<Value>, ()> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
            Some(other) => Ok(Some(other.clone())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn query_form_and_json_all_work_and_the_body_wins() {
        let uri: Uri = "/bot1:a/sendMessage?chat_id=1&text=from+query"
            .parse()
            .unwrap();
        let p = Params::from_request(&uri, &HeaderMap::new(), b"").unwrap();
        assert_eq!(p.text("text").as_deref(), Some("from query"));

        let p = Params::from_request(
            &uri,
            &headers("application/x-www-form-urlencoded"),
            b"text=caf%C3%A9&disable_notification=True",
        )
        .unwrap();
        assert_eq!(p.text("text").as_deref(), Some("café"));
        assert!(p.flag("disable_notification"));

        let p = Params::from_request(
            &uri,
            &headers("application/json; charset=utf-8"),
            br#"{"chat_id": -100123, "reply_parameters": {"message_id": 4}}"#,
        )
        .unwrap();
        assert_eq!(p.int("chat_id"), Some(-100123));
        assert_eq!(
            p.json("reply_parameters"),
            Ok(Some(json!({"message_id": 4})))
        );
    }

    #[test]
    fn json_strings_are_parsed_and_bad_bodies_rejected() {
        let p = Params::from_json(json!({"allowed_updates": "[\"message\"]", "bad": "[x"}));
        assert_eq!(p.json("allowed_updates"), Ok(Some(json!(["message"]))));
        assert_eq!(p.json("bad"), Err(()));
        let uri: Uri = "/x".parse().unwrap();
        let err = Params::from_request(&uri, &headers("application/json"), b"[1]").unwrap_err();
        assert_eq!(err.description, "Bad Request: can't parse JSON body");
    }

    #[test]
    fn integers_clamp_like_the_server() {
        let p = Params::from_json(json!({"max_connections": 1000, "limit": "x"}));
        assert_eq!(p.clamped("max_connections", 40, 1, 100), 100);
        assert_eq!(p.clamped("limit", 100, 1, 100), 100);
    }
}
