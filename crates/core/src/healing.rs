//! An idempotent producer that replaces itself when it can no longer deliver.
//!
//! librdkafka reconnects by itself after a broker outage, and a producer in a fatal state
//! says so. Between the two lies a third case, seen after a broker restart under load: the
//! producer is not fatal, yet every send times out (`MessageTimedOut`) for as long as the
//! process lives, so every webhook is answered 503 and every poll fails. The same report
//! exists for other librdkafka clients (confluent-kafka-go#528). A new client with a new
//! producer ID delivers at once.
//!
//! So a [`HealingProducer`] counts its sends' outcomes. Once sends have only timed out for
//! [`HealingProducer::new`]'s `stuck_after`, or once the client reports a fatal error, its
//! [`watch`](HealingProducer::watch) builds a new client and swaps it in; every later send
//! goes through the new one. The bound doubles after each rebuild that no delivery followed
//! (a broker that stays down), up to [`MAX_BACKOFF`], and resets with the next delivery.
//! Nothing is lost: a write counts as done only once acknowledged, and whatever the old
//! client still held is purged, so its callers see an error and their sources retry.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest a stuck producer waits between two rebuilds.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often [`HealingProducer::watch`] looks at the producer.
const CHECK_EVERY: Duration = Duration::from_secs(1);

type Make = dyn Fn() -> KafkaResult<FutureProducer> + Send + Sync;

/// A shared producer that is rebuilt when it stops delivering; cheap to clone.
#[derive(Clone)]
pub struct HealingProducer {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<FutureProducer>,
    make: Box<Make>,
    sends: Mutex<Sends>,
}

impl HealingProducer {
    /// A producer made by `make`, rebuilt by it when sends have only timed out for
    /// `stuck_after`.
    pub fn new(
        make: impl Fn() -> KafkaResult<FutureProducer> + Send + Sync + 'static,
        stuck_after: Duration,
    ) -> KafkaResult<Self> {
        let current = make()?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: RwLock::new(current),
                make: Box::new(make),
                sends: Mutex::new(Sends::new(stuck_after)),
            }),
        })
    }

    /// The client sends go through now. Take it for one send, not to keep.
    pub fn current(&self) -> FutureProducer {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `record` (as [`FutureProducer::send`]) and counts its outcome.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: impl Into<Timeout>,
    ) -> OwnedDeliveryResult
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let sent = self.current().send(record, queue_timeout).await;
        self.count(&sent);
        sent
    }

    /// Counts the outcome of a send.
    fn count(&self, sent: &OwnedDeliveryResult) {
        match sent {
            Ok(_) => self.sends().delivered(),
            Err((e, _)) if is_timeout(e) => self.timed_out(),
            Err(_) => {}
        }
    }

    /// A send got no answer in time.
    pub fn timed_out(&self) {
        self.sends().timed_out(Instant::now());
    }

    /// Waits for what the current client holds (at shutdown).
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.current().flush(Timeout::After(timeout))
    }

    fn sends(&self) -> std::sync::MutexGuard<'_, Sends> {
        self.inner
            .sends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds the client whenever it is stuck or fatal, until `shutdown`. Ends with the
    /// reason, after cancelling `shutdown`, only if a new client cannot be made (bad
    /// configuration): then the process must exit non-zero for its orchestrator.
    pub fn watch(
        &self,
        whose: &'static str,
        shutdown: CancellationToken,
    ) -> JoinHandle<Option<String>> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(CHECK_EVERY) => {}
                }
                let fatal = this.current().client().fatal_error();
                let Some(why) = this.sends().rebuild(Instant::now(), fatal.is_some()) else {
                    continue;
                };
                match &fatal {
                    Some((code, reason)) => tracing::error!(
                        producer = whose,
                        ?code,
                        reason,
                        "Kafka producer failed for good; replacing it"
                    ),
                    None => tracing::warn!(
                        producer = whose,
                        failing_for_ms = why.as_millis() as u64,
                        "every Kafka send timed out; replacing the producer"
                    ),
                }
                if let Err(e) = this.rebuild() {
                    let why = format!(
                        "{whose}'s Kafka producer could not be rebuilt ({e}); stopping so that the process is restarted"
                    );
                    tracing::error!(error = %why, "Kafka producer lost");
                    shutdown.cancel();
                    return Some(why);
                }
            }
        })
    }

    /// Swaps a new client in and purges the old one, off the async threads: dropping a
    /// client waits for its broker threads.
    fn rebuild(&self) -> KafkaResult<()> {
        let fresh = (self.inner.make)()?;
        let old = std::mem::replace(
            &mut *self
                .inner
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            fresh,
        );
        tokio::task::spawn_blocking(move || {
            old.purge(PurgeConfig::default().queue().inflight());
            drop(old);
        });
        Ok(())
    }
}

