//! Kafka clients configured for Switchboard's delivery model (DESIGN.md).
//!
//! - Producers are idempotent with `acks=all`: a retried send never duplicates a record.
//! - Consumers never store an offset on their own (`enable.auto.offset.store=false`): a
//!   service stores it only after the record is done, then librdkafka commits stored
//!   offsets in the background. A crash redelivers, never skips.
//! - Consumers read committed data only, so an aborted transformer transaction is invisible.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::error::{ClassifiedError, ErrorClass};

/// Base client settings of every producer, consumer and admin client: brokers, security
/// (`kafka.security`: SASL and TLS), plus the operator's extra properties.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    kafka.security.apply(&mut config);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// An idempotent `acks=all` producer. `delivery_timeout` bounds how long a send may take in
/// total (librdkafka `message.timeout.ms`), so a caller waiting for the ack gets a definite
/// answer instead of a record that lands later.
pub fn producer(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    idempotent(kafka, delivery_timeout, 5).create()
}

/// Like [`producer`], but sends at once instead of lingering for a batch: for services that
/// wait for each acknowledgement before going on (the sink's links and hand-offs), where a
/// linger would be added to every record.
pub fn eager_producer(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    idempotent(kafka, delivery_timeout, 0).create()
}

/// The settings every Switchboard producer shares: idempotent, `acks=all`, zstd, a bounded
/// delivery time, and `linger_ms` of batching.
pub fn idempotent(kafka: &KafkaConfig, delivery_timeout: Duration, linger_ms: u32) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("compression.type", "zstd")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    config
}

/// A transactional producer for consume–transform–produce. `transaction_timeout` is how
/// long the broker lets a transaction of this ID stay open before it aborts it.
pub fn transactional_producer(
    kafka: &KafkaConfig,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    client_config(kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "zstd")
        .set("transactional.id", transactional_id)
        .set(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        )
        .create()
}

/// A group consumer that only reads committed records and whose offsets the service
/// stores itself, record by record, after the record is done.
pub fn consumer(kafka: &KafkaConfig, group: &str) -> Result<StreamConsumer, KafkaError> {
    consumer_config(kafka, group).create()
}

/// The settings of [`consumer`], for one that needs more (a context, an assignor).
pub fn consumer_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000");
    config
}

/// Longest wait for a service's consumer to leave its group at shutdown.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// Closes a group consumer within [`CLOSE_BOUND`]; past it, logs a warning naming `whose`
/// consumer and lets shutdown go on.
pub async fn close_consumer<C: Send + 'static>(consumer: C, whose: &str) {
    if !close_within(consumer, CLOSE_BOUND).await {
        tracing::warn!(
            consumer = whose,
            "consumer did not leave its group in time (broker unreachable?); stopping anyway"
        );
    }
}

/// Closes a consumer (leaves its group) within `bound`, off the async workers. Dropping a
/// group consumer waits for the group coordinator without end: with the broker gone, a
/// service's shutdown would hang there. Past `bound` the close goes on in its own thread,
/// which the process's exit ends; returns whether it finished in time.
async fn close_within<C: Send + 'static>(consumer: C, bound: Duration) -> bool {
    let (closed, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("consumer-close".to_owned())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    match spawned {
        Ok(_) => tokio::time::timeout(bound, done).await.is_ok(),
        Err(_) => false,
    }
}

/// A consumer for transactional consume–transform–produce: offsets are committed only inside
/// the producer's transaction, never by the consumer.
pub fn transactional_consumer(
    kafka: &KafkaConfig,
    group: &str,
) -> Result<StreamConsumer, KafkaError> {
    transactional_consumer_config(kafka, group).create()
}

/// The settings of [`transactional_consumer`], for one that needs a context.
pub fn transactional_consumer_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000");
    config
}

/// How a topic's old records go away.
#[derive(Debug, Clone, Copy)]
pub enum Cleanup {
    /// Deleted after the given retention.
    Delete(Duration),
    /// Compacted by key.
    Compact,
    /// Compacted, and deleted after the given retention.
    CompactDelete(Duration),
}

/// A topic a service owns and creates at start.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Full topic name.
    pub name: String,
    /// Retention policy.
    pub cleanup: Cleanup,
    /// Partitions, if not `kafka.partitions`.
    pub partitions: Option<i32>,
}

impl TopicSpec {
    /// A topic with the given cleanup.
    pub fn new(name: impl Into<String>, cleanup: Cleanup) -> Self {
        Self {
            name: name.into(),
            cleanup,
            partitions: None,
        }
    }

