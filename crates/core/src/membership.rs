//! Group membership: which partitions a consumer owns, and since when it is out of its
//! group, kept by its rebalance callback; and the bound past which a stage rebuilds a
//! consumer that does not rejoin.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;

/// How long a consumer may stay out of its group (its partitions revoked or lost, and no
/// assignment since, not even an empty one) before its stage rebuilds it: longer than a
/// session timeout (10 s) plus a rejoin, which is what librdkafka does by itself after a
/// broker restart. Past it the member is stuck (seen once under load after a broker
/// restart: no rejoin within 120 s, a request to the group coordinator never sent), and a
/// new client with new connections is the way back.
pub const MEMBERSHIP_BOUND: Duration = Duration::from_secs(45);

/// How often, at least, a stage looks at its membership.
pub const MEMBERSHIP_CHECK: Duration = Duration::from_secs(5);

/// The partitions a consumer owns now, and since when it is out of its group, kept by its
/// rebalance callback for the probe and for the stage's membership check.
#[derive(Debug, Clone, Default)]
pub struct Assigned(Arc<Mutex<Membership>>);

#[derive(Debug, Default)]
struct Membership {
    owned: Vec<(String, i32)>,
    /// Since when no assignment holds (revoked, lost, or not yet joined); `None` while
    /// one does, even an empty one.
    out_since: Option<Instant>,
}

impl Membership {
    /// Out of the group since `at`, unless it already was (then since then).
    fn revoked(&mut self, at: Instant) {
        self.owned.clear();
        self.out_since.get_or_insert(at);
    }

    /// Out of the group since `at`, whatever came before.
    fn out_from(&mut self, at: Instant) {
        self.owned.clear();
        self.out_since = Some(at);
    }

    fn out_for(&self, now: Instant) -> Option<Duration> {
        self.out_since.map(|t| now.saturating_duration_since(t))
    }

    fn check(&self, now: Instant) -> anyhow::Result<()> {
        match self.out_for(now) {
            Some(out) if out > MEMBERSHIP_BOUND => anyhow::bail!(
                "the consumer has been out of its group for {} s (no assignment since its partitions were revoked or lost); rebuilding it",
                out.as_secs()
            ),
            _ => Ok(()),
        }
    }
}

impl Assigned {
    /// An assignment: replaces the set with `list` (which may be empty: a member of the
    /// group with nothing to do).
    pub fn set(&self, list: &TopicPartitionList) {
        let partitions = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if let Ok(mut m) = self.0.lock() {
            m.owned = partitions;
            m.out_since = None;
        }
    }

    /// Owns nothing and is out of the group (revoked, lost, or closed), since the first
    /// of these if several come in a row.
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.revoked(Instant::now());
        }
    }

    /// Owns nothing, and out of the group from now: a new consumer (not since its
    /// predecessor left), or a revoke whose own handling took a while.
    pub fn out_from_now(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.out_from(Instant::now());
        }
    }

    /// The owned partitions.
    pub fn get(&self) -> Vec<(String, i32)> {
        self.0.lock().map(|m| m.owned.clone()).unwrap_or_default()
    }

    /// How long the consumer has been out of its group; `None` while it is in it.
    pub fn out_of_group_for(&self) -> Option<Duration> {
        self.0.lock().ok()?.out_for(Instant::now())
    }

    /// An error for the stage to rebuild its consumer on, once it has been out of its
    /// group for longer than [`MEMBERSHIP_BOUND`].
    pub fn check_membership(&self) -> anyhow::Result<()> {
        match self.0.lock() {
            Ok(m) => m.check(Instant::now()),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_out_of_its_group_from_a_revoke_until_any_assignment() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = Membership::default();
        assert_eq!(m.out_for(t0), None, "a member until told otherwise");
        m.revoked(t0);
        m.revoked(t0 + s(20));
        assert_eq!(
            m.out_for(t0 + s(30)),
            Some(s(30)),
            "a second revoke keeps the first one's time"
        );
        assert!(m.check(t0 + MEMBERSHIP_BOUND).is_ok(), "within the bound");
        assert!(
            m.check(t0 + MEMBERSHIP_BOUND + s(1)).is_err(),
            "past the bound: rebuild"
        );
        m.out_from(t0 + s(40));
        assert_eq!(
            m.out_for(t0 + s(50)),
            Some(s(10)),
            "a new consumer counts from its start"
        );
        assert!(m.check(t0 + MEMBERSHIP_BOUND + s(1)).is_ok());

        // An empty assignment is membership too: an extra replica with nothing to do.
        let a = Assigned::default();
        a.clear();
        assert!(a.out_of_group_for().is_some());
        a.set(&TopicPartitionList::new());
        assert!(a.out_of_group_for().is_none());
        assert!(a.check_membership().is_ok());
        assert!(a.get().is_empty());
    }
}
