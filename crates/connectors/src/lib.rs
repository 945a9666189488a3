//! One module per SaaS system, each with the same shape: `mod.rs` (settings), `webhook.rs`
//! (verifying and reading pushes), `api.rs` (calling the API), `model.rs` (payload shapes).
//! Errors leave a connector classified ([`ErrorClass`](switchboard_core::ErrorClass)), so
//! the services route on the class and never on a system's status codes.

pub mod audit;
pub mod exact;
pub mod generic;
pub mod http;
pub mod pace;
pub mod pipedrive;
pub mod shopify;
pub mod target;
pub mod telegram;
pub mod webhook;

#[cfg(test)]
mod mapping_tests;

use std::collections::BTreeMap;

use switchboard_core::Config;
use switchboard_core::config::{ConfigError, ConnectionConfig};

/// A configured connection, typed by its system.
#[derive(Debug, Clone)]
pub enum Connection {
    /// A Shopify shop.
    Shopify(shopify::ShopifyConnection),
    /// A Pipedrive company.
    Pipedrive(pipedrive::PipedriveConnection),
    /// A Telegram bot.
    Telegram(telegram::TelegramConnection),
    /// Any HTTP system configured by hand.
    Generic(generic::GenericConnection),
    /// An Exact Online division.
    Exact(exact::ExactConnection),
}

impl Connection {
    /// Types the settings of connection `name`, naming the bad key on error.
    pub fn from_config(name: &str, raw: &ConnectionConfig) -> Result<Self, ConfigError> {
        let settings = serde_json::Value::Object(raw.settings.clone());
        let invalid = |e: serde_json::Error| {
            ConfigError::invalid(format!("connections.{name}"), e.to_string())
        };
        match raw.kind.as_str() {
            "shopify" => Ok(Self::Shopify(
                serde_json::from_value(settings).map_err(invalid)?,
            )),
            "pipedrive" => Ok(Self::Pipedrive(
                serde_json::from_value(settings).map_err(invalid)?,
            )),
            "telegram" => Ok(Self::Telegram(
                serde_json::from_value(settings).map_err(invalid)?,
            )),
            "http" => Ok(Self::Generic(
                serde_json::from_value(settings).map_err(invalid)?,
            )),
            "exact" => Ok(Self::Exact(
                serde_json::from_value(settings).map_err(invalid)?,
            )),
            other => Err(ConfigError::invalid(
                format!("connections.{name}.type"),
                format!(
                    "unknown system `{other}`; supported: shopify, pipedrive, telegram, exact, http"
                ),
            )),
        }
    }

