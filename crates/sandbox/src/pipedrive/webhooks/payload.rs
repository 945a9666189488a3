//! What a webhook delivery sends and what the delivery log keeps: the v2 payload (see
//! `delivery.rs` for the contract facts behind each `meta` field) and one record per
//! attempt, including the exact body sent.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Webhook;
use crate::pipedrive::common::format_time_millis;
use crate::pipedrive::events::Event;
use crate::pipedrive::schema::{SchemaSwitch, apply_to_webhook};

/// Longest delivery log kept; older attempts are dropped first.
const LOG_CAPACITY: usize = 10_000;

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Non-2xx, timeout or connection error.
    Failed,
    /// Not sent: the webhook was banned, so the event (or retry) is lost.
    LostToBan,
}

/// One delivery attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// The webhook it was for.
    pub webhook_id: u64,
    /// `meta.id`.
    pub event_id: String,
    /// `meta.action`.
    pub action: String,
    /// `meta.entity`.
    pub entity: String,
    /// `meta.entity_id`.
    pub entity_id: String,
    /// `meta.attempt`, 1–4.
    pub attempt: u8,
    /// A deliberate extra copy sent by the duplicate switch.
    pub duplicate: bool,
    /// Virtual time of the attempt, RFC 3339.
    pub at: String,
    /// What happened.
    pub outcome: DeliveryOutcome,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The exact body sent (or that would have been).
    pub body: Value,
}

/// Values every payload carries.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    pub company_id: u64,
    pub user_id: u64,
    pub host: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) event_id: String,
    pub(super) action: String,
    pub(super) entity: String,
    pub(super) entity_id: String,
    pub(super) body: Value,
}

/// The v2 payload of `event` for one webhook, with `meta.attempt` 1.
pub(super) fn payload(
    event: &Event,
    webhook: &Webhook,
    settings: &HubSettings,
    switches: &[SchemaSwitch],
) -> Value {
    let (mut data, mut previous) = (event.data.clone(), event.previous.clone());
    apply_to_webhook(switches, event.entity, &mut data, &mut previous);
    json!({
        "data": data,
        "previous": previous,
        "meta": {
            "action": event.action.as_str(),
            "entity": event.entity.as_str(),
            "entity_id": event.entity_id.to_string(),
            "id": event.id.to_string(),
            "correlation_id": event.correlation_id.to_string(),
            "company_id": settings.company_id.to_string(),
            "user_id": settings.user_id.to_string(),
            "webhook_id": webhook.id.to_string(),
            "webhook_owner_id": webhook.owner_id.to_string(),
            "is_bulk_edit": false,
            "timestamp": format_time_millis(event.at),
            "type": "general",
            "version": "2.0",
            "change_source": event.change_source.as_str(),
            "attempt": 1,
            "host": settings.host,
            "permitted_user_ids": [webhook.user_id.to_string()],
        },
    })
}

/// The body with `meta.attempt` set.
pub(super) fn with_attempt(body: &Value, attempt: u8) -> Value {
    let mut body = body.clone();
    body["meta"]["attempt"] = json!(attempt);
    body
}

/// The result of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    Delivered(u16),
    Failed(Option<u16>, String),
    /// Not sent: banned.
    Lost,
}

impl Sent {
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered(status) => Some(*status),
            Self::Failed(status, _) => *status,
            Self::Lost => None,
        }
    }
}

/// Which attempt a log line is about.
pub(super) struct Attempt<'a> {
    pub(super) webhook_id: u64,
    pub(super) job: &'a Job,
    pub(super) attempt: u8,
    pub(super) duplicate: bool,
    pub(super) at: OffsetDateTime,
}

/// Appends one attempt to the bounded log.
pub(super) fn push_log(
    log: &mut VecDeque<DeliveryRecord>,
    entry: Attempt<'_>,
    sent: Sent,
    body: Value,
) {
    let status = sent.status();
    let (outcome, error) = match sent {
        Sent::Delivered(_) => (DeliveryOutcome::Delivered, None),
        Sent::Failed(_, error) => (DeliveryOutcome::Failed, Some(error)),
        Sent::Lost => (
            DeliveryOutcome::LostToBan,
            Some("webhook banned".to_owned()),
        ),
    };
    if log.len() == LOG_CAPACITY {
        log.pop_front();
    }
    let job = entry.job;
    log.push_back(DeliveryRecord {
        webhook_id: entry.webhook_id,
        event_id: job.event_id.clone(),
        action: job.action.clone(),
        entity: job.entity.clone(),
        entity_id: job.entity_id.clone(),
        attempt: entry.attempt,
        duplicate: entry.duplicate,
        at: entry.at.format(&Rfc3339).unwrap_or_default(),
        outcome,
        status,
        error,
        body,
    });
}
