//! One module per SaaS system, each with the same shape: `mod.rs` (settings), `webhook.rs`
//! (verifying and reading pushes), `api.rs` (calling the API), `model.rs` (payload shapes).
//! Errors leave a connector classified ([`ErrorClass`](switchboard_core::ErrorClass)), so
//! the services route on the class and never on a system's status codes.

pub mod http;
pub mod pipedrive;
pub mod shopify;
pub mod webhook;

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
            other => Err(ConfigError::invalid(
                format!("connections.{name}.type"),
                format!("unknown system `{other}`; supported: shopify, pipedrive"),
            )),
        }
    }

    /// The system's name, as in the `type` key.
    pub fn system(&self) -> &'static str {
        match self {
            Self::Shopify(_) => "shopify",
            Self::Pipedrive(_) => "pipedrive",
        }
    }
}

/// Types every connection in `config` and checks that flows use them as their systems allow.
pub fn connections(config: &Config) -> Result<BTreeMap<String, Connection>, ConfigError> {
    let connections = config
        .connections
        .iter()
        .map(|(name, raw)| Ok((name.clone(), Connection::from_config(name, raw)?)))
        .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
    for (i, flow) in config.flows.iter().enumerate() {
        if let Some((conn, entity)) = flow.from.split_once('.') {
            if let Some(Connection::Shopify(_)) = connections.get(conn) {
                if !shopify::WEBHOOK_ENTITIES.contains(&entity) {
                    return Err(ConfigError::invalid(
                        format!("flows[{i}].from"),
                        format!(
                            "shopify entity `{entity}` is not supported; use one of {:?}",
                            shopify::WEBHOOK_ENTITIES
                        ),
                    ));
                }
            } else {
                return Err(ConfigError::invalid(
                    format!("flows[{i}].from"),
                    format!("connection `{conn}` cannot be a source yet; shopify can"),
                ));
            }
        }
        for (j, sink) in flow.sinks.iter().enumerate() {
            if let Some((conn, entity)) = sink.target.split_once('.') {
                let ok = matches!(connections.get(conn), Some(Connection::Pipedrive(_)))
                    && entity == "persons"
                    && flow.to == "contact";
                if !ok {
                    return Err(ConfigError::invalid(
                        format!("flows[{i}].sinks[{j}].target"),
                        "supported targets so far: a pipedrive connection's `persons`, for flows to `contact`",
                    ));
                }
            }
        }
    }
    Ok(connections)
}
