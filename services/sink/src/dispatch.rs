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
//! - **Shutdown.** On cancel the loop stops reading; each lane finishes or abandons the
//!   record at hand (an abandoned one is not stored), the lanes' finished records are
//!   stored, and the group commits before it leaves.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Delivery, Step};
use crate::handoff::now_millis;
use crate::offsets::{Offsets, Partition};

/// Records queued per lane ahead of the one it is delivering: enough to keep a lane busy
/// while the loop serves the others, few enough that a stalled lane soon stops the reading.
const LANE_QUEUE: usize = 8;

/// Longest wait for the consumer to leave its group at shutdown.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// What a lane reports about a record.
enum Report {
    Done(Partition, i64),
    Failed(anyhow::Error),
}

/// Reads one connection's topics and spreads the records over its lanes.
pub(crate) struct Dispatch {
    delivery: Arc<Delivery>,
    consumer: StreamConsumer,
    concurrency: usize,
    /// Tier partitions waiting for their next record to become due: (offset, due ms).
    waiting: HashMap<Partition, (i64, i64)>,
    offsets: Offsets,
    /// `switchboard_sink_in_flight` of this connection, looked up once.
    in_flight: metrics::Gauge,
}

impl Dispatch {
    /// Subscribes to `input_topics` and the connection's retry tiers.
    pub(crate) fn new(
        delivery: Arc<Delivery>,
        consumer: StreamConsumer,
        input_topics: &[String],
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let mut subscribed: Vec<&str> = input_topics.iter().map(String::as_str).collect();
        subscribed.extend(delivery.handoff.tier_topics());
        consumer.subscribe(&subscribed)?;
        let in_flight = metrics::gauge!("switchboard_sink_in_flight", "connection" => delivery.connection().to_owned());
        Ok(Self {
            in_flight,
            delivery,
            consumer,
            concurrency: concurrency.max(1),
            waiting: HashMap::new(),
            offsets: Offsets::default(),
        })
    }

    pub(crate) async fn run(mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        // Lanes stop on shutdown, or when one of them (or this loop) fails.
        let stop = shutdown.child_token();
        let (reports, mut reported) = mpsc::unbounded_channel();
        let mut lanes = Vec::with_capacity(self.concurrency);
        let mut running = JoinSet::new();
        for _ in 0..self.concurrency {
            let (queue, queued) = mpsc::channel(LANE_QUEUE);
            lanes.push(queue);
            running.spawn(lane(
                self.delivery.clone(),
                queued,
                reports.clone(),
                stop.clone(),
            ));
        }
        drop(reports);
        let result = self.read(&lanes, &mut running, &mut reported, &stop).await;
        stop.cancel();
        drop(lanes);
        while running.join_next().await.is_some() {}
        // What the lanes finished before they stopped is stored and committed, so the next
        // owner starts right after it (and not earlier, which would only cost an
        // idempotent redelivery). A lane's own error says more than the loop's.
        let mut failure = None;
        while let Some(report) = reported.recv().await {
            if let Err(e) = self.report(report) {
                failure.get_or_insert(e);
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(connection = %self.delivery.connection(), error = %e, "final commit (nothing stored?)");
        }
        let connection = self.delivery.connection().to_owned();
        if !switchboard_core::kafka::close_within(self.consumer, CLOSE_BOUND).await {
            tracing::warn!(
                connection,
                "consumer did not leave its group in time (broker unreachable?)"
            );
        }
        match (failure, result) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Reads and dispatches until `stop`, or until a lane fails.
    async fn read(
        &mut self,
        lanes: &[mpsc::Sender<OwnedMessage>],
        running: &mut JoinSet<()>,
        reported: &mut mpsc::UnboundedReceiver<Report>,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            self.resume_due();
            let next_due = self.waiting.values().map(|(_, due)| *due).min();
            let sleep = next_due.map_or(Duration::from_secs(3600), |due| {
                Duration::from_millis(u64::try_from(due - now_millis()).unwrap_or(0).max(1))
            });
            let message = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                Some(report) = reported.recv() => {
                    self.report(report)?;
                    continue;
                }
                // A lane ends only on stop: before it, its end is a failure (a panic), and
                // its record would hold back every later offset of its partition.
                Some(ended) = running.join_next() => {
                    return Err(match ended {
                        Err(e) => anyhow::anyhow!("a delivery lane failed: {e}"),
                        Ok(()) => anyhow::anyhow!("a delivery lane stopped"),
                    });
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
            let at = (message.topic().to_owned(), message.partition());
            if self.waiting.contains_key(&at) {
                // Fetched before the partition was paused; it is read again on resume.
                continue;
            }
            if let Some(due) = self.delivery.handoff.not_due(&message) {
                self.wait_for(&message, due)?;
                continue;
            }
            self.offsets.start(&at, message.offset());
            self.in_flight_gauge();
            let lane = &lanes[lane_of(&message, lanes.len())];
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                sent = lane.send(message) => sent.map_err(|_| anyhow::anyhow!("a delivery lane stopped"))?,
            }
        }
    }

    /// Takes a lane's report: stores what became storable, or fails the loop.
    fn report(&mut self, report: Report) -> anyhow::Result<()> {
        let (partition, offset) = match report {
            Report::Done(partition, offset) => (partition, offset),
            Report::Failed(e) => return Err(e),
        };
        if let Some(storable) = self.offsets.finish(&partition, offset) {
            let (topic, number) = &partition;
            if let Err(e) = self.consumer.store_offset(topic, *number, storable) {
                // The partition was revoked meanwhile: its next owner redelivers the
                // record, which check-before-create absorbs.
                tracing::debug!(connection = %self.delivery.connection(), topic, partition = number, error = %e, "offset not stored");
            }
        }
        self.in_flight_gauge();
        Ok(())
    }

    fn in_flight_gauge(&self) {
        self.in_flight.set(self.offsets.in_flight() as f64);
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

/// Delivers the records queued for one lane, one at a time, and reports each one done.
async fn lane(
    delivery: Arc<Delivery>,
    mut queued: mpsc::Receiver<OwnedMessage>,
    reports: mpsc::UnboundedSender<Report>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            m = queued.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let report = match delivery.process(&message, &stop).await {
            Ok(Step::Done) => Report::Done(
                (message.topic().to_owned(), message.partition()),
                message.offset(),
            ),
            Ok(Step::Interrupted) => return,
            Err(e) => {
                // The loop stops on the first failure; the others stop with it.
                let _ = reports.send(Report::Failed(e));
                stop.cancel();
                return;
            }
        };
        if reports.send(report).is_err() {
            return;
        }
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
