//! The error classes every stage routes on (DESIGN.md, "Delivery model").
//!
//! An error is classified where it arises, at the connector or codec boundary, and the
//! class alone decides its route: retry in place, wait, pause, dead-letter or link.

use std::fmt;
use std::time::Duration;

/// What kind of failure happened, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 5xx, timeouts, connection errors, an unreachable broker or registry: retry.
    Transient,
    /// The other side asked us to slow down: wait as it says; never counted as a failure.
    RateLimit,
    /// Credentials were refused: refresh, else pause the connection and alert.
    Auth,
    /// The record itself is wrong (400/422, bad payload, schema mismatch): dead-letter it.
    Data,
    /// The target already has the record (409): look it up and link.
    Conflict,
}

impl ErrorClass {
    /// The value of the `sb.error.class` header and the `error_class` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RateLimit => "rate_limit",
            Self::Auth => "auth",
            Self::Data => "data",
            Self::Conflict => "conflict",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure with the other side's hint of when to try again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ClassifiedError {
    /// The route-deciding class.
    pub class: ErrorClass,
    /// What happened, already free of secrets.
    pub message: String,
    /// When the other side said to try again (Retry-After, rate-limit reset).
    pub retry_after: Option<Duration>,
    /// A stable machine-readable reason within the class, e.g. `schema_drift`.
    pub reason: Option<&'static str>,
}

impl ClassifiedError {
    /// A classified error without a retry hint.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            reason: None,
        }
    }

    /// Adds a machine-readable reason (the `sb.error.reason` header of a dead letter).
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds the other side's retry hint.
    pub fn retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// Whether the other side said the record is not there (HTTP 404 or 410).
    pub fn is_not_found(&self) -> bool {
        self.reason == Some(NOT_FOUND)
    }
}

/// The reason of an answer that says the record is not there (HTTP 404 or 410): deleted
/// at the target, or never there.
pub const NOT_FOUND: &str = "not_found";
