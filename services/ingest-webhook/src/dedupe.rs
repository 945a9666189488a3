//! Durable dedupe of webhook deliveries by the source's delivery ID (Shopify webhook ID,
//! Pipedrive `meta.id`, Telegram `update_id`, a configured header for generic sources).
//!
//! State lives in Kafka: the compacted topic `<prefix>.ingest.dedupe`, keyed
//! `<connection>/<delivery id>`, value the first-seen time. Every replica reads the whole
//! topic at start (before it reports ready) and keeps tailing it, so a restarted service and
//! its sibling replicas know what was already published. Entries older than the window are
//! forgotten here and deleted by the topic's retention.
//!
//! Order of writes: the raw event first, the marker after Kafka acknowledged it. A marker
//! without its event would drop the source's retry of a failed delivery (a loss); an event
//! without its marker (crash in between) only lets one duplicate through, which downstream
//! stages absorb. The marker is not awaited before answering; shutdown flushes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::config::KafkaConfig;
use switchboard_core::healing::HealingProducer;
use switchboard_core::kafka::{Cleanup, TopicSpec, client_config};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the map knows of a delivery ID.
#[derive(Clone)]
enum Entry {
    /// Being published right now; a concurrent duplicate waits for the outcome.
    InFlight(Arc<Notify>),
    /// Published at this time (epoch ms).
    Seen(i64),
}

/// The outcome of claiming a delivery.
pub(crate) enum Claim<'a> {
    /// New: publish it, then call [`ClaimGuard::published`]. Dropping the guard without that
    /// (the publish failed, or the source hung up and the request was cancelled) releases
    /// the claim, so the source's retry is published.
    New(ClaimGuard<'a>),
    /// Already published within the window.
    Duplicate,
}

/// A claim on one delivery ID, released on drop unless published.
pub(crate) struct ClaimGuard<'a> {
    dedupe: &'a Dedupe,
    key: String,
    done: bool,
}

impl ClaimGuard<'_> {
    /// The event was acknowledged by Kafka.
    pub(crate) fn published(mut self, now_ms: i64) {
        self.done = true;
        self.dedupe.published(&self.key, now_ms);
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.dedupe.failed(&self.key);
        }
    }
}

/// The dedupe map and its Kafka topic.
pub(crate) struct Dedupe {
    seen: Mutex<HashMap<String, Entry>>,
    producer: HealingProducer,
    topic: String,
    window_ms: i64,
}

