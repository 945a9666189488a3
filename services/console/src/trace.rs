//! The record trace: everything Switchboard holds about one source record ID, read from the
//! topics: its raw change events, the canonical records made from them (`source_id`), every
//! call made to a target API for it (`sb.audit`, keyed by the source record ID), the xref
//! links to native IDs at every target, and its DLQ entries.
//!
//! Guarantee: read-only, from the topics themselves (no cache), in pipeline order with the
//! API calls placed by time among the other stages; raw payloads are shown with
//! secret-looking fields masked and cut to a readable length (audit records are redacted by
//! their writer already).

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde::Serialize;
use switchboard_core::Config;
use switchboard_core::audit::{ApiCall, redact_body, redact_url};
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::split_endpoint;
use switchboard_core::envelope::ChangeEvent;
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::kafka::read_table;
use switchboard_core::republish::{header, scan};
use switchboard_core::topics::Topics;

/// Longest payload shown.
const PAYLOAD_MAX: usize = 2000;

/// One stage of a record's way through Switchboard.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `raw`, `canonical`, `call`, `target` or `dlq`.
    pub stage: &'static str,
    /// Topic it was read from.
    pub topic: String,
    /// `<partition>/<offset>` (or the xref key for targets).
    pub position: String,
    /// Record time, epoch ms.
    pub at: Option<i64>,
    /// A one-line summary.
    pub summary: String,
    /// The payload or details, redacted.
    pub detail: serde_json::Value,
}

/// The trace of one source record ID.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// The ID asked for.
    pub record_id: String,
    /// Canonical IDs found for it.
    pub canonical_ids: Vec<String>,
    /// Every stage found, in pipeline order.
    pub stages: Vec<Stage>,
}

/// Traces `record_id` through the topics of `config`'s flows.
pub async fn trace(
    config: &Config,
    codec: &AvroCodec,
    record_id: &str,
) -> Result<Trace, ClassifiedError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let mut stages = Vec::new();
    let mut raw_topics: Vec<String> = config
        .flows
        .iter()
        .filter_map(|f| split_endpoint(&f.from).map(|(c, e)| topics.raw(c, e)))
        .collect();
    raw_topics.sort();
    raw_topics.dedup();
    for topic in &raw_topics {
        let id = record_id.to_owned();
        for m in read(config, topic, move |m| m.key() == Some(id.as_bytes())).await? {
            let event: Option<ChangeEvent> = match m.payload() {
                Some(p) => codec.decode(p).await.ok(),
                None => None,
            };
            let summary = event.as_ref().map_or("undecodable".to_owned(), |e| {
                format!("{:?} from {} ({})", e.operation, e.connection, e.entity)
            });
            let detail = event.map_or(serde_json::Value::Null, |e| {
                let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
                    .map(|p| redact(&p))
                    .unwrap_or_default();
                serde_json::json!({
                    "event_id": e.event_id, "received_at": e.received_at,
                    "api_version": e.api_version, "payload": shown(payload),
                })
            });
            stages.push(stage("raw", &m, summary, detail));
        }
    }
    let mut entities: Vec<&str> = config.flows.iter().map(|f| f.to.as_str()).collect();
    entities.sort();
    entities.dedup();
    let mut canonical_ids = Vec::new();
    for entity in entities {
        let topic = topics.canonical(entity);
        for m in read(config, &topic, |_| true).await? {
            let Some(p) = m.payload() else { continue };
            let Ok(value) = codec.decode::<serde_json::Value>(p).await else {
                continue;
            };
            if value["source_id"].as_str() != Some(record_id) {
                continue;
            }
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            if !canonical_ids.contains(&id) {
                canonical_ids.push(id.clone());
            }
            let summary = format!("{entity} {id} (mapping {})", value["mapping"]);
            stages.push(stage("canonical", &m, summary, redact(&value)));
        }
    }
    let xref = {
        let (kafka, topic) = (config.kafka.clone(), topics.xref());
        tokio::task::spawn_blocking(move || read_table(&kafka, &topic, Duration::from_secs(30)))
            .await
            .map_err(join_error)??
    };
    let mut links: Vec<(&String, &Vec<u8>)> = xref
        .iter()
        .filter(|(k, _)| k.starts_with("target/"))
        .filter(|(k, _)| {
            canonical_ids
                .iter()
                .any(|id| k.ends_with(&format!("/{id}")))
        })
        .collect();
    links.sort();
    for (key, value) in links {
        let value: serde_json::Value = serde_json::from_slice(value).unwrap_or_default();
        stages.push(Stage {
            stage: "target",
            topic: topics.xref(),
            position: key.clone(),
            at: None,
            summary: format!("delivered: native id {}", value["native_id"]),
            detail: value,
        });
    }
    let mut dlqs: Vec<String> = vec![topics.dlq("transformer")];
    dlqs.extend(config.connections.keys().map(|c| topics.dlq(c)));
    let mut keys = canonical_ids.clone();
    keys.push(record_id.to_owned());
    for topic in dlqs {
        let wanted = keys.clone();
        let found = read(config, &topic, move |m| {
            m.key()
                .is_some_and(|k| wanted.iter().any(|w| w.as_bytes() == k))
        })
        .await?;
        for m in found {
            let summary = format!(
                "{} {}: {}",
                header(&m, "sb.error.class").unwrap_or_else(|| "parked".to_owned()),
                header(&m, "sb.error.stage").unwrap_or_default(),
                header(&m, "sb.error.message").unwrap_or_default()
            );
            let detail = serde_json::json!({
                "attempts": header(&m, "sb.error.attempts"),
                "first_failed_at": header(&m, "sb.first.failed.at"),
                "parked": header(&m, "sb.parked").is_some(),
            });
            stages.push(stage("dlq", &m, summary, detail));
        }
    }
    let id = record_id.to_owned();
    let calls = read(config, &topics.audit(), move |m| {
        m.key() == Some(id.as_bytes())
    })
    .await?
    .iter()
    .filter_map(|m| {
        let call: ApiCall = serde_json::from_slice(m.payload()?).ok()?;
        Some(call_stage(m, call))
    })
    .collect();
    Ok(Trace {
        record_id: record_id.to_owned(),
        canonical_ids,
        stages: merge_calls(stages, calls),
    })
}

