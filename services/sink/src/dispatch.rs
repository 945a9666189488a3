//! The consumer loop of one target connection: reads its canonical topics and retry tiers
//! and hands each record to one of `sink.concurrency` lanes.
//!
//! Guarantees:
//! - **Order per key.** A record goes to the lane its key hashes to, and a lane delivers
//!   one record at a time, so a key's records reach the target in the order they were read.
//!   Different keys overlap; a record without a key goes to its partition's lane.
//! - **At-least-once.** An offset is stored only when its record is done and no earlier
//!   record of its partition is still in flight (`offsets.rs`), so a crash redelivers and
//!   never skips; check-before-create makes the redelivery harmless.
//! - **Due times.** A retry-tier record that is not due pauses its partition here, before
//!   any lane sees it, and the partition resumes when it is due.
//! - **Replicas.** Several sinks of one connection share its group. Partitions are
//!   assigned by range, so partition i of the canonical topics and of the retry tiers (all
//!   keyed by record ID, same partition count) go to one replica, and a key's records, parked
//!   ones included, stay with one owner. When partitions are revoked, the lanes deliver
//!   what they were handed (at most `REVOKE_BOUND`; past it each stops after the call under
//!   way, and the rest is the next owner's), the finished records are committed, and only
//!   then does the group move on. At each assignment the xref and the blocked keys are read
//!   again before any record is delivered, so the new owner sees what the former one wrote.
//!   Partitions lost without a revoke (this member did not poll within
//!   `max.poll.interval.ms`, e.g. its lanes waited out a long outage on full queues) are
//!   the new owner's at once: what the lanes held may then be delivered twice.
//! - **Shutdown.** On cancel the loop stops reading; the lanes deliver what they were
//!   handed (at most `SHUTDOWN_BOUND`, then each stops after the call under way; an
//!   abandoned record is not stored), and the group commits before it leaves.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::membership::MEMBERSHIP_CHECK;
use switchboard_core::progress::Progress;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Delivery, Step};
use crate::handoff::now_millis;
use crate::offsets::Partition;
use crate::rebalance::{Generation, LiveLane, SHUTDOWN_BOUND, Shared, SinkConsumer};

/// Records queued per lane ahead of the one it is delivering: enough to keep a lane busy
/// while the loop serves the others, few enough that a stalled lane soon stops the reading.
const LANE_QUEUE: usize = 8;

/// Reads one connection's topics and spreads the records over its lanes.
pub(crate) struct Dispatch {
    delivery: Arc<Delivery>,
    consumer: Arc<SinkConsumer>,
    shared: Arc<Shared>,
    concurrency: usize,
    /// Tier partitions waiting for their next record to become due: (offset, due ms).
    waiting: HashMap<Partition, (i64, i64)>,
    /// `switchboard_sink_in_flight` of this connection, looked up once.
    in_flight: metrics::Gauge,
    /// Told of every record done, for the stall check.
    progress: Arc<Progress>,
}

/// The lanes of one assignment.
#[derive(Default)]
struct Lanes {
    queues: Vec<mpsc::Sender<OwnedMessage>>,
    running: JoinSet<anyhow::Result<()>>,
}

impl Dispatch {
    /// Subscribes to `input_topics` and the connection's retry tiers.
    pub(crate) fn new(
        delivery: Arc<Delivery>,
        consumer: SinkConsumer,
        input_topics: &[String],
        concurrency: usize,
        progress: Arc<Progress>,
    ) -> anyhow::Result<Self> {
        let mut subscribed: Vec<&str> = input_topics.iter().map(String::as_str).collect();
        subscribed.extend(delivery.handoff.tier_topics());
        consumer.subscribe(&subscribed)?;
        let in_flight = metrics::gauge!("switchboard_sink_in_flight", "connection" => delivery.connection().to_owned());
        Ok(Self {
            in_flight,
            progress,
            shared: consumer.context().shared(),
            consumer: Arc::new(consumer),
            delivery,
            concurrency: concurrency.max(1),
            waiting: HashMap::new(),
        })
    }

