//! One target connection's delivery loop, rebuilt when it fails.
//!
//! A loop ends with an error when a Kafka write it waits for fails (a broker away for longer
//! than the 30 s delivery bound, a producer in a fatal state) or a lane fails. Before, that
//! stopped the whole sink for good. Now the loop's clients (producer, consumer, lanes,
//! tables) are built anew after a bounded backoff (1 s doubling to 30 s, reset after a
//! minute of running), and delivery resumes at the group's last commit; check-before-create
//! absorbs what the failed loop delivered but had not committed. Only settings that cannot
//! build a loop at all (a bad target configuration) stop the sink, at start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_connectors::Connection;
use switchboard_core::Config;
use switchboard_core::avro::AvroCodec;
use switchboard_core::membership::Assigned;
use switchboard_core::progress::Progress;
use switchboard_core::topics::Topics;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::dispatch::Dispatch;
use crate::routes::Routes;
use crate::{deliver, rebalance, upsert};

/// Everything one connection's loop is built from.
pub(crate) struct Loop {
    pub config: Arc<Config>,
    pub topics: Topics,
    pub name: String,
    pub connection: Connection,
    pub routes: Arc<Routes>,
    pub codec: AvroCodec,
    pub audit: AuditLog,
    pub input_topics: Vec<String>,
    pub progress: Arc<Progress>,
    pub assigned: Assigned,
}

impl Loop {
    /// A fresh loop: its own producer, consumer (joining the group) and lanes.
    pub(crate) fn build(&self) -> anyhow::Result<Dispatch> {
        let target = upsert::target(&self.name, &self.connection)?;
        let delivery = deliver::Delivery::new(
            &self.config,
            &self.topics,
            &self.name,
            target,
            self.routes.clone(),
            self.codec.clone(),
            self.audit.clone(),
        )?;
        // Range: partition i of every topic it reads goes to one replica (see
        // `dispatch.rs`, "Replicas").
        let consumer: rebalance::SinkConsumer = switchboard_core::kafka::consumer_config(
            &self.config.kafka,
            &self.topics.sink_group(&self.name),
        )
        .set("partition.assignment.strategy", "range")
        .set(
            "client.id",
            self.assigned
                .new_member(&self.config.kafka, &format!("sink.{}", self.name)),
        )
        .create_with_context(rebalance::Rebalances::new(
            &self.name,
            self.assigned.clone(),
        ))?;
        Dispatch::new(
            Arc::new(delivery),
            consumer,
            &self.input_topics,
            self.config.sink.concurrency_of(&self.name),
            self.progress.clone(),
        )
    }

    /// Runs `first`, then a rebuilt loop after each failure, until `shutdown`.
    pub(crate) async fn run(self, first: Dispatch, shutdown: CancellationToken) {
        let mut dispatch = first;
        let mut wait = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            match dispatch.run(&shutdown).await {
                Ok(()) => return,
                Err(e) if shutdown.is_cancelled() => {
                    tracing::warn!(connection = %self.name, error = %format!("{e:#}"), "delivery loop stopped on an error at shutdown");
                    return;
                }
                Err(e) => {
                    metrics::counter!("switchboard_client_rebuilds_total", "stage" => format!("sink.{}", self.name)).increment(1);
                    tracing::error!(connection = %self.name, error = %format!("{e:#}"), "delivery loop failed; rebuilding it, to resume from the last commit");
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                wait = Duration::from_secs(1);
            }
            dispatch = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
                match self.build() {
                    Ok(d) => break d,
                    Err(e) => {
                        tracing::error!(connection = %self.name, error = %format!("{e:#}"), "delivery loop not rebuilt; trying again");
                    }
                }
            };
        }
    }
}
