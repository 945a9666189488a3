//! The consume–transform–produce loop, one Kafka transaction per batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::avro::AvroCodec;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{self, ErrorHeaders};
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio_util::sync::CancellationToken;

use crate::Flow;
use crate::drift::Shapes;
use crate::tables::Tables;
use crate::transform::{Output, StateTopics, Transformer};

/// Bound on each transactional call; far below the transaction timeout.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Worker {
    consumer: StreamConsumer,
    producer: FutureProducer,
    transformer: Transformer,
    dlq_topic: String,
    batch_max: usize,
    linger: Duration,
}

impl Worker {
    /// Fences earlier incarnations, loads the state tables and subscribes. Blocking.
    pub(crate) fn new(
        config: &Config,
        topics: Topics,
        flows: HashMap<String, Flow>,
        shapes: Shapes,
        codec: AvroCodec,
    ) -> anyhow::Result<Self> {
        let group = topics.transformer_group();
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        let producer =
            kafka::transactional_producer(&config.kafka, &format!("{group}.{instance}"))?;
        // Fences a previous incarnation with the same transactional ID and aborts what it
        // left open, so the tables below load without its uncommitted writes.
        tokio::task::block_in_place(|| producer.init_transactions(TXN_TIMEOUT))?;
        let state_topics = StateTopics {
            xref: topics.xref(),
            state: topics.transformer_state(),
            review: topics.review(),
            decisions: topics.review_decisions(),
        };
        let tables = tokio::task::block_in_place(|| {
            Tables::load(&config.kafka, &state_topics.xref, &state_topics.state)
        })?;
        tracing::info!(
            xref = tables.xref.len(),
            records = tables.records.len(),
            "state tables loaded"
        );
        let consumer = kafka::transactional_consumer(&config.kafka, &group)?;
        let mut subscribed: Vec<&str> = flows.keys().map(String::as_str).collect();
        subscribed.push(&state_topics.decisions);
        consumer.subscribe(&subscribed)?;
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
            tables,
            state_topics,
            codec,
        );
        Ok(Self {
            consumer,
            producer,
            transformer,
            dlq_topic: topics.dlq("transformer"),
            batch_max: config.transformer.batch_max.max(1),
            linger: Duration::from_millis(config.transformer.linger_ms),
        })
    }

    /// Leaves the group within a bound, so a broker that is gone cannot hang shutdown.
    pub(crate) async fn close(self) {
        switchboard_core::kafka::close_consumer(self.consumer, "transformer").await;
    }

    pub(crate) async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = self.consumer.recv() => m,
            };
            let first = match first {
                Ok(m) => m.detach(),
                Err(e) => {
                    // Broker errors repeat while it is away; do not spin on them.
                    tracing::warn!(error = %e, "consume failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.linger;
            while batch.len() < self.batch_max {
                tokio::select! {
                    m = self.consumer.recv() => match m {
                        Ok(m) => batch.push(m.detach()),
                        Err(e) => { tracing::warn!(error = %e, "consume failed"); break; }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            match self.process(&batch).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, records = batch.len(), "transaction aborted; rewinding");
                    self.rewind(&batch);
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Transforms a batch and commits outputs and offsets atomically; on failure the
    /// in-memory tables are rolled back with the transaction.
    async fn process(&mut self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let result = self.transform_and_commit(batch).await;
        match result {
            Ok(()) => self.transformer.tables.commit(),
            Err(_) => self.transformer.tables.rollback(),
        }
        result
    }

    async fn transform_and_commit(&mut self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let mut outputs = Vec::with_capacity(batch.len());
        for message in batch {
            match self.transformer.transform(message).await {
                Ok(records) => outputs.extend(records),
                Err(e) if e.class == ErrorClass::Data => {
                    outputs.push(self.dead_letter(message, &e))
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.producer.begin_transaction()?;
        if let Err(e) = self.produce_and_commit(&outputs, batch) {
            if let Err(abort) =
                tokio::task::block_in_place(|| self.producer.abort_transaction(TXN_TIMEOUT))
            {
                // A producer that can neither commit nor abort is fenced or broken: stop,
                // and let the restarted instance resume from the committed offsets.
                return Err(anyhow::anyhow!(
                    "transaction failed ({e}) and could not be aborted: {abort}"
                ));
            }
            return Err(e);
        }
        Ok(())
    }

    fn produce_and_commit(&self, outputs: &[Output], batch: &[OwnedMessage]) -> anyhow::Result<()> {
        for output in outputs {
            let mut record = FutureRecord::to(&output.topic)
                .key(&output.key)
                .headers(output.headers.clone());
            if let Some(value) = &output.value {
                record = record.payload(value);
            }
            // Delivery is confirmed by commit_transaction, which fails if any send failed.
            drop(self.producer.send_result(record).map_err(|(e, _)| e)?);
        }
        let offsets = next_offsets(batch)?;
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("consumer has no group metadata"))?;
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)?;
            self.producer.commit_transaction(TXN_TIMEOUT)?;
            Ok(())
        })
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
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in batch {
            first
                .entry((m.topic(), m.partition()))
                .or_insert(m.offset());
        }
        for ((topic, partition), offset) in first {
            if let Err(e) = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Timeout::After(TXN_TIMEOUT),
            ) {
                // The partition may have been revoked meanwhile; its new owner starts from
                // the last committed offset, which is the same place.
                tracing::warn!(topic, partition, error = %e, "rewind failed");
            }
        }
    }
}

/// The offset to commit per partition: one past the last record of the batch.
fn next_offsets(batch: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
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
