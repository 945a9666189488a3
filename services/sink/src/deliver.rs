//! Delivering one record of a target connection, shared by the connection's lanes.
//!
//! A record is tried in place a few times; a rate limit waits as the target says and costs
//! no attempt (the connector also holds the connection's gate, so every lane waits); credentials refused twice (the second time after a refresh) pause the
//! connection until they change; a transient failure that outlasts the in-place attempts
//! moves the record to the next tier, and after the last tier to the DLQ, unless several
//! records fail in a row, which means the target is down: then the circuit opens and the
//! lane waits instead. Data errors go to the DLQ at once. A key with a record in a tier or
//! the DLQ is blocked: its later records follow it there, in order (see `blocked.rs`).
//!
//! Each attempt runs in an audit scope, so every API call it makes is written to the audit
//! topic (best-effort); each record's outcome at this target (delivered, retrying,
//! dead-lettered, discarded) is written to the deliveries topic and acknowledged before the
//! record counts as done (see `audit.rs`).
//!
//! Everything here is shared by the lanes (`dispatch.rs`): the rate limiter, circuit,
//! status and credentials are per connection, not per lane. Records of one key are only
//! ever in one lane, which keeps their order and makes the blocked-key bookkeeping safe.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use switchboard_core::audit::{DeliveryOutcome, DeliveryState};
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::{KafkaConfig, OnDelete, OnMissing};
use switchboard_core::error::ClassifiedError;
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::blocked::{Blocked, BlockedKeys, Location};
use crate::circuit::Circuit;
use crate::claims::Claims;
use crate::credentials::Writer;
use crate::handoff::{ACTION, Handoff, header, original_topic};
use crate::routes::Routes;
use crate::status::{State, Status};
use crate::upsert::{self, Delivered, Outcome, Record, Target};
use crate::xref::TargetXref;

/// Delivers one target connection's records.
pub(crate) struct Delivery {
    kafka: KafkaConfig,
    connection: String,
    producer: FutureProducer,
    deliveries_topic: String,
    audit: AuditLog,
    pub(crate) handoff: Handoff,
    codec: AvroCodec,
    writer: Writer,
    routes: Arc<Routes>,
    xref: TargetXref,
    claims: Claims,
    blocked: BlockedKeys,
    circuit: Mutex<Circuit>,
    status: tokio::sync::Mutex<Status>,
    limiter: Option<DefaultDirectRateLimiter>,
    in_place_attempts: u32,
    max_backoff: Duration,
    /// `sink.keep_deleted` names this connection: deletions are not passed on.
    keep_deleted: bool,
}

