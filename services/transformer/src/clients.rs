//! The transformer's Kafka clients, and how a failed transaction is answered.
//!
//! - **Identity.** Each process has a transactional ID of its own,
//!   `<group>.<host>.<incarnation>` (the incarnation is random per start), so two replicas,
//!   or a replica and its replacement, never fence each other. Zombies are fenced by the
//!   consumer group instead, as in Kafka Streams' exactly-once v2 (KIP-447): the offsets of
//!   a transaction carry the member's group generation, and the group coordinator refuses
//!   them from a member that lost its partitions, so that transaction cannot commit. An
//!   open transaction of an instance that died holds `read_committed` readers back until
//!   the broker aborts it, `transformer.transaction_timeout_ms` later (10 s by default).
//! - **Healing.** A failed transaction is sorted by librdkafka's own flags
//!   ([`Failure::of`]): abortable errors are aborted and the batch is retried on the same
//!   clients; fatal errors (fenced, epoch bumped, an unknown state) and aborts that fail
//!   rebuild both clients. So does the same abortable failure [`RETRIES_BEFORE_REBUILD`]
//!   times in a row, as a producer can refuse every transaction without saying it is fatal
//!   (`Producer attempted a transactional operation in an invalid state` after a broker
//!   restart). A rebuild re-initializes the transactional ID (which fences this process's
//!   former producer and aborts what it left open), reloads the state tables and rejoins
//!   the group, so work resumes at the last committed offsets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use switchboard_core::Config;
use switchboard_core::kafka;
use switchboard_core::membership::Assigned;

/// Abortable failures in a row that rebuild the clients.
pub(crate) const RETRIES_BEFORE_REBUILD: u32 = 5;

/// Bound on each blocking transactional call; far below the transaction timeout of
/// librdkafka's own retries, so a broker that is away gives an answer to act on.
pub(crate) const TXN_CALL: Duration = Duration::from_secs(15);

/// The consumer's context: counts rebalances and keeps the assignment for the stall probe.
pub(crate) struct Rebalances {
    generation: AtomicU64,
    pub assigned: Assigned,
}

impl Rebalances {
    /// Changes at every assignment and revocation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                self.assigned.set(partitions);
            }
            Rebalance::Revoke(_) => self.assigned.clear(),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The transformer's consumer.
pub(crate) type TransformerConsumer = StreamConsumer<Rebalances>;

/// The transactional producer and the group consumer whose offsets it commits.
pub(crate) struct Clients {
    pub producer: FutureProducer,
    pub consumer: TransformerConsumer,
}

impl Clients {
    /// Creates both clients, fences this process's former producer and subscribes.
    /// Blocking. `assigned` outlives the rebuilds, for the stall probe.
    pub(crate) fn connect(
        config: &Config,
        group: &str,
        transactional_id: &str,
        subscribed: &[&str],
        assigned: &Assigned,
    ) -> Result<Self, KafkaError> {
        let producer = kafka::transactional_producer(
            &config.kafka,
            transactional_id,
            Duration::from_millis(config.transformer.transaction_timeout_ms),
        )?;
        producer.init_transactions(TXN_CALL)?;
        let context = Rebalances {
            generation: AtomicU64::new(0),
            assigned: assigned.clone(),
        };
        let consumer: TransformerConsumer =
            kafka::transactional_consumer_config(&config.kafka, group)
                .set(
                    "client.id",
                    assigned.new_member(&config.kafka, "transformer"),
                )
                .create_with_context(context)?;
        rdkafka::consumer::Consumer::subscribe(&consumer, subscribed)?;
        Ok(Self { producer, consumer })
    }

    /// Leaves the group within a bound, so a broker that is gone cannot hang a rebuild or
    /// a shutdown.
    pub(crate) async fn close(self) {
        rdkafka::consumer::Consumer::context(&self.consumer)
            .assigned
            .clear();
        drop(self.producer);
        kafka::close_consumer(self.consumer, "transformer").await;
    }
}

/// This process's transactional ID: stable while it runs (a rebuild fences its own former
/// producer), unique among processes (replicas do not fence each other).
pub(crate) fn transactional_id(group: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    let incarnation = uuid::Uuid::new_v4().simple().to_string();
    format!("{group}.{host}.{}", &incarnation[..12])
}

/// Whether a failure to connect is worth another try: Kafka away, or coming back. Bad
/// settings and refused permissions are not, and stop the process instead.
pub(crate) fn worth_retrying(e: &KafkaError) -> bool {
    if matches!(
        e,
        KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..)
    ) {
        return false;
    }
    !matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    )
}

/// What a failed batch calls for.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing committed, the clients are sound: rewind and try the batch again.
    Retry(anyhow::Error),
    /// The producer (or the consumer) cannot go on: rebuild both.
    Rebuild(anyhow::Error),
}

impl Failure {
    /// Sorts a failed transactional call: fatal errors rebuild; the rest are abortable.
    pub(crate) fn of(e: &KafkaError) -> Self {
        let fatal = match e {
            KafkaError::Transaction(r) => r.is_fatal(),
            _ => matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::Fatal
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                        | RDKafkaErrorCode::InvalidTransactionalState
                        | RDKafkaErrorCode::State
                )
            ),
        };
        if fatal {
            Failure::Rebuild(anyhow::anyhow!("{e}"))
        } else {
            Failure::Retry(anyhow::anyhow!("{e}"))
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry(e) | Failure::Rebuild(e) => write!(f, "{e:#}"),
        }
    }
}
