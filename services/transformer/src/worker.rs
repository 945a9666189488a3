//! The consume–transform–produce loop, one Kafka transaction per batch, on clients it
//! rebuilds when they cannot go on (`clients.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::avro::AvroCodec;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::ErrorHeaders;
use switchboard_core::membership::{Assigned, MEMBERSHIP_CHECK};
use switchboard_core::progress::Progress;
use switchboard_core::telemetry::Health;
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio_util::sync::CancellationToken;

use crate::Flow;
use crate::clients::{self, Clients, Failure, TXN_CALL};
use crate::drift::Shapes;
use crate::tables::Tables;
use crate::transform::{Output, StateTopics, Transformer};

pub(crate) struct Worker {
    config: Config,
    group: String,
    transactional_id: String,
    /// The topics it reads.
    pub subscribed: Vec<String>,
    /// The partitions owned now, kept across rebuilds for the stall probe.
    pub assigned: Assigned,
    clients: Option<Clients>,
    /// The rebalance generation the tables were read at; `None` before the first read.
    tables_at: Option<u64>,
    transformer: Transformer,
    dlq_topic: String,
    batch_max: usize,
    linger: Duration,
    progress: Arc<Progress>,
}

impl Worker {
    /// Prepares the loop; Kafka is reached by [`Worker::run`].
    pub(crate) fn new(
        config: &Config,
        topics: Topics,
        flows: HashMap<String, Flow>,
        shapes: Shapes,
        codec: AvroCodec,
        progress: Arc<Progress>,
    ) -> Self {
        let group = topics.transformer_group();
        let state_topics = StateTopics {
            xref: topics.xref(),
            state: topics.transformer_state(),
            review: topics.review(),
            decisions: topics.review_decisions(),
        };
        let mut subscribed: Vec<String> = flows.keys().cloned().collect();
        subscribed.push(state_topics.decisions.clone());
        let sink_connections: HashSet<String> = config
            .flows
            .iter()
            .flat_map(|f| f.sinks.iter())
            .filter_map(|s| switchboard_core::config::split_endpoint(&s.target))
            .map(|(connection, _)| connection.to_owned())
            .collect();
        let transformer = Transformer::new(
            flows,
            shapes,
            config.identity.clone(),
            config.policies.clone(),
            sink_connections,
            Tables::default(),
            state_topics,
            codec,
        );
        Self {
            config: config.clone(),
            transactional_id: clients::transactional_id(&group),
            group,
            subscribed,
            assigned: Assigned::default(),
            clients: None,
            tables_at: None,
            transformer,
            dlq_topic: topics.dlq("transformer"),
            batch_max: config.transformer.batch_max.max(1),
            linger: Duration::from_millis(config.transformer.linger_ms),
            progress,
        }
    }

