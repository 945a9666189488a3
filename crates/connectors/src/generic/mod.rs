//! Any HTTP system (`type: http`): one that pushes signed JSON webhooks, one that is polled
//! over REST, or both. The signature scheme, header names, paths, pagination and where the
//! record's ID, entity, operation and time sit in a payload are configuration, so a new
//! source needs no code.

pub mod api;
pub mod http_target;
pub mod poll;
mod poller;
pub mod target;
pub mod webhook;

use serde::Deserialize;
use switchboard_core::config::ConfigError;
use switchboard_core::error::ClassifiedError;
use switchboard_core::{Config, Secret};

use crate::poll::{Poll, PollContext};
use crate::target::{Entity, Writer};
use crate::webhook::{Received, WebhookError};

/// Settings of a generic HTTP connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConnection {
    /// How its webhooks are verified and read; without it the connection accepts none.
    #[serde(default)]
    pub webhook: Option<GenericWebhook>,
    /// How its REST API is polled for changes; without it nothing is polled.
    #[serde(default)]
    pub poll: Option<poll::GenericPoll>,
    /// How records are written to it as a sink target; without it it is no target.
    #[serde(default)]
    pub target: Option<Box<target::GenericTarget>>,
}

/// What is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// HMAC-SHA256 of the raw body (GitHub, Shopify style).
    #[default]
    Body,
    /// HMAC-SHA256 of `<timestamp>.<body>`, the timestamp from `timestamp_header`.
    TimestampBody,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
    /// over `<id>.<timestamp>.<body>`, secret `whsec_<base64 key>`.
    StandardWebhooks,
}

/// How the signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Lower- or upper-case hex.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// Verification and extraction rules of a generic webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericWebhook {
    /// What is signed.
    #[serde(default)]
    pub scheme: Scheme,
    /// Header holding the signature (ignored by `standard_webhooks`).
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Encoding of the signature (`standard_webhooks` is always base64).
    #[serde(default)]
    pub encoding: Encoding,
    /// Text before the signature in the header, e.g. `sha256=`.
    #[serde(default)]
    pub signature_prefix: Option<String>,
    /// The signing secret.
    pub secret: Secret,
    /// The previous secret, accepted too during a rotation.
    #[serde(default)]
    pub previous_secret: Option<Secret>,
    /// Header with the signing time (Unix seconds) for `timestamp_body`.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Largest accepted distance between the signing time and now, against replays.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// Header with the delivery ID used for dedupe (`standard_webhooks`: `webhook-id`).
    #[serde(default)]
    pub delivery_id_header: Option<String>,
    /// The entity of every delivery, e.g. `orders`; or use `entity_pointer`.
    #[serde(default)]
    pub entity: Option<String>,
    /// JSON pointer to the entity name in the payload, e.g. `/type`.
    #[serde(default)]
    pub entity_pointer: Option<String>,
    /// Entities accepted (and topics created) when `entity_pointer` is used.
    #[serde(default)]
    pub entities: Vec<String>,
    /// JSON pointer to the record ID.
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer to `create` / `update` / `delete` (default: update).
    #[serde(default)]
    pub operation_pointer: Option<String>,
    /// JSON pointer to the change time (RFC 3339 or Unix seconds).
    #[serde(default)]
    pub timestamp_pointer: Option<String>,
}

impl GenericWebhook {
    /// The entities this webhook publishes.
    pub fn entity_names(&self) -> Vec<String> {
        match &self.entity {
            Some(entity) => vec![entity.clone()],
            None => self.entities.clone(),
        }
    }
}

fn default_signature_header() -> String {
    "x-signature".to_owned()
}

fn default_tolerance_secs() -> u64 {
    300
}

fn default_id_pointer() -> String {
    "/id".to_owned()
}

impl crate::System for GenericConnection {
    fn system(&self) -> &'static str {
        "http"
    }

    fn validate(&self, name: &str, _config: &Config) -> Result<(), ConfigError> {
        if let Some(target) = &self.target {
            target.validate(&format!("connections.{name}.target"))?;
        }
        match &self.poll {
            Some(poll) => poll.validate(&format!("connections.{name}.poll")),
            None => Ok(()),
        }
    }

    fn webhook_entities(&self) -> Vec<String> {
        self.webhook
            .as_ref()
            .map(GenericWebhook::entity_names)
            .unwrap_or_default()
    }

    fn receive_webhook(
        &self,
        headers: &::http::HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Received, WebhookError> {
        match &self.webhook {
            Some(hook) => webhook::receive(hook, headers, body, now_secs),
            None => Err(WebhookError::NotAccepted),
        }
    }

    fn polled_entities(&self) -> Vec<String> {
        self.poll
            .as_ref()
            .map(|p| p.entities.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn pollers(
        &self,
        name: &str,
        context: &PollContext,
    ) -> Result<Vec<Box<dyn Poll>>, ClassifiedError> {
        let Some(poll) = &self.poll else {
            return Ok(Vec::new());
        };
        Ok(vec![Box::new(poller::GenericPoller {
            name: name.to_owned(),
            settings: poll.clone(),
            client: api::GenericClient::new(poll)?,
            publisher: context.publisher.clone(),
            cursors: context.cursors.clone(),
        })])
    }

    /// Any entity: its `target:` block says how every record is written.
    fn target_entities(&self) -> Option<&'static [Entity]> {
        None
    }

    fn target_needs(&self, name: &str, _config: &Config, _entity: &str) -> Result<(), String> {
        match self.target {
            Some(_) => Ok(()),
            None => Err(format!(
                "connection `{name}` (http) has no `target:` block; add one to write to it"
            )),
        }
    }

    fn writer(&self, name: &str) -> anyhow::Result<Box<dyn Writer>> {
        match &self.target {
            Some(settings) => Ok(Box::new(http_target::HttpTarget::new(
                (**settings).clone(),
            )?)),
            None => anyhow::bail!("connection `{name}` (http) has no `target:` block"),
        }
    }
}
