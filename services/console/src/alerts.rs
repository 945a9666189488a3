//! Alerts from `sb.alerts` to a Telegram chat through the Bot API (`sendMessage`).
//!
//! Guarantee: each alert reaches the chat once per transition: a `firing` event for a
//! (connection, kind) that is already firing is not sent again, and a `resolved` event is
//! sent only if it was not resolved already. The console reads `sb.alerts` in its own
//! group (`<prefix>.console.alerts`), storing an offset only after Telegram accepted the
//! message (at-least-once); a group without a committed offset starts at the end, so a
//! first start does not replay old alerts. The bot token is part of the URL and is never
//! logged.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::json;
use switchboard_core::config::{ConsoleAlerts, ConsoleConfig};
use switchboard_core::kafka::client_config;
use switchboard_core::topics::Topics;
use switchboard_core::{Config, Secret};
use tokio_util::sync::CancellationToken;

use crate::overview::Alert;

/// Why alerts cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The `console.alerts.telegram` connection is unusable.
    #[error("console.alerts.telegram: {0}")]
    Connection(String),
    /// Kafka refused the alerts consumer.
    #[error("alerts consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// A Telegram bot that sends to one chat.
pub struct TelegramSender {
    base_url: String,
    token: Secret,
    chat_id: i64,
    http: reqwest::Client,
}

impl TelegramSender {
    /// The sender configured by `console.alerts`.
    pub fn from_config(config: &Config, alerts: &ConsoleAlerts) -> Result<Self, AlertError> {
        let connection = config
            .connections
            .get(&alerts.telegram)
            .ok_or_else(|| AlertError::Connection("no such connection".to_owned()))?;
        let settings: switchboard_connectors::telegram::TelegramConnection =
            serde_json::from_value(serde_json::Value::Object(connection.settings.clone()))
                .map_err(|e| AlertError::Connection(e.to_string()))?;
        let token = settings
            .bot_token
            .ok_or_else(|| AlertError::Connection("set bot_token".to_owned()))?;
        Ok(Self {
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            token,
            chat_id: alerts.chat_id,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| AlertError::Connection(e.to_string()))?,
        })
    }

    /// Sends `text`, retrying transient failures and waiting out flood control.
    pub async fn send(&self, text: &str) -> Result<(), String> {
        let url = format!("{}/bot{}/sendMessage", self.base_url, self.token.expose());
        let body = json!({"chat_id": self.chat_id, "text": text});
        let mut last = String::new();
        for attempt in 0..5u32 {
            match self.http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let answer: serde_json::Value = r.json().await.unwrap_or_default();
                    let wait = answer["parameters"]["retry_after"].as_u64();
                    last = format!("telegram answered {status}: {}", answer["description"]);
                    if status.is_client_error() && status.as_u16() != 429 {
                        return Err(last);
                    }
                    let secs = wait.unwrap_or(1 << attempt).min(30);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                }
                // reqwest's error text would include the URL, which holds the token.
                Err(e) => {
                    last = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection failed"
                    }
                    .to_owned();
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        Err(last)
    }
}

/// Which transitions have been sent, per (connection, kind).
#[derive(Debug, Default)]
pub struct Dedupe {
    last: HashMap<(String, String), String>,
}

impl Dedupe {
    /// Whether `alert` is news (and remembers it).
    pub fn is_new(&mut self, alert: &Alert) -> bool {
        let key = (alert.connection.clone(), alert.kind.clone());
        let news = match (
            self.last.get(&key).map(String::as_str),
            alert.status.as_str(),
        ) {
            (Some("firing"), "firing") => false,
            (Some("resolved") | None, "resolved") if self.last.contains_key(&key) => false,
            _ => true,
        };
        self.last.insert(key, alert.status.clone());
        news
    }
}

/// The chat message for `alert`.
pub fn text(alert: &Alert) -> String {
    let head = if alert.status == "resolved" {
        "RESOLVED"
    } else {
        "FIRING"
    };
    let mut out = format!("[{head}] {} on {}", alert.kind, alert.connection);
    if !alert.message.is_empty() {
        out.push_str(&format!(": {}", alert.message));
    }
    out
}

/// Forwards alerts until `shutdown`.
pub async fn forward(
    config: Config,
    console: ConsoleConfig,
    ready: tokio::sync::oneshot::Sender<()>,
    shutdown: CancellationToken,
) -> Result<(), AlertError> {
    let Some(alerts) = &console.alerts else {
        let _ = ready.send(());
        return Ok(());
    };
    let sender = TelegramSender::from_config(&config, alerts)?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let consumer: StreamConsumer = client_config(&config.kafka)
        .set(
            "group.id",
            format!("{}.console.alerts", config.kafka.topic_prefix),
        )
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("session.timeout.ms", "10000")
        .create()?;
    consumer.subscribe(&[&topics.alerts()])?;
    let mut dedupe = Dedupe::default();
    let mut ready = Some(ready);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m,
            _ = tokio::time::sleep(Duration::from_millis(200)), if ready.is_some() => {
                // Ready once the group has its partitions (and its start offsets).
                if consumer.assignment().is_ok_and(|a| a.count() > 0)
                    && let Some(r) = ready.take()
                {
                    let _ = r.send(());
                }
                continue;
            }
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "alerts consumer error");
                continue;
            }
        };
        let alert: Option<Alert> = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok());
        if let Some(alert) = alert
            && dedupe.is_new(&alert)
        {
            match sender.send(&text(&alert)).await {
                Ok(()) => {
                    metrics::counter!("switchboard_alerts_sent_total", "connection" => alert.connection.clone()).increment(1);
                    tracing::info!(connection = %alert.connection, kind = %alert.kind, status = %alert.status, "alert sent");
                }
                Err(reason) => {
                    tracing::warn!(connection = %alert.connection, kind = %alert.kind, reason, "alert not sent");
                }
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&message) {
            tracing::warn!(error = %e, "alerts offset not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str) -> Alert {
        Alert {
            kind: "auth_failed".into(),
            connection: "crm".into(),
            status: status.into(),
            message: String::new(),
            at: 0,
        }
    }

    #[test]
    fn repeated_firing_and_repeated_resolve_are_sent_once() {
        let mut d = Dedupe::default();
        assert!(d.is_new(&alert("firing")));
        assert!(!d.is_new(&alert("firing")));
        assert!(d.is_new(&alert("resolved")));
        assert!(!d.is_new(&alert("resolved")));
        assert!(d.is_new(&alert("firing")));
    }
}