    /// With its own partition count.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<(), ClassifiedError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .map_err(|e| kafka_error("admin client", &e))?;
    let settings: Vec<(String, String, Option<String>, i32)> = specs
        .iter()
        .map(|spec| {
            let partitions = spec.partitions.unwrap_or(kafka.partitions);
            match spec.cleanup {
                Cleanup::Delete(r) => (
                    spec.name.clone(),
                    "delete".to_owned(),
                    Some(ms(r)),
                    partitions,
                ),
                Cleanup::Compact => (spec.name.clone(), "compact".to_owned(), None, partitions),
                Cleanup::CompactDelete(r) => (
                    spec.name.clone(),
                    "compact,delete".to_owned(),
                    Some(ms(r)),
                    partitions,
                ),
            }
        })
        .collect();
    let topics: Vec<NewTopic<'_>> = settings
        .iter()
        .map(|(name, policy, retention, partitions)| {
            let topic = NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(kafka.replication_factor),
            )
            .set("cleanup.policy", policy);
            match retention {
                Some(r) => topic.set("retention.ms", r),
                None => topic,
            }
        })
        .collect();
    // A client-side bound too: without it a broker that refuses our credentials keeps the
    // request waiting for librdkafka's default 60 s.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = match admin.create_topics(&topics, &options).await {
        Ok(results) => results,
        Err(e) => return Err(admin_failure(kafka, "create topics", &e).await),
    };
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code @ RDKafkaErrorCode::TopicAuthorizationFailed))
            | Err((topic, code @ RDKafkaErrorCode::ClusterAuthorizationFailed)) => {
                return Err(ClassifiedError::new(
                    ErrorClass::Auth,
                    format!(
                        "create topic {topic}: {code}: grant this principal CREATE on the \
                         topic (README, \"topics and ACLs\"), or create it beforehand"
                    ),
                ));
            }
            Err((topic, code)) => {
                return Err(ClassifiedError::new(
                    ErrorClass::Transient,
                    format!("create topic {topic}: {code}"),
                ));
            }
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    tokio::task::spawn_blocking(move || await_visible(&admin, &names))
        .await
        .map_err(|e| ClassifiedError::new(ErrorClass::Transient, e.to_string()))?
}

/// Waits until the cluster's metadata shows every topic in `names` with a leader for each
/// partition. A topic the controller just created can still be unknown to the broker a
/// consumer asks; a consumer that subscribes then does not see it until its next metadata
/// refresh (minutes), so its records would sit unread.
fn await_visible(
    admin: &AdminClient<DefaultClientContext>,
    names: &[String],
) -> Result<(), ClassifiedError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<&String> = match admin.inner().fetch_metadata(None, Duration::from_secs(5))
        {
            Ok(metadata) => names
                .iter()
                .filter(|name| {
                    !metadata.topics().iter().any(|t| {
                        t.name() == name.as_str()
                            && t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .collect(),
            Err(_) => names.iter().collect(),
        };
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(ClassifiedError::new(
                ErrorClass::Transient,
                format!("topics created but not yet visible in metadata: {missing:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A Kafka error as a transient, classified error. When the brokers refused the
/// credentials, the message says so and where to look, as librdkafka's own text names
/// neither the setting nor the fix.
pub fn kafka_error(what: &str, e: &KafkaError) -> ClassifiedError {
    let hint = if is_auth_error(e) {
        "authentication failed, check kafka.security (mechanism, username, password): "
    } else {
        ""
    };
    ClassifiedError::new(ErrorClass::Transient, format!("kafka {what}: {hint}{e}"))
}

/// Whether the brokers refused this client's credentials (SASL or TLS authentication).
pub fn is_auth_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    )
}

/// Classifies a failed admin request. When the brokers refuse our credentials, librdkafka
/// lets the admin request time out and reports the refusal only as a client error event,
/// so a generic "timed out" would hide the cause: ask a probe client whether that is why.
/// Nothing works without valid credentials, so that is `auth`, not a transient blip.
async fn admin_failure(kafka: &KafkaConfig, what: &str, e: &KafkaError) -> ClassifiedError {
    let probe = kafka.clone();
    let refusal = tokio::task::spawn_blocking(move || auth_refusal(&probe, Duration::from_secs(5)))
        .await
        .ok()
        .flatten();
    match refusal {
        Some(reason) => ClassifiedError::new(
            ErrorClass::Auth,
            format!(
                "kafka {what}: authentication failed, check kafka.security (mechanism, \
                 username, password): {reason}"
            ),
        ),
        None => kafka_error(what, e),
    }
}

/// Connects a probe client and returns librdkafka's reason if the brokers refuse its
/// credentials within `wait`; `None` if they accept them (or cannot be reached).
/// Blocking.
pub fn auth_refusal(kafka: &KafkaConfig, wait: Duration) -> Option<String> {
    use rdkafka::producer::{BaseProducer, Producer};
    let probe: BaseProducer<AuthWatch> = client_config(kafka)
        .create_with_context(AuthWatch::default())
        .ok()?;
    let deadline = std::time::Instant::now() + wait;
    // Metadata makes the client connect (and authenticate); polling serves the error
    // events that carry the refusal to the context.
    let _ = probe
        .client()
        .fetch_metadata(None, Duration::from_millis(500));
    while std::time::Instant::now() < deadline {
        probe.poll(Duration::from_millis(100));
        if let Some(reason) = probe.context().refusal() {
            return Some(reason);
        }
    }
    None
}

/// Client context that remembers the brokers' refusal of our credentials.
#[derive(Default)]
pub struct AuthWatch {
    refused: std::sync::Mutex<Option<String>>,
}

impl AuthWatch {
    fn refusal(&self) -> Option<String> {
        self.refused.lock().ok().and_then(|r| r.clone())
    }
}

impl rdkafka::ClientContext for AuthWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_auth_error(&error)
            && let Ok(mut refused) = self.refused.lock()
        {
            // librdkafka's reason names the mechanism and the broker, never the password.
            *refused = Some(reason.to_owned());
        }
    }
}

impl rdkafka::producer::ProducerContext for AuthWatch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Connect-style error headers for a record handed to a DLQ (DESIGN.md, "Kafka contract").
pub struct ErrorHeaders<'a> {
    /// The error that sent it there.
    pub error: &'a ClassifiedError,
    /// Stage or sink name.
    pub stage: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// Where the record came from.
    pub original_topic: &'a str,
    /// Its partition.
    pub original_partition: i32,
    /// Its offset.
    pub original_offset: i64,
    /// First failure, RFC 3339.
    pub first_failed_at: &'a str,
}

impl ErrorHeaders<'_> {
    /// The headers, appended to `headers` (normally the original record's).
    pub fn apply(&self, headers: OwnedHeaders) -> OwnedHeaders {
        use rdkafka::message::Header;
        let attempts = self.attempts.to_string();
        let partition = self.original_partition.to_string();
        let offset = self.original_offset.to_string();
        let pairs: [(&str, &str); 8] = [
            ("sb.error.class", self.error.class.as_str()),
            ("sb.error.message", &self.error.message),
            ("sb.error.stage", self.stage),
            ("sb.error.attempts", &attempts),
            ("sb.original.topic", self.original_topic),
            ("sb.original.partition", &partition),
            ("sb.original.offset", &offset),
            ("sb.first.failed.at", self.first_failed_at),
        ];
        let reason = self.error.reason.map(|r| ("sb.error.reason", r));
        pairs
            .into_iter()
            .chain(reason)
            .fold(headers, |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            })
    }
}

