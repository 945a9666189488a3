//! Transformer: `sb.raw.<connection>.<entity>` → mapping → `sb.canonical.<entity>`.
//!
//! Guarantee: exactly once from raw to canonical. Records are consumed, mapped and produced
//! inside one Kafka transaction together with the consumed offsets
//! (`send_offsets_to_transaction`); on any failure the transaction is aborted and the
//! partitions are rewound to the batch start, so a crash neither loses nor doubles a record.
//! A record that cannot be read or mapped (class `data`) goes to `sb.dlq.transformer` in the
//! same transaction with Connect-style error headers, and the partition moves on.
//!
//! Heals itself: clients that cannot go on (a fenced or fatally failed producer, the same
//! failure over and over) are rebuilt and work resumes at the last commit (`clients.rs`).
//! `/readyz` fails while records wait and no transaction committed for
//! `health.stall_after_secs`.

mod avro_json;
mod clients;
pub mod drift;
#[cfg(debug_assertions)]
pub mod faults;
pub mod identity;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod mapping_tests;
pub mod merge;
mod tables;
pub mod target;
mod transform;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_core::canonical::Catalog;
use switchboard_core::config::ConfigError;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::progress::Progress;
use switchboard_core::registry::Write;
use switchboard_core::telemetry::{self, Health};
use switchboard_core::topics::Topics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::drift::Shapes;
use crate::target::Target;
use switchboard_core::mapping::Mapping;

/// One flow as the transformer runs it.
pub(crate) struct Flow {
    pub name: String,
    pub mapping: Mapping,
    pub target: Arc<Target>,
    pub output_topic: String,
}

/// A started transformer.
pub struct Started {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub admin: std::net::SocketAddr,
    /// Completes when the transformer has drained and stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Every canonical schema the flows write, checked against its subject's compatibility
/// rule before a record is read: a refusal stops the transformer with the subject, the
/// version and the registry's reason.
async fn check_schemas(config: &Config, flows: &HashMap<String, Flow>) -> anyhow::Result<()> {
    let mut targets: Vec<(String, String, &'static str)> = flows
        .values()
        .map(|f| {
            (
                format!("{}-value", f.output_topic),
                format!("canonical schema {} v{}", f.target.entity, f.target.version),
                f.target.def.text,
            )
        })
        .collect();
    targets.sort();
    targets.dedup();
    let writes: Vec<Write<'_>> = targets
        .iter()
        .map(|(subject, what, schema)| Write {
            subject,
            what,
            schema,
        })
        .collect();
    Ok(switchboard_core::registry::check_writes(&config.registry, &writes).await?)
}

/// Runs the transformer until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Loads mappings (refusing to start if one is broken), prepares topics and starts the
/// consume–transform–produce loop.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let catalog = Catalog::load(&config.transformer.schemas_dir)
        .map_err(|e| ConfigError::invalid("transformer.schemas_dir", e))?;
    let mut flows = HashMap::new();
    for (i, flow) in config.flows.iter().enumerate() {
        let target = Target::load(&catalog, &flow.to, flow.schema_version)
            .map_err(|e| ConfigError::invalid(format!("flows[{i}].to"), e))?;
        let (connection, entity) = flow
            .from
            .split_once('.')
            .context("flow.from was validated")?;
        let mapping = Mapping::load(&config.transformer.mappings_dir, &flow.mapping)
            .with_context(|| format!("flow `{}` refuses to start", flow.name))?;
        mapping
            .validate(&config.transformer.mappings_dir, |out| {
                target.check_output(out).map(|_| ())
            })
            .with_context(|| format!("flow `{}` refuses to start", flow.name))?;
        flows.insert(
            topics.raw(connection, entity),
            Flow {
                name: flow.name.clone(),
                mapping,
                output_topic: topics.canonical(&target.entity),
                target: Arc::new(target),
            },
        );
    }
    // One encoder caches one schema per subject, and flows of one entity share a topic:
    // they must write the same schema version.
    let mut versions: HashMap<&str, (u32, &str)> = HashMap::new();
    for flow in flows.values() {
        let (version, first) = *versions
            .entry(flow.target.entity.as_str())
            .or_insert((flow.target.version, flow.name.as_str()));
        if version != flow.target.version {
            return Err(ConfigError::invalid(
                format!("flows.{}.schema_version", flow.name),
                format!(
                    "flow `{first}` writes {} v{version}; flows of one entity write one version (set schema_version on both)",
                    flow.target.entity
                ),
            )
            .into());
        }
    }
    let shapes = Shapes::load(&config.transformer.schemas_dir)
        .map_err(|e| ConfigError::invalid("transformer.schemas_dir", e))?;

    let (listener, admin_addr) = telemetry::bind(config.transformer.admin_listen)
        .await
        .with_context(|| {
            format!(
                "bind transformer.admin_listen {}",
                config.transformer.admin_listen
            )
        })?;
    let health = Arc::new(Health::default());
    let admin = tokio::spawn(telemetry::serve(
        listener,
        telemetry::admin_router(health.clone()),
        shutdown.clone(),
    ));

    let mut specs: Vec<TopicSpec> = flows
        .keys()
        .map(|t| {
            TopicSpec::new(
                t.clone(),
                Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
            )
        })
        .collect();
    specs.extend(flows.values().map(|f| {
        TopicSpec::new(
            f.output_topic.clone(),
            Cleanup::CompactDelete(Duration::from_secs(30 * 24 * 3600)),
        )
    }));
    specs.push(TopicSpec::new(
        topics.dlq("transformer"),
        Cleanup::Delete(Duration::from_secs(30 * 24 * 3600)),
    ));
    for table in [topics.xref(), topics.transformer_state(), topics.review()] {
        specs.push(TopicSpec::new(table, Cleanup::Compact));
    }
    specs.push(TopicSpec::new(
        topics.review_decisions(),
        Cleanup::Delete(Duration::from_secs(30 * 24 * 3600)),
    ));
    specs.dedup_by(|a, b| a.name == b.name);

    let task = tokio::spawn(async move {
        let result = async {
            let codec = switchboard_core::avro::AvroCodec::new(&config.registry)?;
            if !switchboard_core::service::prepare(&config.kafka, &specs, &codec, &shutdown).await {
                return Ok(());
            }
            check_schemas(&config, &flows).await?;
            let group = topics.transformer_group();
            let progress = Progress::new("transformer", config.health.stall_after());
            health.watch(progress.clone());
            let mut worker =
                worker::Worker::new(&config, topics, flows, shapes, codec, progress.clone());
            let rejoin = switchboard_core::membership::watch_rejoin(
                config.kafka.clone(),
                group.clone(),
                worker.assigned.clone(),
                shutdown.clone(),
            );
            let probe = switchboard_core::progress::watch_group(
                config.kafka.clone(),
                group,
                worker.assigned.clone(),
                worker.subscribed.clone(),
                progress,
                shutdown.clone(),
            );
            tracing::info!("transformer starting");
            let result = worker.run(&health, &shutdown).await;
            worker.close().await;
            probe.abort();
            rejoin.abort();
            result
        }
        .await;
        health.set_ready(false);
        shutdown.cancel();
        admin.await??;
        switchboard_core::service::log_stopped("transformer", &result);
        result
    });
    Ok(Started {
        admin: admin_addr,
        task,
    })
}