    pub(crate) async fn run(mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut lanes = Lanes::default();
        let result = self.read(&mut lanes, shutdown).await;
        // What the lanes finished before they stopped is stored and committed, so the next
        // owner starts right after it (and not earlier, which would only cost an
        // idempotent redelivery). A lane's own error says more than the loop's.
        if !self.shared.drain_lanes(SHUTDOWN_BOUND) {
            tracing::info!(connection = %self.delivery.connection(), "stopped before delivering every record read; the next owner delivers the rest");
        }
        drop(lanes.queues);
        let mut failure = None;
        while let Some(ended) = lanes.running.join_next().await {
            if let Err(e) = ended.map_err(anyhow::Error::from).and_then(|r| r) {
                failure.get_or_insert(e);
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(connection = %self.delivery.connection(), error = %e, "final commit (nothing stored?)");
        }
        let whose = format!("sink {}", self.delivery.connection());
        match Arc::try_unwrap(self.consumer) {
            Ok(consumer) => switchboard_core::kafka::close_consumer(consumer, &whose).await,
            Err(_) => tracing::warn!(consumer = whose, "consumer still shared at shutdown"),
        }
        match (failure, result) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Reads and dispatches until `shutdown`, or until a lane fails.
    async fn read(
        &mut self,
        lanes: &mut Lanes,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            // Out of the group for too long: fail, so the loop is rebuilt with a new consumer.
            self.consumer.context().check_membership()?;
            if self.shared.assigned.swap(false, Ordering::AcqRel) {
                self.start_lanes(lanes, shutdown).await?;
            }
            self.resume_due();
            let next_due = self.waiting.values().map(|(_, due)| *due).min();
            let sleep = next_due
                .map_or(MEMBERSHIP_CHECK, |due| {
                    Duration::from_millis(u64::try_from(due - now_millis()).unwrap_or(0).max(1))
                })
                .min(MEMBERSHIP_CHECK);
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(ended) = lanes.running.join_next() => {
                    match ended {
                        Err(e) => anyhow::bail!("a delivery lane failed: {e}"),
                        Ok(Err(e)) => return Err(e),
                        // Stopped by a revoke; the next assignment starts new lanes.
                        Ok(Ok(())) if self.shared.lanes().ending() => continue,
                        // Before it, a lane's end would hold back every later offset of
                        // its partition.
                        Ok(Ok(())) => anyhow::bail!("a delivery lane stopped"),
                    }
                }
                _ = tokio::time::sleep(sleep) => continue,
                m = self.consumer.recv() => m.map(|m| m.detach()),
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // Broker errors repeat while it is away; do not spin on them.
                    tracing::warn!(connection = %self.delivery.connection(), error = %e, "consume failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // A record of a new assignment: its lanes and tables come first.
            if self.shared.assigned.swap(false, Ordering::AcqRel) {
                self.start_lanes(lanes, shutdown).await?;
            }
            let at = (message.topic().to_owned(), message.partition());
            if self.waiting.contains_key(&at) {
                // Fetched before the partition was paused; it is read again on resume.
                continue;
            }
            if let Some(due) = self.delivery.handoff.not_due(&message) {
                self.wait_for(&message, due)?;
                continue;
            }
            if lanes.queues.is_empty() {
                // Shutdown came while the tables were read.
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                anyhow::bail!("a record arrived before any assignment");
            }
            self.shared.offsets().start(&at, message.offset());
            self.in_flight_gauge();
            let lane = &lanes.queues[lane_of(&message, lanes.queues.len())];
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                sent = lane.send(message) => sent.map_err(|_| anyhow::anyhow!("a delivery lane stopped"))?,
            }
        }
    }

    /// After an assignment: the former lanes are gone (stopped at the revoke); reads the
    /// tables the former owner wrote and starts this assignment's lanes.
    async fn start_lanes(
        &mut self,
        lanes: &mut Lanes,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        self.shared.lanes().end_now();
        lanes.queues.clear();
        while let Some(ended) = lanes.running.join_next().await {
            ended??;
        }
        // The partitions start again at their commits, unpaused: a tier partition paused
        // for a due time and assigned here again stays paused until resumed, and a record
        // still not due pauses it again when read.
        match self.consumer.assignment() {
            Ok(assigned) if assigned.count() > 0 => {
                if let Err(e) = self.consumer.resume(&assigned) {
                    tracing::warn!(connection = %self.delivery.connection(), error = %e, "could not resume the assigned partitions");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(connection = %self.delivery.connection(), error = %e, "assignment unknown")
            }
        }
        self.waiting.clear();
        self.in_flight_gauge();
        self.delivery.load_tables(shutdown).await?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Not a child of `shutdown`: at shutdown the lanes deliver what they hold first.
        let generation = self.shared.next_generation();
        for _ in 0..self.concurrency {
            let (queue, queued) = mpsc::channel(LANE_QUEUE);
            lanes.queues.push(queue);
            let live = LiveLane::count_in(&self.shared);
            lanes.running.spawn(lane(
                live,
                Lane {
                    delivery: self.delivery.clone(),
                    consumer: self.consumer.clone(),
                    shared: self.shared.clone(),
                    in_flight: self.in_flight.clone(),
                    progress: self.progress.clone(),
                    queued,
                    ending: generation.clone(),
                },
            ));
        }
        Ok(())
    }

    fn in_flight_gauge(&self) {
        self.in_flight.set(self.shared.offsets().in_flight() as f64);
    }

    /// Pauses a tier partition at a record that is not due, to read it again at `due`.
    fn wait_for(&mut self, message: &OwnedMessage, due: i64) -> anyhow::Result<()> {
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
        let due: Vec<Partition> = self
            .waiting
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (topic, partition) in due {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition);
            if let Err(e) = self.consumer.resume(&list) {
                tracing::warn!(connection = %self.delivery.connection(), topic, partition, error = %e, "resume failed");
                continue;
            }
            self.waiting.remove(&(topic, partition));
        }
    }
}

/// One lane: delivers the records queued for it, one at a time.
struct Lane {
    delivery: Arc<Delivery>,
    consumer: Arc<SinkConsumer>,
    shared: Arc<Shared>,
    in_flight: metrics::Gauge,
    progress: Arc<Progress>,
    queued: mpsc::Receiver<OwnedMessage>,
    ending: Generation,
}

/// Delivers a lane's records and stores each offset that became storable. Ends with `Ok`
/// once drained (nothing left queued) or stopped (a revoke or shutdown), on a failure with
/// the error; either way the loop sees it end.
async fn lane(_live: LiveLane, mut lane: Lane) -> anyhow::Result<()> {
    let Generation { drain, stop } = lane.ending.clone();
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            m = lane.queued.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
            // Only once the queue is empty: the branch above takes what is queued.
            _ = drain.cancelled() => return Ok(()),
        };
        match lane.delivery.process(&message, &stop).await {
            Ok(Step::Done) => lane.progress.progressed(),
            Ok(Step::Interrupted) => return Ok(()),
            Err(e) => {
                // The loop stops on the first failure; the other lanes stop with it.
                stop.cancel();
                return Err(e);
            }
        }
        let (topic, partition) = (message.topic(), message.partition());
        let mut offsets = lane.shared.offsets();
        if let Some(storable) = offsets.finish(&(topic.to_owned(), partition), message.offset())
            && let Err(e) = lane.consumer.store_offset(topic, partition, storable)
        {
            // The partition was revoked meanwhile: its next owner redelivers the record,
            // which check-before-create absorbs.
            tracing::debug!(connection = %lane.delivery.connection(), topic, partition, error = %e, "offset not stored");
        }
        lane.in_flight.set(offsets.in_flight() as f64);
    }
}

/// The lane of `message`: by key, so a key's records share one; without a key, by partition.
fn lane_of(message: &OwnedMessage, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    match message.key() {
        Some(key) => key.hash(&mut hasher),
        None => (message.topic(), message.partition()).hash(&mut hasher),
    }
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}