/// A target API call as a stage. URL and bodies are redacted again: the writer did so
/// already, but a page must never show a secret even if a writer slipped.
fn call_stage(m: &OwnedMessage, mut call: ApiCall) -> Stage {
    call.url = redact_url(&call.url);
    call.request_body = call.request_body.as_deref().map(redact_body);
    call.response_body = call.response_body.as_deref().map(redact_body);
    let answer = match (call.status, &call.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => format!("no answer ({error})"),
        (None, None) => "no answer".to_owned(),
    };
    let summary = format!(
        "{}: {} {} → {answer} in {} ms (attempt {})",
        call.connection, call.method, call.url, call.duration_ms, call.attempt
    );
    Stage {
        stage: "call",
        topic: m.topic().to_owned(),
        position: format!("{}/{}", m.partition(), m.offset()),
        at: Some(call.at),
        summary,
        detail: serde_json::to_value(&call).unwrap_or_default(),
    }
}

/// `stages` (pipeline order) with `calls` placed in time order: each call after the last
/// stage that happened at or before it. Stages without a time (xref links) keep their place,
/// so calls made before a link was recorded come before it.
pub fn merge_calls(mut stages: Vec<Stage>, mut calls: Vec<Stage>) -> Vec<Stage> {
    calls.sort_by_key(|c| c.at);
    for call in calls {
        let at = call.at.unwrap_or(i64::MAX);
        let after = stages
            .iter()
            .rposition(|s| s.at.is_some_and(|t| t <= at))
            .map_or(0, |i| i + 1);
        stages.insert(after, call);
    }
    stages
}

async fn read(
    config: &Config,
    topic: &str,
    keep: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool + Send + 'static,
) -> Result<Vec<OwnedMessage>, ClassifiedError> {
    let (kafka, topic) = (config.kafka.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || scan(&kafka, &topic, Duration::from_secs(30), keep))
        .await
        .map_err(join_error)?
}

fn join_error(e: tokio::task::JoinError) -> ClassifiedError {
    ClassifiedError::new(ErrorClass::Transient, e.to_string())
}

fn stage(
    name: &'static str,
    m: &OwnedMessage,
    summary: String,
    detail: serde_json::Value,
) -> Stage {
    Stage {
        stage: name,
        topic: m.topic().to_owned(),
        position: format!("{}/{}", m.partition(), m.offset()),
        at: m.timestamp().to_millis(),
        summary,
        detail,
    }
}

/// Masks values of fields whose names suggest credentials.
pub fn redact(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = ["token", "secret", "password", "authorization", "api_key"]
                        .iter()
                        .any(|s| lower.contains(s));
                    let v = if secret {
                        Value::from("***")
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The payload as JSON, or its first characters when it is long.
fn shown(payload: serde_json::Value) -> serde_json::Value {
    let text = payload.to_string();
    if text.chars().count() > PAYLOAD_MAX {
        serde_json::Value::from(cut(&text))
    } else {
        payload
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(PAYLOAD_MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: &'static str, at: Option<i64>) -> Stage {
        Stage {
            stage,
            topic: String::new(),
            position: String::new(),
            at,
            summary: String::new(),
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn calls_are_placed_by_time_among_the_stages() {
        let stages = vec![
            at("raw", Some(10)),
            at("canonical", Some(20)),
            at("target", None),
            at("dlq", Some(50)),
        ];
        let calls = vec![
            at("call", Some(60)),
            at("call", Some(30)),
            at("call", Some(25)),
        ];
        let merged = merge_calls(stages, calls);
        let order: Vec<(&str, Option<i64>)> = merged.iter().map(|s| (s.stage, s.at)).collect();
        assert_eq!(
            order,
            [
                ("raw", Some(10)),
                ("canonical", Some(20)),
                ("call", Some(25)),
                ("call", Some(30)),
                ("target", None),
                ("dlq", Some(50)),
                ("call", Some(60)),
            ]
        );
    }
}
