//! Which canonical records go to which target connection and entity, from the flows.

use switchboard_core::Config;
use switchboard_core::config::{OnDelete, OnMissing};
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
}

impl Routes {
    pub(crate) fn from_config(config: &Config, topics: &Topics) -> Self {
        let routes = config
            .flows
            .iter()
            .flat_map(|flow| {
                flow.sinks.iter().filter_map(move |sink| {
                    let (connection, entity) = sink.target.split_once('.')?;
                    Some(Route {
                        from: flow.from.clone(),
                        topic: topics.canonical(&flow.to),
                        connection: connection.to_owned(),
                        entity: entity.to_owned(),
                        canonical: flow.to.clone(),
                        on_delete: sink.on_delete,
                        on_missing: sink.on_missing,
                    })
                })
            })
            .collect();
        Self { routes }
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
