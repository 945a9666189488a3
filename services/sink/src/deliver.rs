//! The delivery loop of one target connection.
//!
//! Records are taken in order per partition from the canonical topics and from the retry
//! tiers (`sb.retry.<sink>.<n>`). A record is tried in place a few times; a rate limit waits
//! as the target says and costs no attempt; credentials refused twice (the second time
//! after a refresh) pause the connection until they change; a transient failure that
//! outlasts the in-place attempts moves the record to the next tier, and after the last
//! tier to the DLQ, unless several records fail in a row, which means the target is down:
//! then the circuit opens and the loop waits instead. Data errors go to the DLQ at once.
//! A key with a record in a tier or the DLQ is blocked: its later records follow it there,
//! in order (see `blocked.rs`). An offset is stored only when the record is done: delivered,
//! or durably handed on.
//!
//! Each attempt runs in an audit scope, so every API call it makes is written to the audit
//! topic (best-effort); each record's outcome at this target (delivered, retrying,
//! dead-lettered, discarded) is written to the deliveries topic and acknowledged before the
//! offset is stored (see `audit.rs`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use switchboard_core::audit::{DeliveryOutcome, DeliveryState};
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::ConnectionConfig;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::{self, ErrorHeaders, kafka_error};
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass, Secret};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::blocked::{Blocked, BlockedKeys, Location};
use crate::circuit::Circuit;
use crate::routes::Routes;
use crate::status::{State, Status};
use crate::targets::{Record, Target};
use crate::xref::TargetXref;

/// Header: when a record in a retry tier is due, epoch milliseconds.
const DUE: &str = "sb.retry.due";
/// Header: an operator's redrive (`redrive`) or discard (`discard`) of a blocked key's record.
pub(crate) const ACTION: &str = "sb.redrive.action";
/// Header: the record waits behind an earlier record of its key.
const PARKED: &str = "sb.parked";

/// Delivers one target connection's records, in order per key.
pub(crate) struct Delivery {
    connection: String,
    config: Config,
    credentials: Option<[u8; 32]>,
    consumer: std::sync::Arc<StreamConsumer>,
    producer: FutureProducer,
    dlq_topic: String,
    deliveries_topic: String,
    audit: AuditLog,
    tiers: Vec<(String, Duration)>,
    codec: AvroCodec,
    target: Target,
    routes: std::sync::Arc<Routes>,
    xref: TargetXref,
    blocked: BlockedKeys,
    circuit: Circuit,
    status: Status,
    limiter: Option<DefaultDirectRateLimiter>,
    in_place_attempts: u32,
    max_backoff: Duration,
    /// Tier partitions waiting for their next record to become due: (offset, due ms).
    waiting: HashMap<(String, i32), (i64, i64)>,
}

/// What became of one record.
enum Step {
    /// Delivered, skipped or durably handed on: the offset may be stored.
    Done,
    /// A retry-tier record that is not due yet: wait, then read it again.
    NotDue(i64),
    /// Shutdown came first: the offset must not be stored.
    Interrupted,
}

/// The end of a record's attempts.
enum Attempts {
    /// Delivered; the outcome to publish, unless the record was not for this target.
    Delivered(Option<DeliveryOutcome>),
    Failed(ClassifiedError, u32),
    Interrupted,
}

