//! The audit contract: every call Switchboard makes to a SaaS API, and every delivery
//! outcome per target, as JSON records on two topics that the console reads.
//!
//! - `<prefix>.audit` ([`ApiCall`]), keyed by the source record ID the call was made for
//!   (or by the connection for calls that serve no one record, such as a token refresh or a
//!   poll page). Retention-limited (7 days by default).
//! - `<prefix>.deliveries` ([`DeliveryOutcome`]), keyed `<canonical id>/<target connection>`
//!   and compacted: the latest outcome of each record at each target. A flow instance (one
//!   canonical record routed to several targets) is the set of these records with one
//!   canonical ID.
//!
//! Guarantee: URLs and bodies are redacted before they are written (query parameters and
//! JSON fields with secret-looking names become `***`, bearer tokens are masked, bodies are
//! cut to [`MAX_AUDIT_BODY`] bytes). Writing audit records never blocks or fails a delivery:
//! it is best-effort, and what it could not write is counted.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::topics::Topics;

/// Longest request or response body kept in an audit record.
pub const MAX_AUDIT_BODY: usize = 4096;

/// Query-parameter and JSON-field names whose values are never written.
const SECRET_NAMES: &[&str] = &[
    "token",
    "secret",
    "password",
    "authorization",
    "api_key",
    "apikey",
    "credential",
];

/// One HTTP call to a SaaS API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiCall {
    /// When the request was sent, epoch ms.
    pub at: i64,
    /// The service that made it: `sink`, `poller`, …
    pub service: String,
    /// The connection called.
    pub connection: String,
    /// The source record ID the call was made for (the audit topic's key), if any.
    pub record_id: Option<String>,
    /// The canonical record ID, when the call delivers one.
    pub canonical_id: Option<String>,
    /// Delivery attempt of the record, from 1.
    pub attempt: u32,
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL, redacted by [`redact_url`].
    pub url: String,
    /// The HTTP status, or `None` when no answer came (timeout, connection refused).
    pub status: Option<u16>,
    /// From sending the request to the end of the answer's body.
    pub duration_ms: u64,
    /// The request body, redacted by [`redact_body`].
    pub request_body: Option<String>,
    /// The response body, redacted by [`redact_body`].
    pub response_body: Option<String>,
    /// Why no answer came, when `status` is `None`.
    pub error: Option<String>,
}

/// Where a record stands at one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// The target acknowledged the record (created, updated or nothing to do).
    Delivered,
    /// The record is in a retry tier, waiting for its next attempt.
    Retrying,
    /// The record is in the sink's DLQ.
    DeadLettered,
    /// An operator discarded the record from the DLQ.
    Discarded,
}

/// The latest outcome of one canonical record at one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryOutcome {
    /// When the outcome happened, epoch ms.
    pub at: i64,
    /// The canonical record ID.
    pub canonical_id: String,
    /// The canonical entity (`order`, `contact`, …).
    pub entity: String,
    /// The source record ID (`source_id` of the canonical record).
    pub record_id: Option<String>,
    /// The target connection.
    pub connection: String,
    /// Where the record stands there.
    pub state: DeliveryState,
    /// The target's native ID, once delivered.
    pub native_id: Option<String>,
    /// Why it is not delivered (error class and redacted reason), if it is not.
    pub reason: Option<String>,
    /// When the source changed the record (its `source_updated_at`), epoch ms, if known:
    /// `at - source_at` of a delivery is the record's latency from source to target.
    #[serde(default)]
    pub source_at: Option<i64>,
}

impl DeliveryOutcome {
    /// The record's key on `<prefix>.deliveries`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.canonical_id, self.connection)
    }
}

