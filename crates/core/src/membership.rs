//! Group membership: which partitions a consumer owns, and since when it is out of its
//! group, kept by its rebalance callback; and when a stage rebuilds a consumer that does
//! not rejoin.
//!
//! After a broker restart librdkafka's consumer sometimes never rejoins: its requests to
//! the group coordinator stay in the out-queue of a connection that no longer carries
//! anything. A new client, with new connections, rejoins at once. Two signals say a member
//! is stuck, whichever comes first:
//! - **The group went on without it.** Once a member has been out for [`REJOIN_GRACE`],
//!   [`watch_rejoin`] asks the broker about the group from a fresh client. A member that
//!   is rejoining shows: its JoinGroup puts the group into a rebalance, or it is listed.
//!   A group that is settled (`Stable`, `Empty`, `Dead`) without it, twice in a row
//!   [`PROBE_EVERY`] apart, has no rejoin coming.
//! - **It has been out for [`MEMBERSHIP_BOUND`]**, whatever the broker says (or when it
//!   cannot be asked).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;

/// How long a consumer may stay out of its group (its partitions revoked or lost, and no
/// assignment since, not even an empty one) before its stage rebuilds it: longer than a
/// session timeout (10 s) plus a rejoin, which is what librdkafka does by itself after a
/// broker restart. Past it the member is stuck (seen once under load after a broker
/// restart: no rejoin within 120 s, a request to the group coordinator never sent), and a
/// new client with new connections is the way back.
pub const MEMBERSHIP_BOUND: Duration = Duration::from_secs(45);

/// How often, at least, a stage looks at its membership.
pub const MEMBERSHIP_CHECK: Duration = Duration::from_secs(1);

/// How long a member may be out of its group before [`watch_rejoin`] asks whether the
/// group goes on without it. A rejoin after a revoke or a lost session takes a round trip
/// to the coordinator; until the broker is reachable, the question has no answer anyway.
pub const REJOIN_GRACE: Duration = Duration::from_secs(5);

/// How often [`watch_rejoin`] asks; two answers in a row decide.
pub const PROBE_EVERY: Duration = Duration::from_millis(2500);