impl Dedupe {
    pub(crate) fn new(producer: HealingProducer, topic: String, window: Duration) -> Self {
        Self {
            seen: Mutex::default(),
            producer,
            topic,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The topic, compacted and deleted after the window.
    pub(crate) fn topic_spec(&self) -> TopicSpec {
        TopicSpec::new(
            self.topic.clone(),
            Cleanup::CompactDelete(Duration::from_millis(self.window_ms.unsigned_abs())),
        )
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key` for publishing, or says it is a duplicate. A concurrent delivery of the
    /// same key waits (bounded) for the first one's outcome.
    pub(crate) async fn claim(&self, key: &str, now_ms: i64) -> Claim<'_> {
        for _ in 0..3 {
            let waiting = {
                let mut map = self.map();
                match map.get(key) {
                    Some(Entry::Seen(at)) if now_ms - at <= self.window_ms => {
                        return Claim::Duplicate;
                    }
                    Some(Entry::InFlight(notify)) => notify.clone(),
                    _ => {
                        map.insert(key.to_owned(), Entry::InFlight(Arc::new(Notify::new())));
                        return Claim::New(self.guard(key));
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), waiting.notified()).await;
        }
        // Still in flight after three waits: treat as new rather than risk dropping it.
        Claim::New(self.guard(key))
    }

    fn guard(&self, key: &str) -> ClaimGuard<'_> {
        ClaimGuard {
            dedupe: self,
            key: key.to_owned(),
            done: false,
        }
    }

    /// Remembers `key` (here and in Kafka) without a claim, e.g. a record version.
    pub(crate) fn mark(&self, key: &str, now_ms: i64) {
        self.published(key, now_ms);
    }

    /// The event for `key` was acknowledged: remember it here and in Kafka.
    fn published(&self, key: &str, now_ms: i64) {
        if let Some(Entry::InFlight(notify)) =
            self.map().insert(key.to_owned(), Entry::Seen(now_ms))
        {
            notify.notify_waiters();
        }
        let value = now_ms.to_string();
        let record = FutureRecord::to(&self.topic).key(key).payload(&value);
        match self.producer.current().send_result(record) {
            Ok(delivery) => {
                tokio::spawn(async move {
                    if let Ok(Err((e, _))) = delivery.await {
                        tracing::warn!(error = %e, "dedupe marker not written; a redelivery may be published twice");
                    }
                });
            }
            Err((e, _)) => tracing::warn!(error = %e, "dedupe marker not queued"),
        }
    }

    /// Publishing failed or was abandoned: forget the claim so the source's retry is
    /// published.
    fn failed(&self, key: &str) {
        let mut map = self.map();
        if let Some(Entry::InFlight(notify)) = map.get(key).cloned() {
            map.remove(key);
            notify.notify_waiters();
        }
    }

    fn remember(&self, key: String, at_ms: i64) {
        let mut map = self.map();
        match map.get(&key) {
            Some(Entry::Seen(existing)) if *existing <= at_ms => {}
            Some(Entry::InFlight(_)) => {}
            _ => {
                map.insert(key, Entry::Seen(at_ms));
            }
        }
    }

    fn forget_older_than(&self, cutoff_ms: i64) {
        self.map()
            .retain(|_, e| !matches!(e, Entry::Seen(at) if *at < cutoff_ms));
    }

    /// Number of remembered deliveries (for the gauge).
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Reads the topic up to its current end (returns when caught up), then keeps tailing it
    /// for markers of other replicas until shutdown. Blocking Kafka calls run on a blocking
    /// thread.
    pub(crate) async fn load_and_follow(
        self: Arc<Self>,
        kafka: KafkaConfig,
        loaded: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let consumer: BaseConsumer = client_config(&kafka)
            .set("group.id", format!("{}.reader", self.topic))
            .set("enable.auto.commit", "false")
            .create()?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.follow(&consumer, &loaded, &shutdown)).await?
    }

    fn follow(
        &self,
        consumer: &BaseConsumer,
        loaded: &Notify,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        // A topic created a moment ago may not have leaders yet: retry until it reads, or
        // ingest would never report ready (and say nothing about why).
        let ends = loop {
            match self.assign_from_start(consumer) {
                Ok(ends) => break ends,
                Err(e) if !shutdown.is_cancelled() => {
                    tracing::warn!(topic = %self.topic, error = %e, "dedupe state not readable yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(_) => return Ok(()),
            }
        };
        let mut caught_up = false;
        // Start at the first offset still kept: a partition whose records all aged out
        // (first == end) is caught up without reading anything.
        let mut positions: HashMap<i32, i64> =
            ends.iter().map(|(p, (low, _))| (*p, *low)).collect();
        let mut last_prune = std::time::Instant::now();
        while !shutdown.is_cancelled() {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                positions.insert(m.partition(), m.offset() + 1);
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                let at = m
                    .payload()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok());
                if let (Some(key), Some(at)) = (key, at) {
                    self.remember(key, at);
                }
            }
            if !caught_up
                && ends
                    .iter()
                    .all(|(p, (_, end))| positions.get(p).copied().unwrap_or(0) >= *end)
            {
                caught_up = true;
                tracing::info!(remembered = self.len(), "dedupe state loaded from Kafka");
                loaded.notify_one();
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                self.forget_older_than(now - self.window_ms);
                last_prune = std::time::Instant::now();
            }
        }
        Ok(())
    }

    /// Assigns every partition from the beginning; returns each partition's (first, end)
    /// offsets.
    fn assign_from_start(
        &self,
        consumer: &BaseConsumer,
    ) -> anyhow::Result<HashMap<i32, (i64, i64)>> {
        let metadata = consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(10))?;
        let topic = metadata
            .topics()
            .first()
            .ok_or_else(|| anyhow::anyhow!("no metadata for the topic"))?;
        if let Some(error) = topic.error() {
            anyhow::bail!("topic metadata error {error:?}");
        }
        if topic.partitions().is_empty() {
            anyhow::bail!("topic has no partitions yet");
        }
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in topic.partitions() {
            assignment.add_partition_offset(&self.topic, p.id(), Offset::Beginning)?;
            let watermarks = switchboard_core::kafka::watermarks(consumer, &self.topic, p.id())?;
            ends.insert(p.id(), watermarks);
        }
        consumer.assign(&assignment)?;
        Ok(ends)
    }

    /// Waits until queued markers are written (at shutdown).
    pub(crate) fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "dedupe markers not flushed at shutdown");
        }
    }
}