impl Delivery {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &Config,
        topics: &Topics,
        connection: &str,
        target: Target,
        routes: std::sync::Arc<Routes>,
        input_topics: &[String],
        codec: AvroCodec,
        audit: AuditLog,
    ) -> anyhow::Result<Self> {
        let consumer = kafka::consumer(&config.kafka, &topics.sink_group(connection))?;
        let tiers: Vec<(String, Duration)> = config
            .sink
            .retry_tiers_secs
            .iter()
            .enumerate()
            .map(|(i, secs)| (topics.retry(connection, i), Duration::from_secs(*secs)))
            .collect();
        let mut subscribed: Vec<&str> = input_topics.iter().map(String::as_str).collect();
        subscribed.extend(tiers.iter().map(|(t, _)| t.as_str()));
        consumer.subscribe(&subscribed)?;
        let producer = kafka::eager_producer(&config.kafka, Duration::from_secs(30))?;
        let (xref, blocked) = tokio::task::block_in_place(|| {
            anyhow::Ok((
                TargetXref::load(&config.kafka, &topics.xref(), connection, producer.clone())?,
                BlockedKeys::load(
                    &config.kafka,
                    &topics.sink_blocked(connection),
                    producer.clone(),
                )?,
            ))
        })?;
        metrics::gauge!("switchboard_sink_parked_keys", "connection" => connection.to_owned())
            .set(blocked.len() as f64);
        let raw_connection = config
            .connections
            .get(connection)
            .ok_or_else(|| anyhow::anyhow!("connection `{connection}` is not defined"))?;
        let limiter = config.sink.rates.get(connection).and_then(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate.per_second.max(0.001));
            let quota = Quota::with_period(period)?
                .allow_burst(NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN));
            Some(RateLimiter::direct(quota))
        });
        Ok(Self {
            connection: connection.to_owned(),
            credentials: fingerprint(raw_connection),
            config: config.clone(),
            consumer: std::sync::Arc::new(consumer),
            status: Status::new(
                connection,
                topics.status(),
                topics.alerts(),
                producer.clone(),
            ),
            producer,
            dlq_topic: topics.dlq(connection),
            deliveries_topic: topics.deliveries(),
            audit,
            tiers,
            codec,
            target,
            routes,
            xref,
            blocked,
            circuit: Circuit::new(config.sink.circuit_after_records),
            limiter,
            in_place_attempts: config.sink.in_place_attempts.max(1),
            max_backoff: Duration::from_millis(config.sink.max_backoff_ms),
            waiting: HashMap::new(),
        })
    }

    pub(crate) async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        // A handle of its own, so a message (which borrows the consumer) can live while
        // the loop changes its own state.
        let consumer = self.consumer.clone();
        loop {
            self.resume_due();
            let next_due = self.waiting.values().map(|(_, due)| *due).min();
            let sleep = next_due.map_or(Duration::from_secs(3600), |due| {
                Duration::from_millis(u64::try_from(due - now_millis()).unwrap_or(0).max(1))
            });
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => continue,
                m = consumer.recv() => m,
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // Broker errors repeat while it is away; do not spin on them.
                    tracing::warn!(connection = %self.connection, error = %e, "consume failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let at = (message.topic().to_owned(), message.partition());
            if self.waiting.contains_key(&at) {
                // Fetched before the partition was paused; it is read again on resume.
                continue;
            }
            match self.process(&message, shutdown).await? {
                Step::Done => consumer.store_offset_from_message(&message)?,
                Step::NotDue(due) => self.wait_for(&message, due)?,
                Step::Interrupted => break,
            }
        }
        // Commit what is done before leaving the group, so the next owner starts right
        // after it (and not earlier, which would only cost an idempotent redelivery).
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(connection = %self.connection, error = %e, "final commit (nothing stored?)");
        }
        Ok(())
    }

    /// Pauses a tier partition at a record that is not due, to read it again at `due`.
    fn wait_for(&mut self, message: &BorrowedMessage<'_>, due: i64) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(message.topic(), message.partition());
        self.consumer.pause(&list)?;
        self.consumer.seek(
            message.topic(),
            message.partition(),
            Offset::Offset(message.offset()),
            Timeout::After(Duration::from_secs(10)),
        )?;
        self.waiting.insert(
            (message.topic().to_owned(), message.partition()),
            (message.offset(), due),
        );
        Ok(())
    }

    fn resume_due(&mut self) {
        let now = now_millis();
        let due: Vec<(String, i32)> = self
            .waiting
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (topic, partition) in due {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition);
            if let Err(e) = self.consumer.resume(&list) {
                tracing::warn!(connection = %self.connection, topic, partition, error = %e, "resume failed");
                continue;
            }
            self.waiting.remove(&(topic, partition));
        }
    }

    async fn process(
        &mut self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Step> {
        let tier = self.tiers.iter().position(|(t, _)| t == message.topic());
        if tier.is_some() {
            let due = header(message, DUE)
                .and_then(|d| d.parse::<i64>().ok())
                .unwrap_or(0);
            if due > now_millis() {
                return Ok(Step::NotDue(due));
            }
        }
        let here = tier.map(Location::Tier);
        let action = header(message, ACTION);
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        if let Some(key) = &key
            && let Some(mut blocked) = self.blocked.get(key)
        {
            if action.is_some() && blocked.location == Location::Dlq {
                // An operator redrives or discards the key's records from the DLQ.
                blocked.location = here.unwrap_or(Location::Tier(0));
                self.set_blocked(key, Some(blocked)).await?;
            }
            if action.as_deref() == Some("discard") {
                self.release_one(key).await?;
                self.publish_outcome(message, DeliveryState::Discarded, None)
                    .await?;
                return Ok(Step::Done);
            }
            if here != Some(blocked.location) {
                self.hand_on(message, blocked.location, None).await?;
                if here.is_none() {
                    blocked.pending += 1;
                    self.set_blocked(key, Some(blocked)).await?;
                }
                return Ok(Step::Done);
            }
        } else if action.as_deref() == Some("discard") {
            self.publish_outcome(message, DeliveryState::Discarded, None)
                .await?;
            return Ok(Step::Done);
        }

        match self.attempts(message, shutdown).await? {
            Attempts::Interrupted => Ok(Step::Interrupted),
            Attempts::Delivered(outcome) => {
                if let Some(outcome) = outcome {
                    crate::audit::publish(&self.producer, &self.deliveries_topic, &outcome).await?;
                }
                // A delivered record of a blocked key is one of its pending records.
                if let Some(key) = &key {
                    self.release_one(key).await?;
                }
                Ok(Step::Done)
            }
            Attempts::Failed(error, attempts) => {
                let next = match (error.class, tier) {
                    (ErrorClass::Data | ErrorClass::Conflict, _) => Location::Dlq,
                    (_, None) if !self.tiers.is_empty() => Location::Tier(0),
                    (_, Some(t)) if t + 1 < self.tiers.len() => Location::Tier(t + 1),
                    _ => Location::Dlq,
                };
                self.hand_on(message, next, Some((&error, attempts)))
                    .await?;
                if let Some(key) = &key {
                    let pending = self.blocked.get(key).map_or(1, |b| b.pending);
                    self.set_blocked(
                        key,
                        Some(Blocked {
                            location: next,
                            pending,
                        }),
                    )
                    .await?;
                }
                Ok(Step::Done)
            }
        }
    }

    async fn set_blocked(&mut self, key: &str, state: Option<Blocked>) -> anyhow::Result<()> {
        self.blocked.set(key, state).await?;
        metrics::gauge!("switchboard_sink_parked_keys", "connection" => self.connection.clone())
            .set(self.blocked.len() as f64);
        Ok(())
    }

    /// One of `key`'s pending records is done (delivered or discarded).
    async fn release_one(&mut self, key: &str) -> anyhow::Result<()> {
        let Some(mut blocked) = self.blocked.get(key) else {
            return Ok(());
        };
        blocked.pending = blocked.pending.saturating_sub(1);
        let state = (blocked.pending > 0).then_some(blocked);
        if state.is_none() {
            tracing::info!(connection = %self.connection, key, "key released: its records are delivered in order");
        }
        self.set_blocked(key, state).await
    }

    /// Tries a record until it is delivered, fails for good, or shutdown comes.
    async fn attempts(
        &mut self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Attempts> {
        let mut attempts = 0u32;
        let mut refreshed = false;
        // Every try counts for the audit, rate-limited ones too, after those of earlier tiers.
        let mut tries = header(message, "sb.error.attempts")
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(0);
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            tries += 1;
            let error = match self.attempt(message, tries).await {
                Ok(outcome) => {
                    self.circuit.success();
                    if self.status.state() != State::Ok {
                        self.status.set(State::Ok, "delivering again").await?;
                    }
                    self.status.success().await?;
                    return Ok(Attempts::Delivered(outcome));
                }
                Err(e) => e,
            };
            let error = if error.class == ErrorClass::Auth && !refreshed {
                // Once: a token may just have expired. The target refreshes it right now,
                // so credentials that are refused for good pause the connection at once,
                // not after the rate limiter lets the next call through.
                refreshed = true;
                match self
                    .audit
                    .scope(&self.connection, None, tries)
                    .run(self.target.refresh_credentials())
                    .await
                {
                    Err(refused) if refused.class == ErrorClass::Auth => refused,
                    // Fresh credentials, or a refresh that failed transiently: the next
                    // attempt tells.
                    _ => continue,
                }
            } else {
                error
            };
            let wait = match error.class {
                ErrorClass::RateLimit => {
                    metrics::counter!("switchboard_sink_throttled_total", "connection" => self.connection.clone()).increment(1);
                    error.retry_after.unwrap_or(Duration::from_secs(1))
                }
                ErrorClass::Auth => {
                    self.status.set(State::PausedAuth, &error.message).await?;
                    if !self.wait_for_new_credentials(shutdown).await? {
                        return Ok(Attempts::Interrupted);
                    }
                    refreshed = false;
                    Duration::ZERO
                }
                ErrorClass::Transient => {
                    attempts += 1;
                    metrics::counter!("switchboard_sink_errors_total", "connection" => self.connection.clone(), "error_class" => error.class.as_str()).increment(1);
                    if attempts >= self.in_place_attempts {
                        if !self.circuit.record_failed() {
                            return Ok(Attempts::Failed(error, attempts));
                        }
                        self.status.set(State::CircuitOpen, &error.message).await?;
                    }
                    let wait = backoff(attempts, self.max_backoff);
                    tracing::warn!(connection = %self.connection, attempt = attempts, error_class = %error.class, error = %error.message, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                    wait
                }
                ErrorClass::Data | ErrorClass::Conflict => {
                    metrics::counter!("switchboard_sink_errors_total", "connection" => self.connection.clone(), "error_class" => error.class.as_str()).increment(1);
                    return Ok(Attempts::Failed(error, attempts + 1));
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Attempts::Interrupted),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// While paused for refused credentials: checks every few seconds whether the
    /// configured credentials changed, and if so builds the target anew. Returns `false`
    /// on shutdown.
    async fn wait_for_new_credentials(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let now = self
                .config
                .connections
                .get(&self.connection)
                .and_then(fingerprint);
            if now.is_some() && now != self.credentials {
                // Typed the way start-up types it (with what connections need from the rest
                // of the configuration, such as an Exact token store).
                let connections = switchboard_connectors::connections(&self.config)?;
                let connection = connections.get(&self.connection).ok_or_else(|| {
                    anyhow::anyhow!("connection `{}` is not defined", self.connection)
                })?;
                self.target = Target::new(&self.connection, connection)?;
                self.credentials = now;
                tracing::info!(connection = %self.connection, "credentials changed; resuming");
                return Ok(true);
            }
        }
    }

    /// Delivers the record once (attempt number `attempt`); the outcome to publish, or
    /// `None` when the record is not for this target.
    async fn attempt(
        &self,
        message: &BorrowedMessage<'_>,
        attempt: u32,
    ) -> Result<Option<DeliveryOutcome>, ClassifiedError> {
        let record = self.decode(message).await?;
        let Some((entity, canonical)) =
            self.routes
                .entity(&self.connection, &original_topic(message), &record.source())
        else {
            return Ok(None);
        };
        let known = self.xref.native_id(entity, &record.id);
        let delivered = self
            .audit
            .scope(&self.connection, Some(&record), attempt)
            .run(self.target.deliver(entity, &record, known.as_deref()))
            .await?;
        if delivered.outcome == crate::targets::Outcome::Created {
            crash_after_create_for_tests();
        }
        if let Some(native) = &delivered.native_id
            && known.as_deref() != Some(native)
        {
            self.xref.link(entity, canonical, &record, native).await?;
        }
        let outcome = delivered.outcome;
        metrics::counter!("switchboard_sink_deliveries_total", "connection" => self.connection.clone(), "outcome" => outcome.as_str()).increment(1);
        metrics::gauge!("switchboard_sink_last_success_timestamp_seconds", "connection" => self.connection.clone())
            .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
        tracing::info!(connection = %self.connection, entity, record_id = record.str("source_id").unwrap_or_default(), canonical_id = %record.id, event_id = record.str("source_event_id").unwrap_or_default(), native_id = ?delivered.native_id, outcome = outcome.as_str(), "delivered");
        Ok(Some(crate::audit::outcome(
            &self.connection,
            canonical,
            &record,
            DeliveryState::Delivered,
            delivered.native_id,
            None,
        )))
    }

    async fn decode(&self, message: &BorrowedMessage<'_>) -> Result<Record, ClassifiedError> {
        let bytes = message
            .payload()
            .ok_or_else(|| ClassifiedError::new(ErrorClass::Data, "record has no value"))?;
        Record::from_json(self.codec.decode(bytes).await?)
    }

    /// Writes where the record in `message` stands now, and waits for Kafka's ack. A record
    /// that cannot be read or is not for this target has no outcome here.
    async fn publish_outcome(
        &self,
        message: &BorrowedMessage<'_>,
        state: DeliveryState,
        reason: Option<String>,
    ) -> anyhow::Result<()> {
        let record = match self.decode(message).await {
            Ok(record) => record,
            Err(e) => {
                tracing::debug!(connection = %self.connection, error = %e.message, "no outcome for an unreadable record");
                return Ok(());
            }
        };
        let Some((_, canonical)) =
            self.routes
                .entity(&self.connection, &original_topic(message), &record.source())
        else {
            return Ok(());
        };
        let outcome =
            crate::audit::outcome(&self.connection, canonical, &record, state, None, reason);
        crate::audit::publish(&self.producer, &self.deliveries_topic, &outcome).await
    }

    /// Hands a record on to a retry tier or the DLQ and waits for Kafka's acknowledgement.
    /// `failure` is the error and attempts when the record itself failed; without it the
    /// record is parked behind an earlier record of its key.
    async fn hand_on(
        &self,
        message: &BorrowedMessage<'_>,
        to: Location,
        failure: Option<(&ClassifiedError, u32)>,
    ) -> anyhow::Result<()> {
        let (topic, due) = match to {
            Location::Tier(n) => {
                let (topic, delay) = &self.tiers[n];
                let due = match failure {
                    Some(_) => now_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                    None => 0,
                };
                (topic.as_str(), Some(due))
            }
            Location::Dlq => (self.dlq_topic.as_str(), None),
        };
        let mut headers = message.headers().map(|h| h.detach()).unwrap_or_default();
        if let Some((error, attempts)) = failure {
            let first = header(message, "sb.first.failed.at").unwrap_or_else(now_rfc3339);
            let total = attempts
                + header(message, "sb.error.attempts")
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0);
            let original = original_topic(message);
            let partition = header(message, "sb.original.partition")
                .and_then(|p| p.parse().ok())
                .unwrap_or(message.partition());
            let offset = header(message, "sb.original.offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(message.offset());
            headers = ErrorHeaders {
                error,
                stage: &self.connection,
                attempts: total,
                original_topic: &original,
                original_partition: partition,
                original_offset: offset,
                first_failed_at: &first,
            }
            .apply(headers);
            let label = match to {
                Location::Tier(_) => "retry",
                Location::Dlq => "dlq",
            };
            metrics::counter!("switchboard_dead_letters_total", "stage" => self.connection.clone(), "error_class" => error.class.as_str(), "route" => label).increment(1);
            tracing::warn!(connection = %self.connection, to = topic, error_class = %error.class, error = %error.message, attempts = total, "record handed on");
        } else {
            headers = headers.insert(Header {
                key: PARKED,
                value: Some("true"),
            });
            if header(message, "sb.original.topic").is_none() {
                headers = headers.insert(Header {
                    key: "sb.original.topic",
                    value: Some(message.topic()),
                });
            }
            tracing::info!(connection = %self.connection, to = topic, "record parked behind an earlier record of its key");
        }
        if let Some(due) = due {
            let due = due.to_string();
            headers = headers.insert(Header {
                key: DUE,
                value: Some(due.as_str()),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| kafka_error(&format!("write to {topic}"), &e))?;
        // A parked record shares its canonical ID (the key) with the failed record it waits
        // behind, whose outcome, with the reason, already stands for both.
        let Some((error, _)) = failure else {
            return Ok(());
        };
        let state = match to {
            Location::Tier(_) => DeliveryState::Retrying,
            Location::Dlq => DeliveryState::DeadLettered,
        };
        let reason = format!("{}: {}", error.class, error.message);
        self.publish_outcome(message, state, Some(reason)).await
    }
}

/// Fault hook for tests: with `SB_FAULT_ABORT_AFTER_CREATES=n` the process aborts right
/// after its n-th create, before the xref link is written, which is the crash window that
/// check-before-create must close. Unset (always, outside tests), it does nothing.
fn crash_after_create_for_tests() {
    static CREATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| {
        std::env::var("SB_FAULT_ABORT_AFTER_CREATES")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit {
        let n = CREATES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n >= *limit {
            tracing::error!(
                creates = n,
                "fault hook: aborting after a create, before its xref link"
            );
            std::process::abort();
        }
    }
}

/// The last value of header `name`, as text.
pub(crate) fn header(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The canonical topic a record came from, also after it moved through retry tiers.
fn original_topic(message: &BorrowedMessage<'_>) -> String {
    header(message, "sb.original.topic").unwrap_or_else(|| message.topic().to_owned())
}

/// A digest of the connection's resolved secrets, to notice new credentials.
fn fingerprint(raw: &ConnectionConfig) -> Option<[u8; 32]> {
    fn walk(value: &serde_json::Value, hasher: &mut Sha256) -> Option<()> {
        match value {
            serde_json::Value::String(s) if s.starts_with("${") => {
                hasher.update(Secret::resolve(s).ok()?.expose().as_bytes());
                hasher.update([0]);
            }
            serde_json::Value::Object(map) => {
                for v in map.values() {
                    walk(v, hasher)?;
                }
            }
            serde_json::Value::Array(list) => {
                for v in list {
                    walk(v, hasher)?;
                }
            }
            _ => {}
        }
        Some(())
    }
    let mut hasher = Sha256::new();
    for value in raw.settings.values() {
        walk(value, &mut hasher)?;
    }
    Some(hasher.finalize().into())
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Exponential backoff with jitter: between half and all of 200 ms × 2^(n−1), capped.
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let ceiling = Duration::from_millis(200)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(5);
        assert!(backoff(1, cap) <= Duration::from_millis(200));
        assert!(backoff(4, cap) >= Duration::from_millis(800));
        for _ in 0..50 {
            assert!(backoff(30, cap) <= cap);
        }
    }
}