    /// The system's name, as in the `type` key.
    pub fn system(&self) -> &'static str {
        match self {
            Self::Shopify(_) => "shopify",
            Self::Pipedrive(_) => "pipedrive",
            Self::Telegram(_) => "telegram",
            Self::Generic(_) => "http",
            Self::Exact(_) => "exact",
        }
    }

    /// The entities this connection can be a target of (any, for a generic HTTP target).
    pub fn target_entities(&self) -> &'static [target::Entity] {
        match self {
            Self::Shopify(_) => shopify::target::ENTITIES,
            Self::Pipedrive(_) => pipedrive::target::ENTITIES,
            Self::Telegram(_) => telegram::target::ENTITIES,
            Self::Exact(_) => exact::target::ENTITIES,
            Self::Generic(_) => &[],
        }
    }

    /// The writer of connection `name`, or an error saying it cannot be a target.
    pub fn writer(&self, name: &str) -> anyhow::Result<Box<dyn target::Writer>> {
        Ok(match self {
            Self::Pipedrive(p) => Box::new(pipedrive::target::PipedriveTarget::new(p.clone())?),
            Self::Shopify(s) => Box::new(shopify::target::ShopifyTarget::new(s)?),
            Self::Exact(e) => Box::new(exact::target::ExactTarget::new(name, e)?),
            Self::Telegram(t) => Box::new(telegram::target::TelegramTarget::new(t)?),
            Self::Generic(g) => match &g.target {
                Some(settings) => {
                    Box::new(generic::http_target::HttpTarget::new((**settings).clone())?)
                }
                None => anyhow::bail!("connection `{name}` (http) has no `target:` block"),
            },
        })
    }

    /// Entities this connection's webhooks publish (one raw topic each).
    pub fn webhook_entities(&self) -> Vec<String> {
        let owned = |list: &[&str]| list.iter().map(|e| (*e).to_owned()).collect();
        match self {
            Self::Shopify(_) => owned(shopify::WEBHOOK_ENTITIES),
            Self::Pipedrive(p) if p.webhook_auth.is_some() => {
                owned(pipedrive::webhook::WEBHOOK_ENTITIES)
            }
            Self::Telegram(t) if t.webhook_secret_token.is_some() => {
                owned(telegram::webhook::WEBHOOK_ENTITIES)
            }
            Self::Generic(g) => g
                .webhook
                .as_ref()
                .map(|w| w.entity_names())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Entities this connection's poller publishes.
    pub fn polled_entities(&self) -> Vec<String> {
        match self {
            Self::Exact(e) => e
                .poll
                .as_ref()
                .map(|p| p.entities.clone())
                .unwrap_or_default(),
            Self::Shopify(s) => s
                .reconcile
                .as_ref()
                .map(|r| r.entities.clone())
                .unwrap_or_default(),
            Self::Pipedrive(p) => p
                .poll
                .iter()
                .chain(&p.reconcile)
                .flat_map(|poll| poll.entities.iter().cloned())
                .collect(),
            Self::Generic(g) => g
                .poll
                .as_ref()
                .map(|p| p.entities.keys().cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Whether a reconciliation poll lists `entity` of this connection (then ingest marks
    /// each record version it publishes, so the poll can skip it).
    pub fn reconciles(&self, entity: &str) -> bool {
        match self {
            Self::Shopify(s) => s
                .reconcile
                .as_ref()
                .is_some_and(|r| r.entities.iter().any(|e| e == entity)),
            Self::Pipedrive(p) => p
                .reconcile
                .as_ref()
                .is_some_and(|r| r.entities.iter().any(|e| e == entity)),
            _ => false,
        }
    }

    /// Verifies and reads one webhook delivery; `now_secs` is the current Unix time.
    pub fn receive_webhook(
        &self,
        headers: &::http::HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<webhook::Received, webhook::WebhookError> {
        use webhook::WebhookError::NotAccepted;
        match self {
            Self::Shopify(shop) => shopify::webhook::receive(shop, headers, body),
            Self::Pipedrive(p) => match &p.webhook_auth {
                Some(auth) => pipedrive::webhook::receive(auth, headers, body),
                None => Err(NotAccepted),
            },
            Self::Telegram(t) => telegram::webhook::receive(t, headers, body),
            Self::Generic(g) => match &g.webhook {
                Some(hook) => generic::webhook::receive(hook, headers, body, now_secs),
                None => Err(NotAccepted),
            },
            Self::Exact(_) => Err(NotAccepted),
        }
    }
}

/// Types every connection in `config` and checks that flows use them as their systems allow.
pub fn connections(config: &Config) -> Result<BTreeMap<String, Connection>, ConfigError> {
    let mut connections = config
        .connections
        .iter()
        .map(|(name, raw)| Ok((name.clone(), Connection::from_config(name, raw)?)))
        .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
    for connection in connections.values_mut() {
        if let Connection::Exact(exact) = connection
            && let Some(key) = &config.secrets_key
        {
            exact.token_store = Some(Box::new(exact::TokenStoreSettings {
                kafka: config.kafka.clone(),
                secrets_key: key.clone(),
            }));
        }
    }
    for (name, connection) in &connections {
        if let Connection::Exact(exact) = connection
            && let Some(poll) = &exact.poll
        {
            for (i, entity) in poll.entities.iter().enumerate() {
                if exact::sync_entity(entity).is_none() {
                    return Err(ConfigError::invalid(
                        format!("connections.{name}.poll.entities[{i}]"),
                        format!(
                            "`{entity}` has no sync endpoint here; use one of {:?}",
                            exact::SYNC_ENTITIES
                                .iter()
                                .map(|e| e.name)
                                .collect::<Vec<_>>()
                        ),
                    ));
                }
            }
        }
    }
    for (name, connection) in &connections {
        if let Connection::Shopify(shop) = connection
            && let Some(reconcile) = &shop.reconcile
        {
            if shop.access_token.is_none() {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.access_token"),
                    "reconciliation reads the Admin API: set access_token",
                ));
            }
            for (i, entity) in reconcile.entities.iter().enumerate() {
                if !["customers", "orders"].contains(&entity.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("connections.{name}.reconcile.entities[{i}]"),
                        "reconciliation reads `customers` or `orders`",
                    ));
                }
            }
        }
    }
    for (name, connection) in &connections {
        validate_polls(name, connection)?;
    }
    for (i, flow) in config.flows.iter().enumerate() {
        if let Some((conn, entity)) = flow.from.split_once('.')
            && let Some(connection) = connections.get(conn)
        {
            let mut entities = connection.webhook_entities();
            entities.extend(connection.polled_entities());
            if !entities.iter().any(|e| e == entity) {
                return Err(ConfigError::invalid(
                    format!("flows[{i}].from"),
                    format!(
                        "connection `{conn}` ({}) does not publish `{entity}`; it publishes {entities:?}",
                        connection.system()
                    ),
                ));
            }
        }
        for (j, sink) in flow.sinks.iter().enumerate() {
            if let Some((conn, entity)) = sink.target.split_once('.') {
                let key = format!("flows[{i}].sinks[{j}].target");
                let Some(connection) = connections.get(conn) else {
                    return Err(ConfigError::invalid(
                        key,
                        format!("connection `{conn}` is not defined"),
                    ));
                };
                target::check_target(config, conn, connection, entity, &flow.to)
                    .map_err(|message| ConfigError::invalid(key, message))?;
            }
        }
    }
    Ok(connections)
}

/// The poll settings of Pipedrive and generic connections, naming the bad key.
fn validate_polls(name: &str, connection: &Connection) -> Result<(), ConfigError> {
    match connection {
        Connection::Pipedrive(p) => {
            if p.poll.is_some() && p.reconcile.is_some() {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.reconcile"),
                    "`poll` already lists every change; `reconcile` is for connections fed by webhooks: keep one",
                ));
            }
            for (block, poll) in [("poll", &p.poll), ("reconcile", &p.reconcile)] {
                let Some(poll) = poll else { continue };
                if poll.entities.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("connections.{name}.{block}.entities"),
                        format!("name at least one of {:?}", pipedrive::POLLED_ENTITIES),
                    ));
                }
                for (i, entity) in poll.entities.iter().enumerate() {
                    if !pipedrive::POLLED_ENTITIES.contains(&entity.as_str()) {
                        return Err(ConfigError::invalid(
                            format!("connections.{name}.{block}.entities[{i}]"),
                            format!(
                                "`{entity}` cannot be polled; use one of {:?}",
                                pipedrive::POLLED_ENTITIES
                            ),
                        ));
                    }
                }
            }
            if block_reconciles_without_webhooks(p) {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.reconcile"),
                    "reconciliation catches what webhooks missed: set webhook_auth, or use `poll`",
                ));
            }
            Ok(())
        }
        Connection::Generic(g) => {
            if let Some(target) = &g.target {
                target.validate(&format!("connections.{name}.target"))?;
            }
            match &g.poll {
                Some(poll) => poll.validate(&format!("connections.{name}.poll")),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn block_reconciles_without_webhooks(p: &pipedrive::PipedriveConnection) -> bool {
    p.reconcile.is_some() && p.webhook_auth.is_none()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn check(connection: &str) -> Result<BTreeMap<String, Connection>, ConfigError> {
        let yaml = format!(
            "kafka: {{bootstrap_servers: 127.0.0.1:9092}}\nregistry: {{url: http://127.0.0.1:1}}\nconnections:\n  c:\n{connection}"
        );
        connections(&Config::from_yaml(&yaml).unwrap())
    }

    fn bad_key(connection: &str) -> String {
        match check(connection).unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn pipedrive_poll_settings_name_the_bad_key() {
        // Cargo sets CARGO_PKG_NAME for every test process: a secret that always resolves.
        let base = "    type: pipedrive\n    api_token: ${env:CARGO_PKG_NAME}\n";
        assert!(check(&format!("{base}    poll: {{entities: [persons, deals]}}\n")).is_ok());
        assert_eq!(
            bad_key(&format!("{base}    poll: {{entities: [persons, leads]}}\n")),
            "connections.c.poll.entities[1]"
        );
        assert_eq!(
            bad_key(&format!("{base}    reconcile: {{entities: [persons]}}\n")),
            "connections.c.reconcile"
        );
    }

    #[test]
    fn generic_poll_settings_name_the_bad_key() {
        let conn = "    type: http\n    poll:\n      base_url: http://127.0.0.1:1\n      entities:\n        orders: {mode: updated_since, since_param: s, updated_pointer: /u}\n";
        assert_eq!(bad_key(conn), "connections.c.poll.entities.orders.path");
        let conn = "    type: http\n    poll:\n      base_url: http://127.0.0.1:1\n      entities:\n        orders: {path: /o, mode: updated_since, since_param: s, updated_pointer: u}\n";
        assert_eq!(
            bad_key(conn),
            "connections.c.poll.entities.orders.updated_pointer"
        );
    }
}
