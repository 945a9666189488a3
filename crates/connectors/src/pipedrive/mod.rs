//! Pipedrive: persons as a target, persons/organizations/deals as a polled source (API v2).
//!
//! Contract facts (saas-contracts.md §2.5–2.7): `x-api-token` on every request; v2 writes are
//! POST and PATCH with JSON bodies; search by e-mail is `GET /api/v2/persons/search` with
//! `fields=email&exact_match=true`; lists take `updated_since` (RFC 3339), `sort_by`,
//! `sort_direction`, `limit` ≤ 500 and `cursor` (`additional_data.next_cursor`); bursts are
//! limited per 2-second window and reported in `x-ratelimit-*`, with 429 when exceeded.
//!
//! Deletions cannot be polled: the reference names no list filter that returns deleted
//! persons or organizations (DELETE is a soft delete, purged after 30 days, and lists show
//! live records), so a polled connection learns of deletes only from `delete` webhooks.

pub mod api;
pub mod model;
mod poll;
pub mod target;
pub mod webhook;
pub mod write;

use serde::Deserialize;
use switchboard_core::config::ConfigError;
use switchboard_core::error::ClassifiedError;
use switchboard_core::{Config, Secret};

use crate::poll::{Poll, PollContext};
use crate::target::{Entity, Writer};
use crate::webhook::{Received, WebhookError};

/// Settings of a Pipedrive connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveConnection {
    /// `https://<company>.pipedrive.com` (or the sandbox's address).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The API token of the user Switchboard acts as.
    pub api_token: Secret,
    /// Request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// HTTP Basic credentials Pipedrive sends with webhooks (set on the subscription);
    /// without them the connection accepts no webhooks.
    #[serde(default)]
    pub webhook_auth: Option<WebhookAuth>,
    /// Calls in any rolling 2 s this process allows itself (the API token's limit is 20 on
    /// Lite, 40 on Growth, §2.7); shared by every call of this connection in the process.
    #[serde(default = "default_burst_limit")]
    pub burst_limit: u32,
    /// Search calls in any rolling 2 s (10 on every plan, §2.7), within `burst_limit`.
    #[serde(default = "default_search_limit")]
    pub search_limit: u32,
    /// A fallback poller for a company without webhooks: changes since the last poll.
    #[serde(default)]
    pub poll: Option<PipedrivePoll>,
    /// A slow poll next to webhooks that publishes only the versions no webhook brought.
    #[serde(default)]
    pub reconcile: Option<PipedrivePoll>,
}

/// What a Pipedrive poll (fallback or reconciliation) lists, and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedrivePoll {
    /// Entities to list: `persons`, `organizations`, `deals` (see [`POLLED_ENTITIES`]).
    pub entities: Vec<String>,
    /// Seconds between two polls (default: 60 for `poll`, 300 for `reconcile`).
    #[serde(default)]
    pub every_secs: Option<u64>,
    /// How far back the first poll looks, in seconds (default: everything for `poll`, a
    /// day for `reconcile`).
    #[serde(default)]
    pub first_lookback_secs: Option<u64>,
}

/// Entities whose v2 list endpoints can be polled by `update_time`.
pub const POLLED_ENTITIES: &[&str] = &["persons", "organizations", "deals"];

/// The Basic credentials of webhook subscriptions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuth {
    /// `http_auth_user` of the subscription.
    pub username: String,
    /// `http_auth_password` of the subscription.
    pub password: Secret,
    /// The previous password, accepted too while subscriptions are being re-created.
    #[serde(default)]
    pub previous_password: Option<Secret>,
}

fn default_base_url() -> String {
    "https://api.pipedrive.com".to_owned()
}

fn default_burst_limit() -> u32 {
    20
}