/// The errors that say the client delivered nothing in time, as opposed to a record's own
/// fault (too large, an unknown topic) or a purge.
fn is_timeout(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

/// What recent sends say, and when a rebuild is due.
#[derive(Debug)]
struct Sends {
    stuck_after: Duration,
    /// The bound now: `stuck_after`, doubled by each rebuild no delivery followed.
    backoff: Duration,
    /// The first timeout since the last delivery or rebuild.
    failing_since: Option<Instant>,
    rebuilt_at: Option<Instant>,
}

impl Sends {
    fn new(stuck_after: Duration) -> Self {
        Self {
            stuck_after,
            backoff: stuck_after,
            failing_since: None,
            rebuilt_at: None,
        }
    }

    fn delivered(&mut self) {
        self.failing_since = None;
        self.backoff = self.stuck_after;
    }

    fn timed_out(&mut self, now: Instant) {
        self.failing_since.get_or_insert(now);
    }

    /// Whether to rebuild now, and if so for how long sends have failed; records the
    /// rebuild. A fatal client is rebuilt at once, unless the last rebuild is more recent
    /// than the bound.
    fn rebuild(&mut self, now: Instant, fatal: bool) -> Option<Duration> {
        let failing_for = self.failing_since.map(|since| now - since);
        let stuck = failing_for.is_some_and(|f| f >= self.backoff);
        let fatal_due = fatal && self.rebuilt_at.is_none_or(|at| now - at >= self.backoff);
        if !stuck && !fatal_due {
            return None;
        }
        self.failing_since = None;
        self.rebuilt_at = Some(now);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Some(failing_for.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_with_no_delivery_for_the_bound_rebuild() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sends = Sends::new(s(20));
        assert_eq!(
            sends.rebuild(t0 + s(100), false),
            None,
            "no sends, nothing to heal"
        );
        sends.timed_out(t0);
        sends.timed_out(t0 + s(15));
        assert_eq!(sends.rebuild(t0 + s(19), false), None, "within the bound");
        sends.delivered();
        assert_eq!(
            sends.rebuild(t0 + s(25), false),
            None,
            "a delivery clears the timeouts"
        );
        sends.timed_out(t0 + s(30));
        assert_eq!(
            sends.rebuild(t0 + s(50), false),
            Some(s(20)),
            "stuck for the bound"
        );
        assert_eq!(sends.rebuild(t0 + s(51), false), None, "rebuilt once");
    }

    #[test]
    fn rebuilds_back_off_while_nothing_is_delivered_and_reset_on_a_delivery() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sends = Sends::new(s(20));
        sends.timed_out(t0);
        assert!(sends.rebuild(t0 + s(20), false).is_some());
        sends.timed_out(t0 + s(21));
        assert_eq!(
            sends.rebuild(t0 + s(51), false),
            None,
            "the bound doubled to 40 s"
        );
        assert!(sends.rebuild(t0 + s(61), false).is_some());
        for _ in 0..10 {
            sends.timed_out(t0);
            sends.rebuild(t0 + s(10_000), false);
        }
        assert_eq!(sends.backoff, MAX_BACKOFF, "capped");
        sends.delivered();
        sends.timed_out(t0);
        assert!(
            sends.rebuild(t0 + s(20), false).is_some(),
            "back to the first bound"
        );
    }

    #[test]
    fn a_fatal_client_is_rebuilt_at_once_then_no_faster_than_the_bound() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sends = Sends::new(s(20));
        assert_eq!(sends.rebuild(t0, true), Some(Duration::ZERO));
        assert_eq!(sends.rebuild(t0 + s(1), true), None);
        assert!(sends.rebuild(t0 + s(40), true).is_some());
    }

    #[test]
    fn a_record_s_own_fault_is_no_timeout() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let purged = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue);
        assert!(is_timeout(&timeout));
        assert!(!is_timeout(&too_large));
        assert!(!is_timeout(&purged));
    }
}
