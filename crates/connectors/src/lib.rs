//! One folder per SaaS system, each with the same shape: `mod.rs` (settings, and what the
//! system can do: [`System`]), `webhook.rs` (verifying and reading pushes), `api.rs`
//! (calling the API), `model.rs` (payload shapes), `poll.rs` (its poll jobs) and
//! `target.rs` (its target writer). [`system::SYSTEMS`] lists the systems. Errors leave a
//! connector classified ([`ErrorClass`](switchboard_core::ErrorClass)), so the services
//! route on the class and never on a system's status codes.

pub mod audit;
pub mod exact;
pub mod generic;
pub mod http;
pub mod pace;
pub mod pipedrive;
pub mod poll;
pub mod shopify;
pub mod system;
pub mod target;
pub mod telegram;
pub mod webhook;

#[cfg(test)]
mod mapping_tests;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use switchboard_core::Config;
use switchboard_core::config::{ConfigError, ConnectionConfig};
use switchboard_core::error::ClassifiedError;

pub use system::{Connection, System};

/// One call to a system in flight, its error classified.
pub type Call<'a, T> = BoxFuture<'a, Result<T, ClassifiedError>>;

/// Types the settings of connection `name` by its system, naming the bad key on error.
pub fn connection(
    name: &str,
    raw: &ConnectionConfig,
    config: &Config,
) -> Result<Connection, ConfigError> {
    let read = system::reader(name, &raw.kind)?;
    read(
        name,
        serde_json::Value::Object(raw.settings.clone()),
        config,
    )
}

/// Types every connection in `config` and checks each as its system says, then that flows
/// use them as their systems allow.
pub fn connections(config: &Config) -> Result<BTreeMap<String, Connection>, ConfigError> {
    let connections = config
        .connections
        .iter()
        .map(|(name, raw)| Ok((name.clone(), connection(name, raw, config)?)))
        .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
    for (name, connection) in &connections {
        connection.validate(name, config)?;
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
                target::check_target(config, conn, connection.as_ref(), entity, &flow.to)
                    .map_err(|message| ConfigError::invalid(key, message))?;
                if sink.on_delete == Some(switchboard_core::config::OnDelete::Archive)
                    && !connection
                        .target_entities()
                        .and_then(|table| target::entity(table, entity))
                        .is_some_and(|e| e.archive)
                {
                    return Err(ConfigError::invalid(
                        format!("flows[{i}].sinks[{j}].on_delete"),
                        format!(
                            "{} `{entity}` cannot be archived; use delete or ignore",
                            connection.system()
                        ),
                    ));
                }
            }
        }
    }
    Ok(connections)
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
