//! What a verified webhook delivery tells ingest, whatever the system.

use switchboard_core::envelope::Operation;

/// A verified, parsed webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Source entity, e.g. `customers`.
    pub entity: String,
    /// Native record ID as a string.
    pub record_id: String,
    /// What happened to the record.
    pub operation: Operation,
    /// Source's change time, epoch milliseconds.
    pub source_timestamp: Option<i64>,
    /// API version that serialized the payload.
    pub api_version: Option<String>,
    /// The source's delivery ID (idempotency key).
    pub delivery_id: Option<String>,
}

/// Why a delivery was refused. Each maps to one HTTP status and one metric reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Signature missing or wrong: 401. The message never says which secret was tried.
    #[error("signature missing or invalid")]
    Unauthorized,
    /// The body or a required header is malformed: 400.
    #[error("malformed delivery: {0}")]
    Malformed(String),
    /// This connection's system does not push webhooks to Switchboard: 404.
    #[error("connection does not accept webhooks")]
    NotAccepted,
}

impl WebhookError {
    /// The `reason` label of the rejection metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized => "signature",
            Self::Malformed(_) => "malformed",
            Self::NotAccepted => "not_accepted",
        }
    }
}

/// Parses RFC 3339 / ISO-8601 (with offset) into epoch milliseconds.
pub fn rfc3339_millis(value: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}
