//! Which canonical records go to which target connection and entity, from the flows.

use std::sync::Arc;

use switchboard_core::Config;
use switchboard_core::config::ConfigError;
use switchboard_core::config::{OnDelete, OnMissing};
use switchboard_core::mapping::Mapping;
use switchboard_core::topics::Topics;

/// Which canonical records go to which target connection, from the flows.
pub(crate) struct Routes {
    routes: Vec<Route>,
}

pub(crate) struct Route {
    /// Source `<connection>.<entity>` of the flow.
    from: String,
    /// Canonical topic the flow writes.
    topic: String,
    /// Target connection.
    connection: String,
    /// Target entity, e.g. `persons`.
    pub entity: String,
    /// Canonical entity, e.g. `contact`.
    pub canonical: String,
    /// The flow's `on_delete` for this target, if it sets one.
    pub on_delete: Option<OnDelete>,
    /// The flow's `on_missing` for this target.
    pub on_missing: OnMissing,
    /// The flow's payload mapping for this target, compiled and checked on its fixtures.
    pub mapping: Option<Arc<Mapping>>,
}

impl Routes {
    /// The routes of every flow's targets. A payload mapping that does not compile, or
    /// whose fixtures (canonical records as JSON) do not each give one JSON object, refuses
    /// the start, naming the flow's key.
    pub(crate) fn from_config(config: &Config, topics: &Topics) -> Result<Self, ConfigError> {
        let mut routes = Vec::new();
        for (i, flow) in config.flows.iter().enumerate() {
            for (j, sink) in flow.sinks.iter().enumerate() {
                let Some((connection, entity)) = sink.target.split_once('.') else {
                    continue;
                };
                let mapping = match &sink.mapping {
                    Some(name) => Some(Arc::new(payload_mapping(config, name).map_err(|e| {
                        ConfigError::invalid(format!("flows[{i}].sinks[{j}].mapping"), e)
                    })?)),
                    None => None,
                };
                routes.push(Route {
                    from: flow.from.clone(),
                    topic: topics.canonical(&flow.to),
                    connection: connection.to_owned(),
                    entity: entity.to_owned(),
                    canonical: flow.to.clone(),
                    on_delete: sink.on_delete,
                    on_missing: sink.on_missing,
                    mapping,
                });
            }
        }
        Ok(Self { routes })
    }

    pub(crate) fn target_connections(&self) -> Vec<String> {
        let mut names: Vec<String> = self.routes.iter().map(|r| r.connection.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn input_topics(&self, target: &str) -> Vec<String> {
        let mut topics: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.connection == target)
            .map(|r| r.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The target entity a record from `source` on `topic` becomes at `target`, if the
    /// record is for `target` at all. A record never goes back to the connection it came
    /// from (echo suppression).
    pub(crate) fn entity(&self, target: &str, topic: &str, source: &str) -> Option<&Route> {
        if source.split_once('.').map(|(c, _)| c) == Some(target) {
            return None;
        }
        self.routes
            .iter()
            .find(|r| r.from == source && r.topic == topic && r.connection == target)
    }
}
/// Loads payload mapping `name` from `sink.mappings_dir` and checks it on its fixtures.
fn payload_mapping(config: &Config, name: &str) -> Result<Mapping, String> {
    let dir = &config.sink.mappings_dir;
    let mapping = Mapping::load(dir, name).map_err(|e| e.to_string())?;
    mapping
        .validate(dir, |out| match out {
            serde_json::Value::Object(_) => Ok(()),
            other => Err(format!(
                "a payload mapping gives one JSON object, not {other}"
            )),
        })
        .map_err(|e| e.to_string())?;
    Ok(mapping)
}