fn default_search_limit() -> u32 {
    api::SEARCH_LIMIT
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl crate::System for PipedriveConnection {
    fn system(&self) -> &'static str {
        "pipedrive"
    }

    /// The poll settings, naming the bad key.
    fn validate(&self, name: &str, _config: &Config) -> Result<(), ConfigError> {
        if self.poll.is_some() && self.reconcile.is_some() {
            return Err(ConfigError::invalid(
                format!("connections.{name}.reconcile"),
                "`poll` already lists every change; `reconcile` is for connections fed by webhooks: keep one",
            ));
        }
        for (block, poll) in [("poll", &self.poll), ("reconcile", &self.reconcile)] {
            let Some(poll) = poll else { continue };
            if poll.entities.is_empty() {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.{block}.entities"),
                    format!("name at least one of {POLLED_ENTITIES:?}"),
                ));
            }
            for (i, entity) in poll.entities.iter().enumerate() {
                if !POLLED_ENTITIES.contains(&entity.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("connections.{name}.{block}.entities[{i}]"),
                        format!("`{entity}` cannot be polled; use one of {POLLED_ENTITIES:?}"),
                    ));
                }
            }
        }
        if self.reconcile.is_some() && self.webhook_auth.is_none() {
            return Err(ConfigError::invalid(
                format!("connections.{name}.reconcile"),
                "reconciliation catches what webhooks missed: set webhook_auth, or use `poll`",
            ));
        }
        Ok(())
    }

    fn webhook_entities(&self) -> Vec<String> {
        match self.webhook_auth {
            Some(_) => crate::webhook::entity_names(webhook::WEBHOOK_ENTITIES),
            None => Vec::new(),
        }
    }

    fn receive_webhook(
        &self,
        headers: &::http::HeaderMap,
        body: &[u8],
        _now_secs: i64,
    ) -> Result<Received, WebhookError> {
        match &self.webhook_auth {
            Some(auth) => webhook::receive(auth, headers, body),
            None => Err(WebhookError::NotAccepted),
        }
    }

    fn polled_entities(&self) -> Vec<String> {
        self.poll
            .iter()
            .chain(&self.reconcile)
            .flat_map(|poll| poll.entities.iter().cloned())
            .collect()
    }

    fn reconciles(&self, entity: &str) -> bool {
        self.reconcile
            .as_ref()
            .is_some_and(|r| r.entities.iter().any(|e| e == entity))
    }

    /// The fallback poller, or the reconciliation poll beside webhooks.
    fn pollers(
        &self,
        name: &str,
        context: &PollContext,
    ) -> Result<Vec<Box<dyn Poll>>, ClassifiedError> {
        let roles = [(&self.poll, None), (&self.reconcile, Some(&context.ledger))];
        let mut jobs: Vec<Box<dyn Poll>> = Vec::new();
        for (settings, ledger) in roles {
            let Some(settings) = settings else { continue };
            jobs.push(Box::new(poll::PipedrivePoller {
                name: name.to_owned(),
                client: api::PipedriveClient::new(self.clone())?,
                settings: settings.clone(),
                publisher: context.publisher.clone(),
                cursors: context.cursors.clone(),
                ledger: ledger.cloned(),
            }));
        }
        Ok(jobs)
    }

    fn target_entities(&self) -> Option<&'static [Entity]> {
        Some(target::ENTITIES)
    }

    fn writer(&self, _name: &str) -> anyhow::Result<Box<dyn Writer>> {
        Ok(Box::new(target::PipedriveTarget::new(self.clone())?))
    }
}

/// How Pipedrive v2 answers read: `x-ratelimit-reset` seconds (no `Retry-After`, §2.7); a
/// 403 is a data error (Contact-Sync fields), or a Cloudflare block after ignored 429s.
pub struct Answers;

impl crate::http::Answers for Answers {
    fn class_of(&self, status: reqwest::StatusCode, body: &str) -> switchboard_core::ErrorClass {
        use switchboard_core::ErrorClass;
        match status.as_u16() {
            // Contact-Sync-only fields answer 403 with a JSON body: the record asks for
            // something the account cannot do, and a new token would not change that.
            // Cloudflare's HTML 403 comes after 429s were ignored: slow down.
            403 if body.trim_start().starts_with('<') => ErrorClass::RateLimit,
            403 => ErrorClass::Data,
            _ => crate::http::class_of(status),
        }
    }

    fn retry_after(
        &self,
        headers: &::http::HeaderMap,
        _body: &str,
        _now_ms: i64,
    ) -> Option<std::time::Duration> {
        use crate::http::{header_number, wait_secs};
        header_number(headers, "retry-after")
            .or_else(|| header_number(headers, "x-ratelimit-reset"))
            .map(wait_secs)
    }
}