/// What became of one record.
pub(crate) enum Step {
    /// Delivered, skipped or durably handed on: the offset may be stored.
    Done,
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
        routes: Arc<Routes>,
        codec: AvroCodec,
        audit: AuditLog,
    ) -> anyhow::Result<Self> {
        let producer =
            switchboard_core::kafka::eager_producer(&config.kafka, Duration::from_secs(30))?;
        let xref = TargetXref::new(&topics.xref(), connection, producer.clone());
        let blocked = BlockedKeys::new(&topics.sink_blocked(connection), producer.clone());
        let limiter = config.sink.rates.get(connection).and_then(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate.per_second.max(0.001));
            let quota = Quota::with_period(period)?
                .allow_burst(NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN));
            Some(RateLimiter::direct(quota))
        });
        Ok(Self {
            kafka: config.kafka.clone(),
            connection: connection.to_owned(),
            writer: Writer::new(config, connection, target)?,
            status: tokio::sync::Mutex::new(Status::new(
                connection,
                topics.status(),
                topics.alerts(),
                producer.clone(),
            )),
            handoff: Handoff::new(
                connection,
                topics,
                &config.sink.retry_tiers_secs,
                producer.clone(),
            ),
            producer,
            deliveries_topic: topics.deliveries(),
            audit,
            codec,
            routes,
            xref,
            claims: Claims::default(),
            blocked,
            circuit: Mutex::new(Circuit::new(config.sink.circuit_after_records)),
            limiter,
            in_place_attempts: config.sink.in_place_attempts.max(1),
            max_backoff: Duration::from_millis(config.sink.max_backoff_ms),
            keep_deleted: config.sink.keep_deleted.iter().any(|c| c == connection),
        })
    }

    /// Reads the xref links and the blocked keys from Kafka, replacing what this sink held:
    /// on each assignment, before any record of it is delivered. Between two assignments
    /// this sink is the only writer of its partitions' keys (unless it lost them without a
    /// revoke; see `dispatch.rs`, "Replicas").
    pub(crate) async fn load_tables(
        self: &Arc<Self>,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut wait = Duration::from_secs(1);
        loop {
            let this = self.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                this.xref.reload(&this.kafka)?;
                this.blocked.reload(&this.kafka)
            })
            .await?;
            match loaded {
                Ok(()) => break,
                // Kafka coming back after an outage: try again rather than stop the sink.
                Err(e) if e.class == ErrorClass::Transient => {
                    tracing::warn!(connection = %self.connection, error = %e.message, "could not read the xref and blocked keys; trying again");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        }
        metrics::gauge!("switchboard_sink_parked_keys", "connection" => self.connection.clone())
            .set(self.blocked.len() as f64);
        Ok(())
    }

    /// The connection's name.
    pub(crate) fn connection(&self) -> &str {
        &self.connection
    }

    /// Delivers, parks or hands on one record; `Done` once it may be committed.
    pub(crate) async fn process(
        &self,
        message: &OwnedMessage,
        stop: &CancellationToken,
    ) -> anyhow::Result<Step> {
        let tier = self.handoff.tier_of(message.topic());
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
                self.handoff.send(message, blocked.location, None).await?;
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

        match self.attempts(message, stop).await? {
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
                let terminal = matches!(error.class, ErrorClass::Data | ErrorClass::Conflict);
                let next = self.handoff.next(terminal, tier);
                self.handoff
                    .send(message, next, Some((&error, attempts)))
                    .await?;
                let state = match next {
                    Location::Tier(_) => DeliveryState::Retrying,
                    Location::Dlq => DeliveryState::DeadLettered,
                };
                let reason = format!("{}: {}", error.class, error.message);
                self.publish_outcome(message, state, Some(reason)).await?;
                if let Some(key) = &key {
                    let pending = self.blocked.get(key).map_or(1, |b| b.pending);
                    let blocked = Blocked {
                        location: next,
                        pending,
                    };
                    self.set_blocked(key, Some(blocked)).await?;
                }
                Ok(Step::Done)
            }
        }
    }

    async fn set_blocked(&self, key: &str, state: Option<Blocked>) -> anyhow::Result<()> {
        self.blocked.set(key, state).await?;
        metrics::gauge!("switchboard_sink_parked_keys", "connection" => self.connection.clone())
            .set(self.blocked.len() as f64);
        Ok(())
    }

    /// One of `key`'s pending records is done (delivered or discarded).
    async fn release_one(&self, key: &str) -> anyhow::Result<()> {
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

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tries a record until it is delivered, fails for good, or shutdown comes.
    async fn attempts(
        &self,
        message: &OwnedMessage,
        stop: &CancellationToken,
    ) -> anyhow::Result<Attempts> {
        let mut attempts = 0u32;
        let mut refreshed = false;
        // Every try counts for the audit, rate-limited ones too, after those of earlier tiers.
        let mut tries = header(message, "sb.error.attempts")
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(0);
        loop {
            if !self.writer.until_resumed(stop).await {
                return Ok(Attempts::Interrupted);
            }
            if let Some(limiter) = &self.limiter {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return Ok(Attempts::Interrupted),
                    _ = limiter.until_ready() => {}
                }
            }
            tries += 1;
            let (target, generation) = self.writer.current();
            let error = match self.attempt(&target, message, tries).await {
                Ok(outcome) => {
                    self.circuit().success();
                    let mut status = self.status.lock().await;
                    // A call that went out before another lane paused the connection says
                    // nothing about the credentials now: the pausing lane clears the state.
                    if status.state() != State::Ok && !self.writer.is_paused() {
                        status.set(State::Ok, "delivering again").await?;
                    }
                    status.success().await?;
                    return Ok(Attempts::Delivered(outcome));
                }
                Err(e) => e,
            };
            let error = if error.class == ErrorClass::Auth && !refreshed {
                // Once: a token may just have expired. The target refreshes it right now,
                // so credentials that are refused for good pause the connection at once,
                // not after the rate limiter lets the next call through.
                refreshed = true;
                match crate::audit::scope(&self.audit, &self.connection, None, tries)
                    .run(target.refresh_credentials())
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
                    let paused = self
                        .writer
                        .pause(generation, &error.message, &self.status, stop);
                    if !paused.await? {
                        return Ok(Attempts::Interrupted);
                    }
                    refreshed = false;
                    Duration::ZERO
                }
                ErrorClass::Transient => {
                    attempts += 1;
                    metrics::counter!("switchboard_sink_errors_total", "connection" => self.connection.clone(), "error_class" => error.class.as_str()).increment(1);
                    if attempts >= self.in_place_attempts {
                        if !self.circuit().record_failed() {
                            return Ok(Attempts::Failed(error, attempts));
                        }
                        let mut status = self.status.lock().await;
                        status.set(State::CircuitOpen, &error.message).await?;
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
                _ = stop.cancelled() => return Ok(Attempts::Interrupted),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Delivers the record once with `target` (attempt number `attempt`); the outcome to
    /// publish, or `None` when the record is not for this target.
    async fn attempt(
        &self,
        target: &Target,
        message: &OwnedMessage,
        attempt: u32,
    ) -> Result<Option<DeliveryOutcome>, ClassifiedError> {
        let mut record = self.decode(message).await?;
        let Some(route) =
            self.routes
                .entity(&self.connection, &original_topic(message), &record.source())
        else {
            return Ok(None);
        };
        let (entity, canonical) = (route.entity.as_str(), route.canonical.as_str());
        if let Some(mapping) = &route.mapping
            && !record.deleted()
        {
            let fields = serde_json::Value::Object(record.fields.clone()).to_string();
            record.body = Some(mapping.apply(&fields)?);
        }
        let known = self.xref.native_id(entity, &record.id);
        let on_delete = route.on_delete.unwrap_or_else(|| target.on_delete(entity));
        let delivered = if self.keep_deleted && record.deleted() {
            Ok(Delivered::skipped(
                known.as_deref(),
                "deleted at the source; this connection keeps deleted records (sink.keep_deleted)",
            ))
        } else {
            self.write(
                target,
                entity,
                &record,
                known.as_deref(),
                on_delete,
                attempt,
            )
            .await
        };
        let delivered = match delivered {
            // The linked record is gone (deleted at the target, or by an earlier deletion
            // of this record): by the flow's `on_missing`, matched or created anew as if
            // never linked, or dead-lettered with the reason.
            Err(e) if known.is_some() && !record.deleted() && e.is_not_found() => {
                if route.on_missing == OnMissing::DeadLetter {
                    return Err(ClassifiedError::new(
                        ErrorClass::Data,
                        format!(
                            "the linked record {} is gone at the target, and on_missing is dead_letter: {}",
                            known.as_deref().unwrap_or_default(),
                            e.message
                        ),
                    ));
                }
                tracing::info!(connection = %self.connection, entity, canonical_id = %record.id, native_id = ?known, "the linked record is gone at the target; matching or creating it anew");
                self.write(target, entity, &record, None, on_delete, attempt)
                    .await?
            }
            written => written?,
        };
        if delivered.outcome == Outcome::Created {
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
        tracing::info!(connection = %self.connection, entity, record_id = record.str("source_id").unwrap_or_default(), canonical_id = %record.id, event_id = record.str("source_event_id").unwrap_or_default(), native_id = ?delivered.native_id, outcome = outcome.as_str(), note = delivered.note.unwrap_or_default(), "delivered");
        Ok(Some(crate::audit::outcome(
            &self.connection,
            canonical,
            &record,
            DeliveryState::Delivered,
            delivered.native_id,
            delivered.note.map(str::to_owned),
        )))
    }

    /// One write of `record` at the target, `known` its linked native ID. Without one, the
    /// record's natural key is claimed first: two records the target matches on one key
    /// must not both create.
    async fn write(
        &self,
        target: &Target,
        entity: &str,
        record: &Record,
        known: Option<&str>,
        on_delete: OnDelete,
        attempt: u32,
    ) -> Result<Delivered, ClassifiedError> {
        let claim = if known.is_none()
            && !record.deleted()
            && let Some(key) = upsert::claim(target.as_ref(), entity, record)
        {
            Some(self.claims.hold(key).await)
        } else {
            None
        };
        let delivered = crate::audit::scope(&self.audit, &self.connection, Some(record), attempt)
            .run(upsert::upsert(
                target.as_ref(),
                entity,
                record,
                known,
                on_delete,
            ))
            .await;
        drop(claim);
        delivered
    }

    async fn decode(&self, message: &OwnedMessage) -> Result<Record, ClassifiedError> {
        let bytes = message
            .payload()
            .ok_or_else(|| ClassifiedError::new(ErrorClass::Data, "record has no value"))?;
        Record::from_json(self.codec.decode(bytes).await?)
    }

    /// Writes where the record in `message` stands now, and waits for Kafka's ack. A record
    /// that cannot be read or is not for this target has no outcome here. (A parked record
    /// has none either: it shares its canonical ID, the key, with the failed record it waits
    /// behind, whose outcome, with the reason, already stands for both.)
    async fn publish_outcome(
        &self,
        message: &OwnedMessage,
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
        let Some(route) =
            self.routes
                .entity(&self.connection, &original_topic(message), &record.source())
        else {
            return Ok(());
        };
        let canonical = route.canonical.as_str();
        let outcome =
            crate::audit::outcome(&self.connection, canonical, &record, state, None, reason);
        crate::audit::publish(&self.producer, &self.deliveries_topic, &outcome).await
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