/// A partition's low and high watermarks. A partition created a moment ago can be in the
/// metadata before its leader serves it (`NotLeaderForPartition`, `LeaderNotAvailable`):
/// those answers are retried for up to 10 s, as a service reading its state at start
/// would otherwise fail on a topic it just created. Blocking.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    use rdkafka::consumer::Consumer;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                            | RDKafkaErrorCode::UnknownTopicOrPartition
                    )
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            answer => return answer,
        }
    }
}

/// Reads a compacted state topic from the beginning to its current end and returns the
/// newest value per key (a deleted key, value `None`, is dropped). Only committed records
/// count, so state written in an aborted transaction is never loaded. Blocking: call it
/// from `spawn_blocking` or at start-up.
pub fn read_table(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<std::collections::HashMap<String, Vec<u8>>, ClassifiedError> {
    read_table_as(kafka, topic, timeout, "read_committed")
}

/// [`read_table`] including records of open and aborted transactions, for a reader that
/// needs only keys written outside transactions: it reads to the end at once, where a
/// committed-only reader waits at the first open transaction until it ends (up to
/// `transaction.timeout.ms` after a broker outage).
pub fn read_table_uncommitted(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<std::collections::HashMap<String, Vec<u8>>, ClassifiedError> {
    read_table_as(kafka, topic, timeout, "read_uncommitted")
}

fn read_table_as(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
    isolation: &str,
) -> Result<std::collections::HashMap<String, Vec<u8>>, ClassifiedError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let err = |what: &str, e: KafkaError| kafka_error(what, &e);
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .map_err(|e| err("state reader", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| err("metadata", e))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = watermarks(&consumer, topic, p.id()).map_err(|e| err("watermarks", e))?;
        if high > low {
            ends.insert(p.id(), high);
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(|e| err("assign", e))?;
        }
    }
    let mut table = std::collections::HashMap::new();
    if ends.is_empty() {
        return Ok(table);
    }
    consumer.assign(&assignment).map_err(|e| err("assign", e))?;
    let deadline = std::time::Instant::now() + timeout;
    while !ends.is_empty() {
        if std::time::Instant::now() >= deadline {
            return Err(ClassifiedError::new(
                ErrorClass::Transient,
                format!("reading {topic} did not reach its end in time"),
            ));
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200))
            && let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned())
        {
            match m.payload() {
                Some(value) => table.insert(key, value.to_vec()),
                None => table.remove(&key),
            };
        }
        // Transaction markers and compaction leave gaps, and a partition may end in a
        // commit marker that is never delivered: the end is reached once the consumer's
        // position (which moves past markers) passes the end seen at start.
        let positions = consumer.position().map_err(|e| err("position", e))?;
        ends.retain(|partition, end| {
            let at = positions
                .find_partition(topic, *partition)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            at.is_none_or(|at| at < *end)
        });
    }
    Ok(table)
}
