//! The connector contract: what a system supplies, and the registry of systems.
//!
//! A system lives in one folder, `crates/connectors/src/<system>/`, whose settings type
//! implements [`System`]: its settings checks (every problem named by key), and whichever
//! of a webhook reader, a poller and a target writer it has. [`SYSTEMS`] lists them, one
//! line each. The services hold only generic machinery (ingest's dedupe and publish, the
//! poller's cursors, leases and schedule, the sink's lanes, tiers, circuit and upsert) and
//! never name a system.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use switchboard_core::Config;
use switchboard_core::config::ConfigError;

use crate::poll::{Poll, PollContext};
use crate::target::{Entity, Writer};
use crate::webhook::{Received, WebhookError};
use crate::{exact, generic, pipedrive, shopify, telegram};

/// Every system, by the `type` key that names it in a connection's settings.
pub const SYSTEMS: &[(&str, Read)] = &[
    ("shopify", read::<shopify::ShopifyConnection>),
    ("pipedrive", read::<pipedrive::PipedriveConnection>),
    ("telegram", read::<telegram::TelegramConnection>),
    ("exact", read::<exact::ExactConnection>),
    ("http", read::<generic::GenericConnection>),
];

/// A configured connection, whatever its system.
pub type Connection = Arc<dyn System>;

/// Reads a connection's settings (`connections.<name>`, without `type`) with the rest of
/// the configuration.
pub type Read = fn(&str, serde_json::Value, &Config) -> Result<Connection, ConfigError>;

fn read<S: System + DeserializeOwned + 'static>(
    name: &str,
    settings: serde_json::Value,
    config: &Config,
) -> Result<Connection, ConfigError> {
    let mut system: S = serde_json::from_value(settings)
        .map_err(|e| ConfigError::invalid(format!("connections.{name}"), e.to_string()))?;
    system.configure(config);
    Ok(Arc::new(system))
}

/// What one system can do, implemented by its settings type. Only `system` is required:
/// a system without webhooks, polls or a target leaves those out.
pub trait System: std::fmt::Debug + Send + Sync {
    /// The system's name, as in the `type` key.
    fn system(&self) -> &'static str;

    /// Takes what the connection needs from the rest of the configuration (an Exact token
    /// store needs the Kafka settings and `secrets_key`).
    fn configure(&mut self, _config: &Config) {}

    /// Checks the settings of connection `name` as a whole, naming the bad key.
    fn validate(&self, _name: &str, _config: &Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Entities this connection's webhooks publish (one raw topic each).
    fn webhook_entities(&self) -> Vec<String> {
        Vec::new()
    }

    /// Verifies and reads one webhook delivery; `now_secs` is the current Unix time.
    fn receive_webhook(
        &self,
        _headers: &::http::HeaderMap,
        _body: &[u8],
        _now_secs: i64,
    ) -> Result<Received, WebhookError> {
        Err(WebhookError::NotAccepted)
    }

    /// Entities this connection's poller publishes.
    fn polled_entities(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether a reconciliation poll lists `entity` of this connection (then ingest marks
    /// each record version it publishes, so the poll can skip it).
    fn reconciles(&self, _entity: &str) -> bool {
        false
    }

    /// The poll jobs of connection `name`, run on the poller's schedule and leases.
    fn pollers(
        &self,
        _name: &str,
        _context: &PollContext,
    ) -> Result<Vec<Box<dyn Poll>>, switchboard_core::error::ClassifiedError> {
        Ok(Vec::new())
    }

    /// The entities it can be a target of, each with its canonical entity and natural key;
    /// `None` when any is, as its settings say (a generic HTTP target).
    fn target_entities(&self) -> Option<&'static [Entity]> {
        Some(&[])
    }

    /// Whether connection `name` has what writing `entity` needs; the message says how to
    /// fix it.
    fn target_needs(&self, _name: &str, _config: &Config, _entity: &str) -> Result<(), String> {
        Ok(())
    }

    /// The target writer of connection `name`.
    fn writer(&self, name: &str) -> anyhow::Result<Box<dyn Writer>> {
        anyhow::bail!("connection `{name}` ({}) cannot be a target", self.system())
    }
}

/// The system named `kind`, or an error naming the ones there are.
pub(crate) fn reader(name: &str, kind: &str) -> Result<Read, ConfigError> {
    SYSTEMS
        .iter()
        .find(|(system, _)| *system == kind)
        .map(|(_, read)| *read)
        .ok_or_else(|| {
            let known: Vec<&str> = SYSTEMS.iter().map(|(system, _)| *system).collect();
            ConfigError::invalid(
                format!("connections.{name}.type"),
                format!("unknown system `{kind}`; supported: {}", known.join(", ")),
            )
        })
}
