//! A sink's side of its group's rebalances: what the consumer's callbacks share with the
//! dispatch loop and its lanes (`dispatch.rs`, "Replicas").
//!
//! At a revoke the lanes deliver what they were handed and the group commits before the
//! callback returns, so the partitions' next owner starts right after the last delivered
//! record. An assignment is flagged for the loop, which reads the tables and starts lanes
//! before it hands out any record of it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use tokio_util::sync::CancellationToken;

use crate::offsets::Offsets;

/// Longest wait at a revoke for the lanes to deliver what was handed to them.
pub(crate) const REVOKE_BOUND: Duration = Duration::from_secs(60);

/// Longest wait at shutdown for the same.
pub(crate) const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// Longest wait, past those, for each lane to stop after the record at hand (its call
/// under way; the client's timeout bounds it).
pub(crate) const STOP_BOUND: Duration = Duration::from_secs(10);

/// The sink's consumer.
pub(crate) type SinkConsumer = StreamConsumer<Rebalances>;

/// What the dispatch loop, its lanes and the consumer's rebalance callbacks share.
#[derive(Default)]
pub(crate) struct Shared {
    offsets: Mutex<Offsets>,
    /// How the lanes of the current assignment end.
    lanes: Mutex<Generation>,
    /// Lanes not yet ended.
    live_lanes: AtomicUsize,
    /// Set by an assignment, taken by the loop: read the tables, start lanes.
    pub(crate) assigned: AtomicBool,
}

impl Shared {
    pub(crate) fn offsets(&self) -> std::sync::MutexGuard<'_, Offsets> {
        self.offsets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lanes(&self) -> Generation {
        self.lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts a new generation of lanes: the way to end them.
    pub(crate) fn next_generation(&self) -> Generation {
        let generation = Generation::default();
        *self.lanes.lock().unwrap_or_else(PoisonError::into_inner) = generation.clone();
        generation
    }

    /// Lets the lanes deliver what they hold, at most `bound`, then stops them after the
    /// record at hand (the rest is not stored, so it is read again). Whether all of it was
    /// delivered.
    pub(crate) fn drain_lanes(&self, bound: Duration) -> bool {
        let lanes = self.lanes();
        lanes.drain.cancel();
        if self.wait_for_lanes(bound) {
            return true;
        }
        self.stop_lanes();
        false
    }

    /// Stops the lanes after the record at hand, waiting at most [`STOP_BOUND`].
    fn stop_lanes(&self) {
        self.lanes().end_now();
        self.wait_for_lanes(STOP_BOUND);
    }

    /// Waits until every lane has ended, at most `bound`; whether they did.
    fn wait_for_lanes(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let wait = || {
            while self.live_lanes.load(Ordering::Acquire) > 0 {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            true
        };
        if self.live_lanes.load(Ordering::Acquire) == 0 {
            return true;
        }
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            // Called from the loop's task: hand its worker's other tasks (the lanes among
            // them) to another worker while this one waits.
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            // A single-threaded runtime could not run the lanes while this waits.
            Ok(_) => false,
            Err(_) => wait(),
        }
    }
}

/// How the lanes of one assignment end: `drain` lets each deliver what it holds first,
/// `stop` (also passed to each delivery, for its waits) ends it after the record at hand.
#[derive(Clone, Default)]
pub(crate) struct Generation {
    pub(crate) drain: CancellationToken,
    pub(crate) stop: CancellationToken,
}

impl Generation {
    pub(crate) fn ending(&self) -> bool {
        self.drain.is_cancelled() || self.stop.is_cancelled()
    }

    /// Ends the lanes after the record at hand, without delivering what they hold.
    pub(crate) fn end_now(&self) {
        self.drain.cancel();
        self.stop.cancel();
    }
}

/// The consumer's context: stops and commits at a revoke, flags an assignment.
pub(crate) struct Rebalances {
    connection: String,
    shared: Arc<Shared>,
    /// The partitions owned now, for the stall probe.
    assigned: switchboard_core::membership::Assigned,
}

impl Rebalances {
    pub(crate) fn new(connection: &str, assigned: switchboard_core::membership::Assigned) -> Self {
        Self {
            connection: connection.to_owned(),
            shared: Arc::default(),
            assigned,
        }
    }

    /// An error once the consumer has been out of its group for too long
    /// ([`switchboard_core::membership::MEMBERSHIP_BOUND`]): the loop fails and is rebuilt.
    pub(crate) fn check_membership(&self) -> anyhow::Result<()> {
        self.assigned.check_membership()
    }

    /// What the callbacks share with the loop and its lanes.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Revoke(_)) {
            return;
        }
        self.assigned.clear();
        if consumer.assignment_lost() {
            // The group moved on without this member (it did not poll within
            // max.poll.interval.ms): the partitions have a new owner already, and nothing
            // can be committed. Stop at once; what the lanes held is the new owner's.
            self.shared.stop_lanes();
            *self.shared.offsets() = Offsets::default();
            tracing::warn!(connection = %self.connection, "partitions lost to the group (no poll in time); their records are the next owner's");
            return;
        }
        // Everything handed to a lane is delivered and stored before the partitions go,
        // so the next owner starts after it: nothing is delivered twice, or out of order.
        if !self.shared.drain_lanes(REVOKE_BOUND) {
            tracing::warn!(connection = %self.connection, "lanes had not delivered what they held at a revoke; the next owner delivers it again");
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(connection = %self.connection, error = %e, "commit at revoke (nothing stored?)");
        }
        *self.shared.offsets() = Offsets::default();
        // Out of the group from the end of the drain (up to REVOKE_BOUND), not its start.
        self.assigned.out_from_now();
        tracing::info!(connection = %self.connection, "partitions revoked; finished records committed");
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(connection = %self.connection, partitions = partitions.count(), "partitions assigned");
            self.assigned.set(partitions);
            self.shared.assigned.store(true, Ordering::Release);
        }
    }
}

/// Counts a lane out when it ends, however it ends.
pub(crate) struct LiveLane(Arc<Shared>);

impl LiveLane {
    /// Counts a lane in, before its task runs; the guard counts it out even if it never
    /// runs.
    pub(crate) fn count_in(shared: &Arc<Shared>) -> Self {
        shared.live_lanes.fetch_add(1, Ordering::AcqRel);
        Self(shared.clone())
    }
}

impl Drop for LiveLane {
    fn drop(&mut self) {
        self.0.live_lanes.fetch_sub(1, Ordering::AcqRel);
    }
}
