//! What the sink tells operators about a target connection: its state in `sb.status`
//! (compacted, keyed by connection) and alert events in `sb.alerts` (firing, then resolved).
//! The console reads both; alerts carry no secrets, only the redacted error message.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::json;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::kafka_error;

/// The state of a target connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Delivering.
    Ok,
    /// The target refused the credentials, also after a refresh: nothing is sent until
    /// they change.
    PausedAuth,
    /// The target looks down: consumption waits.
    CircuitOpen,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::PausedAuth => "paused_auth",
            Self::CircuitOpen => "circuit_open",
        }
    }

    fn alert(self) -> Option<&'static str> {
        match self {
            Self::Ok => None,
            Self::PausedAuth => Some("auth_failed"),
            Self::CircuitOpen => Some("target_down"),
        }
    }
}

/// Writes one connection's status and alerts.
pub(crate) struct Status {
    connection: String,
    status_topic: String,
    alerts_topic: String,
    producer: FutureProducer,
    state: State,
    last_success_at: Option<i64>,
    last_success_written: Option<std::time::Instant>,
}

impl Status {
    pub(crate) fn new(
        connection: &str,
        status_topic: String,
        alerts_topic: String,
        producer: FutureProducer,
    ) -> Self {
        Self {
            connection: connection.to_owned(),
            status_topic,
            alerts_topic,
            producer,
            state: State::Ok,
            last_success_at: None,
            last_success_written: None,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Moves to `state`; on a change, writes the status and fires or resolves the alert.
    pub(crate) async fn set(&mut self, state: State, message: &str) -> Result<(), ClassifiedError> {
        if state == self.state {
            return Ok(());
        }
        let previous = self.state;
        self.state = state;
        metrics::gauge!("switchboard_connection_paused", "connection" => self.connection.clone())
            .set(if state == State::PausedAuth { 1.0 } else { 0.0 });
        metrics::gauge!("switchboard_sink_circuit_open", "connection" => self.connection.clone())
            .set(if state == State::CircuitOpen {
                1.0
            } else {
                0.0
            });
        tracing::warn!(connection = %self.connection, from = previous.as_str(), to = state.as_str(), reason = message, "connection state changed");
        self.write_status(message).await?;
        if let Some(kind) = previous.alert() {
            self.alert(kind, "resolved", message).await?;
        }
        if let Some(kind) = state.alert() {
            self.alert(kind, "firing", message).await?;
        }
        Ok(())
    }

    /// A record was delivered: record the time (at most every 10 s, it is a compacted
    /// topic read by the dashboard, not a log).
    pub(crate) async fn success(&mut self) -> Result<(), ClassifiedError> {
        self.last_success_at = Some(now_millis());
        let due = self
            .last_success_written
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            self.last_success_written = Some(std::time::Instant::now());
            self.write_status("").await?;
        }
        Ok(())
    }

    async fn write_status(&self, message: &str) -> Result<(), ClassifiedError> {
        let value = json!({
            "connection": self.connection,
            "state": self.state.as_str(),
            "at": now_millis(),
            "last_success_at": self.last_success_at,
            "message": message,
        });
        self.send(&self.status_topic, value).await
    }

    async fn alert(&self, kind: &str, phase: &str, message: &str) -> Result<(), ClassifiedError> {
        let value = json!({
            "kind": kind,
            "connection": self.connection,
            "status": phase,
            "message": message,
            "at": now_millis(),
        });
        self.send(&self.alerts_topic, value).await
    }

    async fn send(&self, topic: &str, value: serde_json::Value) -> Result<(), ClassifiedError> {
        let payload = value.to_string();
        self.producer
            .send(
                FutureRecord::to(topic)
                    .key(&self.connection)
                    .payload(&payload),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| kafka_error("status write", &e))
    }
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