/// Answers in a row that found the group settled without the member, before it is stuck.
const SETTLED_PROBES: u32 = 2;

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
    /// The current consumer's `client.id`, which names it among the group's members.
    client_id: String,
    /// Answers in a row, since it went out, that found the group settled without it.
    settled_without: u32,
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
        self.settled_without = 0;
    }

    /// What the broker said about the group, for the member `client_id`: `Some(state)`
    /// when it is settled without it, `None` otherwise (rebalancing, the member listed,
    /// or no answer). Counts only for the current member while it is out.
    fn probed(&mut self, client_id: &str, settled: Option<&str>) {
        if self.client_id != client_id || self.out_since.is_none() {
            return;
        }
        match settled {
            Some(_) => self.settled_without += 1,
            None => self.settled_without = 0,
        }
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
            Some(out) if self.settled_without >= SETTLED_PROBES => anyhow::bail!(
                "the consumer has been out of its group for {} s, and the group has settled without it (no rejoin under way); rebuilding it",
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
            m.settled_without = 0;
        }
    }

    /// Owns nothing and is out of the group (revoked, lost, or closed), since the first
    /// of these if several come in a row.
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.revoked(Instant::now());
        }
    }

    /// Owns nothing, and out of the group from now: a revoke whose own handling took a
    /// while.
    pub fn out_from_now(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.out_from(Instant::now());
        }
    }

    /// A new consumer for `stage`, out of the group until its first assignment: returns
    /// its `client.id`, which [`watch_rejoin`] looks for among the group's members. Set it
    /// on the consumer's config. It is `<stage>.<random>`, unique to this consumer, unless
    /// the operator set `client.id` in `kafka.properties` (for quotas or logs): that one is
    /// kept as it is, and where replicas share it the probe takes any of them for this
    /// member and leaves the rebuild to [`MEMBERSHIP_BOUND`].
    pub fn new_member(&self, kafka: &KafkaConfig, stage: &str) -> String {
        let client_id = kafka
            .properties
            .get("client.id")
            .cloned()
            .unwrap_or_else(|| {
                let incarnation = uuid::Uuid::new_v4().simple().to_string();
                format!("{stage}.{}", &incarnation[..8])
            });
        if let Ok(mut m) = self.0.lock() {
            m.out_from(Instant::now());
            m.client_id.clone_from(&client_id);
        }
        client_id
    }

    /// The current member's `client.id`, once it has been out of its group for
    /// [`REJOIN_GRACE`].
    fn due_for_probe(&self) -> Option<String> {
        let m = self.0.lock().ok()?;
        let out = m.out_for(Instant::now())?;
        (out >= REJOIN_GRACE && !m.client_id.is_empty()).then(|| m.client_id.clone())
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

/// While the consumer in `assigned` is out of `group` for longer than [`REJOIN_GRACE`],
/// asks the broker every [`PROBE_EVERY`] whether the group goes on without it, until
/// `shutdown`. The stage's membership check then fails (see the module's doc).
pub fn watch_rejoin(
    kafka: KafkaConfig,
    group: String,
    assigned: Assigned,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
            let Some(client_id) = assigned.due_for_probe() else {
                continue;
            };
            let asked = {
                let (kafka, group, client_id) = (kafka.clone(), group.clone(), client_id.clone());
                tokio::task::spawn_blocking(move || settled_without(&kafka, &group, &client_id))
                    .await
            };
            // A probe that fails (broker away, task lost) is no answer: the count restarts.
            let settled = match asked.map_err(anyhow::Error::from).and_then(|r| Ok(r?)) {
                Ok(settled) => settled,
                Err(e) => {
                    tracing::debug!(%group, error = %e, "group probe failed");
                    None
                }
            };
            if let Some(state) = &settled {
                tracing::info!(%group, member = %client_id, %state, "the group has settled without this member");
            }
            if let Ok(mut m) = assigned.0.lock() {
                m.probed(&client_id, settled.as_deref());
            }
        }
    })
}

/// Blocking. `Some(state)` when `group` is settled (not rebalancing) and `client_id` is not
/// among its members; asked from a new client, whose connections are fresh.
fn settled_without(
    kafka: &KafkaConfig,
    group: &str,
    client_id: &str,
) -> Result<Option<String>, rdkafka::error::KafkaError> {
    let client: BaseConsumer = crate::kafka::client_config(kafka).create()?;
    let list = client.fetch_group_list(Some(group), Duration::from_secs(2))?;
    let Some(found) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(None);
    };
    let settled = matches!(found.state(), "Stable" | "Empty" | "Dead");
    let listed = found.members().iter().any(|m| m.client_id() == client_id);
    Ok((settled && !listed).then(|| found.state().to_owned()))
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

    #[test]
    fn a_group_settled_without_the_member_twice_in_a_row_rebuilds_it() {
        let t0 = Instant::now();
        let mut m = Membership {
            client_id: "sink.a".into(),
            ..Membership::default()
        };
        m.probed("sink.a", Some("Empty"));
        assert_eq!(m.settled_without, 0, "a member in its group is not probed");
        m.revoked(t0);
        m.probed("sink.a", Some("Empty"));
        assert!(m.check(t0).is_ok(), "one answer does not decide");
        m.probed("sink.a", None);
        m.probed("sink.a", Some("Stable"));
        assert!(
            m.check(t0).is_ok(),
            "a rebalance in between starts the count again"
        );
        m.probed("sink.old", Some("Stable"));
        assert!(
            m.check(t0).is_ok(),
            "an answer about a former member does not count"
        );
        m.probed("sink.a", Some("Stable"));
        assert!(
            m.check(t0).is_err(),
            "settled without it, twice in a row: rebuild"
        );
        m.out_from(t0);
        assert!(m.check(t0).is_ok(), "a new consumer starts the count again");
    }
}