    /// Connects, transforms until `shutdown`, and rebuilds the clients whenever they cannot
    /// go on (`clients.rs`). Ends with an error only for a failure no retry can mend (bad
    /// settings, refused permissions), so that the process exits non-zero.
    pub(crate) async fn run(
        &mut self,
        health: &Health,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut wait = Duration::from_millis(500);
        loop {
            if !self.connect(shutdown).await? {
                return Ok(());
            }
            health.set_ready(true);
            let why = match self.serve(shutdown).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            health.set_ready(false);
            metrics::counter!("switchboard_client_rebuilds_total", "stage" => "transformer")
                .increment(1);
            tracing::error!(error = %format!("{why:#}"), transactional_id = %self.transactional_id, "transformer's Kafka clients cannot go on; rebuilding them, to resume from the last commit");
            self.close().await;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Builds the clients, retrying with a bounded backoff while Kafka is away. `false`:
    /// shutdown came first.
    async fn connect(&mut self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let mut wait = Duration::from_millis(500);
        loop {
            if shutdown.is_cancelled() {
                return Ok(false);
            }
            let subscribed: Vec<&str> = self.subscribed.iter().map(String::as_str).collect();
            let connected = tokio::task::block_in_place(|| {
                Clients::connect(
                    &self.config,
                    &self.group,
                    &self.transactional_id,
                    &subscribed,
                    &self.assigned,
                )
            });
            match connected {
                Ok(clients) => {
                    self.clients = Some(clients);
                    self.tables_at = None;
                    return Ok(true);
                }
                Err(e) if clients::worth_retrying(&e) => {
                    tracing::warn!(error = %e, "transformer cannot reach Kafka; trying again");
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "transformer cannot use Kafka (check kafka.* and the ACLs): {e}"
                    ));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Leaves the group within a bound, so a broker that is gone cannot hang shutdown.
    pub(crate) async fn close(&mut self) {
        if let Some(clients) = self.clients.take() {
            clients.close().await;
        }
    }

    /// Consume–transform–produce on the current clients, until `shutdown` (`Ok`) or until
    /// they cannot go on (`Err`, the reason).
    async fn serve(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(100);
        let mut retries = 0;
        loop {
            // Out of the group for too long: new clients rejoin (`MEMBERSHIP_BOUND`).
            self.assigned.check_membership()?;
            let consumer = &self.clients.as_ref().context("no clients")?.consumer;
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = consumer.recv() => m,
                _ = tokio::time::sleep(MEMBERSHIP_CHECK) => continue,
            };
            let first = match first {
                Ok(m) => m.detach(),
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) => {
                    return Err(anyhow::anyhow!("consumer failed: {e}"));
                }
                Err(e) => {
                    // Broker errors repeat while it is away; do not spin on them.
                    tracing::warn!(error = %e, "consume failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // Read after the first record: a rebalance runs inside `recv`.
            let generation = consumer.context().generation();
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.linger;
            while batch.len() < self.batch_max {
                tokio::select! {
                    m = consumer.recv() => match m {
                        Ok(m) => batch.push(m.detach()),
                        Err(e) => { tracing::warn!(error = %e, "consume failed"); break; }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            // A stall on purpose (tests): the batch is held, uncommitted, until released.
            #[cfg(debug_assertions)]
            while crate::faults::held(&self.config.kafka.topic_prefix) {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            if consumer.context().generation() != generation {
                // A rebalance in the middle of the batch: the assignment reset every
                // position to its committed offset, so the batch is read again from there.
                tracing::debug!(
                    records = batch.len(),
                    "rebalanced while batching; reading again"
                );
                continue;
            }
            if self.tables_at != Some(generation) {
                self.load_tables()?;
                self.tables_at = Some(generation);
            }
            match self.process(&batch).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    retries = 0;
                    self.progress.progressed();
                }
                Err(Failure::Rebuild(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    retries += 1;
                    if retries >= clients::RETRIES_BEFORE_REBUILD {
                        return Err(e.context(format!("{retries} transactions in a row failed")));
                    }
                    tracing::warn!(error = %format!("{e:#}"), records = batch.len(), "transaction aborted; rewinding");
                    self.rewind(&batch);
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Reads the state tables from their topics, committed records only: at the first
    /// batch of every assignment, so partitions taken over from another replica come with
    /// what it wrote. Blocking.
    fn load_tables(&mut self) -> anyhow::Result<()> {
        let topics = &self.transformer.topics;
        let tables = tokio::task::block_in_place(|| {
            Tables::load(&self.config.kafka, &topics.xref, &topics.state)
        })
        .map_err(|e| anyhow::anyhow!("state tables not read: {e}"))?;
        tracing::info!(
            xref = tables.xref.len(),
            records = tables.records.len(),
            "state tables loaded"
        );
        self.transformer.tables = tables;
        Ok(())
    }

    /// Transforms a batch and commits outputs and offsets atomically; on failure the
    /// in-memory tables are rolled back with the transaction.
    async fn process(&mut self, batch: &[OwnedMessage]) -> Result<(), Failure> {
        let result = self.transform_and_commit(batch).await;
        match result {
            Ok(()) => self.transformer.tables.commit(),
            Err(_) => self.transformer.tables.rollback(),
        }
        result
    }

    async fn transform_and_commit(&mut self, batch: &[OwnedMessage]) -> Result<(), Failure> {
        let mut outputs = Vec::with_capacity(batch.len());
        for message in batch {
            match self.transformer.transform(message).await {
                Ok(records) => outputs.extend(records),
                Err(e) if e.class == ErrorClass::Data => {
                    outputs.push(self.dead_letter(message, &e))
                }
                // Nothing is open yet: the batch is tried again on the same clients.
                Err(e) => return Err(Failure::Retry(e.into())),
            }
        }
        let clients = self
            .clients
            .as_ref()
            .ok_or_else(|| Failure::Rebuild(anyhow::anyhow!("no clients")))?;
        if let Err(e) = clients.producer.begin_transaction() {
            // Only a producer in a state it cannot leave refuses to begin.
            return Err(Failure::Rebuild(anyhow::anyhow!(
                "could not begin a transaction: {e}"
            )));
        }
        let e = match produce_and_commit(clients, &outputs, batch).await {
            Ok(()) => return Ok(()),
            Err(Commit::Stuck) => {
                return Err(Failure::Rebuild(anyhow::anyhow!(
                    "the transaction's offsets and commit did not return within {} s (librdkafka waits for an absent group coordinator without end); rebuilding the clients",
                    COMMIT_BOUND.as_secs()
                )));
            }
            Err(Commit::Failed(e)) => e,
        };
        let failure = Failure::of(&e);
        if let Failure::Rebuild(_) = failure {
            return Err(failure);
        }
        match tokio::task::block_in_place(|| clients.producer.abort_transaction(TXN_CALL)) {
            Ok(()) => Err(failure),
            // A producer that can neither commit nor abort is fenced or broken.
            Err(abort) => Err(Failure::Rebuild(anyhow::anyhow!(
                "transaction failed ({e}) and could not be aborted: {abort}"
            ))),
        }
    }

    /// The DLQ record for a poison message: original key, value and headers plus the error.
    fn dead_letter(&self, message: &OwnedMessage, error: &ClassifiedError) -> Output {
        tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %error, "dead-lettering record");
        metrics::counter!("switchboard_dead_letters_total", "stage" => "transformer", "error_class" => error.class.as_str()).increment(1);
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let original = message.headers().cloned().unwrap_or_default();
        let headers = ErrorHeaders {
            error,
            stage: "transformer",
            attempts: 1,
            original_topic: message.topic(),
            original_partition: message.partition(),
            original_offset: message.offset(),
            first_failed_at: &now,
        }
        .apply(original);
        Output {
            topic: self.dlq_topic.clone(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// Seeks every partition of the batch back to the batch's first record.
    fn rewind(&self, batch: &[OwnedMessage]) {
        let Some(clients) = &self.clients else {
            return;
        };
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in batch {
            first
                .entry((m.topic(), m.partition()))
                .or_insert(m.offset());
        }
        for ((topic, partition), offset) in first {
            if let Err(e) = clients.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Timeout::After(TXN_CALL),
            ) {
                // The partition may have been revoked meanwhile; its new owner starts from
                // the last committed offset, which is the same place.
                tracing::warn!(topic, partition, error = %e, "rewind failed");
            }
        }
    }
}

/// How long the batch's offsets and the commit may take together before the clients count
/// as stuck. librdkafka's `send_offsets_to_transaction` does not always keep its own
/// timeout: while the group coordinator is away it can wait without end
/// (confluentinc/librdkafka#5456; seen here when a broker stopped for good mid-transaction).
const COMMIT_BOUND: Duration = Duration::from_secs(3 * TXN_CALL.as_secs());

/// Why a transaction did not commit.
enum Commit {
    /// Kafka answered with an error.
    Failed(KafkaError),
    /// No answer within [`COMMIT_BOUND`] (or no thread to ask on): the call is left on its
    /// own thread, holding the old producer, and the clients are rebuilt (which fences
    /// that producer).
    Stuck,
}

impl From<KafkaError> for Commit {
    fn from(e: KafkaError) -> Self {
        Self::Failed(e)
    }
}

/// Sends the outputs and the batch's offsets in the open transaction, and commits it. The
/// offsets and the commit run on a thread of their own, awaited for [`COMMIT_BOUND`], so a
/// call librdkafka never returns from can neither hold this stage nor its shutdown.
async fn produce_and_commit(
    clients: &Clients,
    outputs: &[Output],
    batch: &[OwnedMessage],
) -> Result<(), Commit> {
    for output in outputs {
        let mut record = FutureRecord::to(&output.topic)
            .key(&output.key)
            .headers(output.headers.clone());
        if let Some(value) = &output.value {
            record = record.payload(value);
        }
        // Delivery is confirmed by commit_transaction, which fails if any send failed.
        drop(clients.producer.send_result(record).map_err(|(e, _)| e)?);
    }
    let offsets = next_offsets(batch)?;
    let metadata = clients
        .consumer
        .group_metadata()
        .ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::State))?;
    let producer = clients.producer.clone();
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("txn-commit".to_owned())
        .spawn(move || {
            let committed = producer
                .send_offsets_to_transaction(&offsets, &metadata, TXN_CALL)
                .and_then(|()| {
                    wait_sent(&producer, TXN_CALL);
                    producer.commit_transaction(TXN_CALL)
                });
            let _ = done.send(committed);
        })
        .map_err(|_| Commit::Stuck)?;
    match tokio::time::timeout(COMMIT_BOUND, answer).await {
        Ok(Ok(committed)) => committed.map_err(Commit::Failed),
        Ok(Err(_)) | Err(_) => Err(Commit::Stuck),
    }
}

/// Waits (at most `bound`, in 1 ms steps) until every record of the transaction is sent
/// and acknowledged. rdkafka's `commit_transaction` flushes first, and while anything is in
/// flight its flush polls in 100 ms waits that the producer's own polling thread beats to
/// every event: each commit took 100 ms longer than its work (librdkafka's `debug=eos` log:
/// 100 ms between `send_offsets_to_transaction` returning and `commit_transaction` being
/// called, 4 ms for the commit itself). Its flush then finds nothing left and returns.
fn wait_sent(producer: &FutureProducer, bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    while producer.flush(Duration::ZERO).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The offset to commit per partition: one past the last record of the batch.
fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, KafkaError> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let entry = last.entry((m.topic(), m.partition())).or_insert(m.offset());
        *entry = (*entry).max(m.offset());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in last {
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(list)
}