/// `url` with the values of secret-looking query parameters replaced by `***`, and any
/// `/bot<token>/` path segment (Telegram) masked.
pub fn redact_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.find("/bot") {
        Some(i) => {
            let rest = &base[i + 4..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}/bot***{}", &base[..i], &rest[end..])
        }
        None => base.to_owned(),
    };
    if query.is_empty() {
        return base;
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// A body fit for the audit topic: JSON values under secret-looking keys become `***`,
/// form fields likewise, bearer tokens in text are masked, and the result is cut at
/// [`MAX_AUDIT_BODY`] bytes.
pub fn redact_body(body: &str) -> String {
    let mut text = if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) {
        mask(&mut value);
        value.to_string()
    } else if body.contains('=') && !body.contains(char::is_whitespace) {
        // application/x-www-form-urlencoded (OAuth token requests).
        redact_url(&format!("?{body}"))[1..].to_owned()
    } else {
        body.split_whitespace()
            .scan(false, |after_bearer, word| {
                let out = if *after_bearer { "***" } else { word };
                *after_bearer = word.eq_ignore_ascii_case("bearer");
                Some(out.to_owned())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if text.len() > MAX_AUDIT_BODY {
        let cut = (0..=MAX_AUDIT_BODY)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    // An OAuth authorization code; `postal_code` and the like are data.
    name == "code" || SECRET_NAMES.iter().any(|s| name.contains(s))
}

fn mask(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && !v.is_null() {
                    *v = serde_json::Value::from("***");
                } else {
                    mask(v);
                }
            }
        }
        serde_json::Value::Array(list) => list.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Writes API calls to `<prefix>.audit` without waiting for Kafka; cheap to clone. What
/// cannot be written is counted in `switchboard_audit_dropped_total`.
#[derive(Clone)]
pub struct AuditLog {
    producer: FutureProducer,
    topic: Arc<str>,
}

impl AuditLog {
    /// A writer with its own producer.
    pub fn new(config: &KafkaConfig, topics: &Topics) -> Result<Self, rdkafka::error::KafkaError> {
        // Like `kafka::producer`, with a small queue: while the broker is away, calls go on
        // and their records would otherwise pile up in memory (librdkafka allows 1 GiB);
        // past the bound they are dropped and counted instead.
        let producer = crate::kafka::idempotent(config, Duration::from_secs(30), 20)
            .set("queue.buffering.max.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .create()?;
        Ok(Self {
            producer,
            topic: topics.audit().into(),
        })
    }

    /// The audit topic, kept 7 days; both the sink and the poller create it.
    pub fn topic_spec(&self) -> crate::kafka::TopicSpec {
        crate::kafka::TopicSpec::new(
            self.topic.to_string(),
            crate::kafka::Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
        )
    }

    /// Queues `call` without waiting; a refusal now or a failure later is counted. Must be
    /// called inside a Tokio runtime.
    pub fn write(&self, call: &ApiCall) {
        let connection = call.connection.clone();
        let dropped = move || {
            metrics::counter!("switchboard_audit_dropped_total", "connection" => connection)
                .increment(1);
        };
        let Ok(json) = serde_json::to_vec(call) else {
            return dropped();
        };
        let key = call.record_id.as_deref().unwrap_or(&call.connection);
        let record = FutureRecord::to(&self.topic).key(key).payload(&json);
        match self.producer.send_result(record) {
            Ok(ack) => {
                tokio::spawn(async move {
                    if !matches!(ack.await, Ok(Ok(_))) {
                        dropped();
                    }
                });
            }
            Err((e, _)) => {
                tracing::debug!(connection = %call.connection, error = %e, "audit record dropped");
                dropped();
            }
        }
    }

    /// Sends what is still queued, for at most `wait` (at shutdown).
    pub async fn flush(&self, wait: Duration) {
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(wait))).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "audit records not flushed at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_secrets_and_bot_tokens_are_masked_in_urls() {
        assert_eq!(
            redact_url("https://x.pipedrive.com/api/v2/persons?api_token=abc123&limit=5"),
            "https://x.pipedrive.com/api/v2/persons?api_token=***&limit=5"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9/bot4242:secret/sendMessage"),
            "http://127.0.0.1:9/bot***/sendMessage"
        );
        assert_eq!(redact_url("https://a/b?x=1"), "https://a/b?x=1");
    }

    #[test]
    fn bodies_lose_their_secrets_and_are_cut() {
        let json = redact_body(r#"{"name":"Ada","access_token":"t0k","nested":{"password":"p"}}"#);
        assert!(!json.contains("t0k") && !json.contains("\"p\""), "{json}");
        assert!(json.contains("Ada"));
        let form = redact_body("grant_type=refresh_token&refresh_token=r1&client_secret=s2");
        assert!(!form.contains("r1") && !form.contains("s2"), "{form}");
        assert!(form.contains("grant_type=refresh_token"));
        assert_eq!(redact_body("Bearer abc def"), "Bearer *** def");
        assert!(redact_body(&"x".repeat(10_000)).len() <= MAX_AUDIT_BODY + 3);
    }
}
