//! Two replicas never poll the same connection at once.
//!
//! Ownership rides on Kafka's group protocol: every poller joins the group
//! `<prefix>.poller` on the topic `<prefix>.poller.leases` (no records, only partitions),
//! and a connection belongs to whoever holds partition `hash(connection) % partitions`.
//! Before a partition is revoked, the rebalance callback waits for a poll cycle running on
//! it to end, and the eager rebalance protocol hands it to the next owner only after that,
//! so two cycles of one connection never overlap. A replica that dies stops holding its
//! partitions when its session times out.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use switchboard_core::config::KafkaConfig;
use switchboard_core::kafka::{Cleanup, TopicSpec, client_config};
use switchboard_core::membership::{self, Assigned};
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

/// Partitions of the leases topic: the most pollers that can share the work.
pub(crate) const LEASE_PARTITIONS: i32 = 12;

struct LeaseState {
    owned: Mutex<HashSet<i32>>,
    /// Whether (and since when) this replica is out of the group, for the rebuild.
    membership: Assigned,
    cycles: Vec<Arc<tokio::sync::Mutex<()>>>,
}

pub(crate) struct LeaseContext {
    state: Arc<LeaseState>,
    /// Set when this member is replaced: its callbacks (its close may end late) no longer
    /// touch the state.
    retired: AtomicBool,
}

impl LeaseContext {
    fn new(state: Arc<LeaseState>) -> Self {
        let retired = AtomicBool::new(false);
        Self { state, retired }
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

impl ClientContext for LeaseContext {}

impl ConsumerContext for LeaseContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.retired() {
            return;
        }
        if let Rebalance::Revoke(list) = rebalance {
            for element in list.elements() {
                let Some(cycle) = usize::try_from(element.partition())
                    .ok()
                    .and_then(|p| self.state.cycles.get(p))
                else {
                    continue;
                };
                // Runs on the blocking thread that polls the group: wait here until a
                // running cycle of this partition has finished.
                let _running = cycle.blocking_lock();
                self.state
                    .owned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&element.partition());
            }
            self.state.membership.out_from_now();
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.retired() {
            return;
        }
        if let Rebalance::Assign(list) = rebalance {
            let mut owned = self
                .state
                .owned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            owned.extend(list.elements().iter().map(|e| e.partition()));
            self.state.membership.set(list);
            tracing::info!(partitions = ?owned, "poll leases assigned");
        }
    }
}

/// This replica's share of the connections.
pub(crate) struct Leases {
    state: Arc<LeaseState>,
}

/// The lease group's consumer, returned at shutdown for closing.
pub(crate) type Membership = BaseConsumer<LeaseContext>;

impl Leases {
    pub(crate) fn topic_spec(prefix: &str) -> TopicSpec {
        TopicSpec::new(
            format!("{prefix}.poller.leases"),
            Cleanup::Delete(Duration::from_secs(3600)),
        )
        .with_partitions(LEASE_PARTITIONS)
    }

    /// Joins the group (a member left out is replaced, see [`membership::watch_rejoin`]);
    /// the returned task keeps the membership alive until shutdown, then unsubscribes and
    /// hands back the consumer, to be closed within a bound (`kafka::close_consumer`).
    pub(crate) fn join(
        kafka: &KafkaConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Self>, tokio::task::JoinHandle<Membership>)> {
        let state = Arc::new(LeaseState {
            owned: Mutex::default(),
            membership: Assigned::default(),
            cycles: (0..LEASE_PARTITIONS)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        });
        let member = {
            let (kafka, state) = (kafka.clone(), state.clone());
            move || -> anyhow::Result<Membership> {
                let consumer: BaseConsumer<LeaseContext> = client_config(&kafka)
                    .set("group.id", group_of(&kafka))
                    .set("client.id", state.membership.new_member(&kafka, "poller"))
                    .set("enable.auto.commit", "false")
                    .set("session.timeout.ms", "10000")
                    .set("partition.assignment.strategy", "range")
                    .create_with_context(LeaseContext::new(state.clone()))?;
                consumer.subscribe(&[&format!("{}.poller.leases", kafka.topic_prefix)])?;
                Ok(consumer)
            }
        };
        let mut consumer = member()?;
        // Ends at shutdown, as the membership does.
        membership::watch_rejoin(
            kafka.clone(),
            group_of(kafka),
            state.membership.clone(),
            shutdown.clone(),
        );
        let task = tokio::task::spawn_blocking(move || {
            while !shutdown.is_cancelled() {
                // No records ever arrive; polling serves the group protocol and callbacks.
                let _ = consumer.poll(Duration::from_millis(200));
                if let Err(why) = consumer.context().state.membership.check_membership() {
                    // Stuck out of the group: a new member with new connections rejoins.
                    // Owning nothing since the revoke, this replica polls nothing meanwhile.
                    tracing::warn!(error = %format!("{why:#}"), "poll leases");
                    match member() {
                        Ok(fresh) => {
                            consumer.context().retire();
                            // Dropping leaves the group, which waits for the coordinator:
                            // off this thread, which serves the new member.
                            let old = std::mem::replace(&mut consumer, fresh);
                            let _ = std::thread::Builder::new()
                                .name("lease-close".to_owned())
                                .spawn(move || drop(old));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "poll leases: a new member could not be made; trying again")
                        }
                    }
                }
            }
            consumer.unsubscribe();
            for _ in 0..10 {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            consumer
        });
        Ok((Arc::new(Self { state }), task))
    }

    /// How long this replica has been out of the lease group (`None`: in it).
    pub(crate) fn out_of_group_for(&self) -> Option<Duration> {
        self.state.membership.out_of_group_for()
    }

    /// The right to run one poll cycle of `connection`, if this replica owns it now. Hold
    /// the guard for the whole cycle.
    pub(crate) async fn acquire(&self, connection: &str) -> Option<OwnedMutexGuard<()>> {
        let partition = partition_of(connection);
        let cycle = self
            .state
            .cycles
            .get(usize::try_from(partition).ok()?)?
            .clone();
        let guard = cycle.lock_owned().await;
        let owned = self
            .state
            .owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&partition);
        owned.then_some(guard)
    }
}

/// A stable partition per connection (FNV-1a; the same in every replica and release).
fn partition_of(connection: &str) -> i32 {
    let hash = connection.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i32::try_from(hash % LEASE_PARTITIONS as u64).unwrap_or(0)
}

/// The lease group: `<prefix>.poller`.
fn group_of(kafka: &KafkaConfig) -> String {
    format!("{}.poller", kafka.topic_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_fnv1a_and_stay_in_range() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector), which is 4 mod 12.
        assert_eq!(partition_of("a"), 4);
        for name in ["books", "shop", "crm", "a", ""] {
            assert!((0..LEASE_PARTITIONS).contains(&partition_of(name)));
        }
    }
}
