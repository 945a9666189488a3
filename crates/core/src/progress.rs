//! Stall detection: whether a stage moves while work waits for it.
//!
//! A stage reports each step of progress (a committed transaction, a record done at a
//! target, a finished poll cycle) and how long the oldest work waiting for it has waited
//! (records it has not committed yet, a poll that is due). It is **stalled** once both have
//! lasted `health.stall_after_secs`: work waits, and nothing moved for that long. Its
//! `/readyz` then answers 503 with the reason, and `switchboard_stage_stalled{stage}` is 1.
//! An idle stage (nothing waits) is never stalled, however long ago it last moved.
//!
//! Liveness (`/healthz`) stays apart: a stage that cannot reach Kafka is not ready, but
//! restarting it would not bring Kafka back; the stages rebuild their own clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::membership::Assigned;

/// Nothing waits.
const NONE: u64 = u64::MAX;

/// One stage's progress and the age of the work waiting for it.
#[derive(Debug)]
pub struct Progress {
    stage: String,
    after: Option<Duration>,
    epoch: Instant,
    /// Last progress, ms since `epoch`.
    last: AtomicU64,
    /// Since when the oldest waiting work waits, ms since `epoch`, or [`NONE`].
    waiting_since: AtomicU64,
}

impl Progress {
    /// A stage named `stage` (a metric label) that is stalled after `after`; `None` never is.
    pub fn new(stage: impl Into<String>, after: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            stage: stage.into(),
            after,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NONE),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// The stage moved: a commit, a delivery, a poll.
    pub fn progressed(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long the oldest work waiting for the stage has waited; `None`: nothing waits.
    pub fn set_waiting(&self, waited: Option<Duration>) {
        let since = waited.map_or(NONE, |w| {
            self.now_ms()
                .saturating_sub(u64::try_from(w.as_millis()).unwrap_or(u64::MAX))
        });
        self.waiting_since.store(since, Ordering::Relaxed);
    }

    /// Why the stage is stalled, or `None` while it is not.
    pub fn stalled(&self) -> Option<String> {
        let after = u64::try_from(self.after?.as_millis()).unwrap_or(u64::MAX);
        let since = self.waiting_since.load(Ordering::Relaxed);
        if since == NONE {
            return None;
        }
        let now = self.now_ms();
        let waited = now.saturating_sub(since);
        let still = now.saturating_sub(self.last.load(Ordering::Relaxed));
        (waited >= after && still >= after).then(|| {
            format!(
                "stalled: {} made no progress for {} s while its input waited {} s",
                self.stage,
                still / 1000,
                waited / 1000
            )
        })
    }

    /// Sets `switchboard_stage_stalled{stage}` to what [`Progress::stalled`] says now.
    pub fn export(&self) {
        let stalled = self.stalled().is_some();
        metrics::gauge!("switchboard_stage_stalled", "stage" => self.stage.clone())
            .set(if stalled { 1.0 } else { 0.0 });
    }
}

/// Every few seconds, measures how long the oldest record of `group` on the partitions in
/// `assigned` of `topics` has waited ([`crate::lag::oldest_waiting`]) and tells `progress`.
/// When Kafka cannot be asked, the last answer stands: a
/// stage cut off from its broker waits as much as before.
pub fn watch_group(
    kafka: KafkaConfig,
    group: String,
    assigned: Assigned,
    topics: Vec<String>,
    progress: Arc<Progress>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let every = progress
        .after
        .map_or(Duration::from_secs(5), |a| {
            (a / 4).min(Duration::from_secs(5))
        })
        .max(Duration::from_millis(500));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let mut owned = assigned.get();
            owned.retain(|(t, _)| topics.contains(t));
            // A member out of its group waits with the whole group's work, for as long as
            // it has been out: stalled if it stays out while that work waits. A member
            // in the group that owns nothing of `topics` has nothing to wait for.
            let out = assigned.out_of_group_for();
            if owned.is_empty() && out.is_none() {
                progress.set_waiting(None);
                progress.export();
                continue;
            }
            let (kafka, group, topics) = (kafka.clone(), group.clone(), topics.clone());
            let measured = tokio::task::spawn_blocking(move || {
                let only = (!owned.is_empty()).then_some(owned);
                crate::lag::oldest_waiting(
                    &kafka,
                    &group,
                    &topics,
                    only.as_deref(),
                    crate::lag::now_millis(),
                )
            })
            .await;
            match measured {
                // A partition whose lag is a transaction's commit marker has no record to
                // date: nothing waits there.
                Ok(Ok(oldest)) => progress.set_waiting((oldest > 0).then(|| {
                    let waited = Duration::from_secs(u64::try_from(oldest).unwrap_or(0));
                    out.map_or(waited, |out| out.min(waited))
                })),
                Ok(Err(e)) => {
                    tracing::debug!(stage = %progress.stage, error = %e, "lag probe failed")
                }
                Err(e) => tracing::debug!(stage = %progress.stage, error = %e, "lag probe failed"),
            }
            progress.export();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_never_stalled() {
        let p = Progress::new("t", Some(Duration::ZERO));
        assert!(p.stalled().is_none());
    }

    #[test]
    fn waiting_without_progress_is_stalled() {
        let p = Progress::new("t", Some(Duration::ZERO));
        p.set_waiting(Some(Duration::from_secs(5)));
        assert!(p.stalled().is_some_and(|r| r.contains("stalled")));
    }

    #[test]
    fn recent_progress_or_new_work_is_not_stalled() {
        let p = Progress::new("t", Some(Duration::from_secs(60)));
        // Work waited long, but the stage moved just now (epoch = its start).
        p.set_waiting(Some(Duration::from_secs(600)));
        assert!(p.stalled().is_none());
        // Nothing moved for long, but the work just arrived.
        let q = Progress {
            stage: "t".into(),
            after: Some(Duration::from_secs(60)),
            epoch: Instant::now() - Duration::from_secs(600),
            last: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NONE),
        };
        q.set_waiting(Some(Duration::from_secs(1)));
        assert!(q.stalled().is_none());
        q.set_waiting(Some(Duration::from_secs(61)));
        assert!(q.stalled().is_some());
    }

    #[test]
    fn switched_off_is_never_stalled() {
        let p = Progress::new("t", None);
        p.set_waiting(Some(Duration::from_secs(3600)));
        assert!(p.stalled().is_none());
    }
}
