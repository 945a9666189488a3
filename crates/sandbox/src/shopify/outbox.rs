//! The webhook outbox: which deliveries are due, held or done, and the retry schedule.
//!
//! Contract facts followed (saas-contracts.md §1.1, §1.3, §5):
//! - Success is any 2xx; a non-2xx or a timeout is a failure (§1.3).
//! - Up to **8 retries over 4 hours** with exponential backoff, each carrying the original
//!   payload, to the address configured when the event fired (§1.3). Shopify does not
//!   publish the intervals. The default schedule doubles from one minute and puts the 8th
//!   retry exactly 4 hours after the first attempt: +1, +2, +4, +8, +16, +32, +64 minutes,
//!   then +113 minutes (cumulative 1 min … 2 h 7 min, 4 h).
//! - After the 8th retry fails, a subscription created through the Admin API is deleted
//!   (§1.3 "after 8 consecutive failures"). Stricter reading: removal happens when a
//!   webhook's retries are exhausted, and every other webhook still queued or held for that
//!   subscription is dropped with it (the receiver never sees them).
//! - IDs (§1.1, §5): `X-Shopify-Event-Id` names the event and is shared by the webhooks of
//!   every subscription to it; `X-Shopify-Webhook-Id` is one per webhook (event ×
//!   subscription) and stays the same on all of its retries, as an idempotency key must
//!   (the SDK docs call it that). `X-Shopify-Triggered-At` and the body also stay the same.
//!
//! Switches: *duplicates* sends a webhook's first attempt twice, byte for byte, with the
//! same webhook and event IDs; *out of order* holds each new webhook of a subscription
//! until the next one is triggered and then sends the newer one first (a webhook held
//! longer than [`OUT_OF_ORDER_MAX_HOLD`] goes out alone, late).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Shopify's retry intervals as the emulator models them (see the module doc).
pub const DEFAULT_RETRY_DELAYS: [Duration; 8] = [
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(240),
    Duration::from_secs(480),
    Duration::from_secs(960),
    Duration::from_secs(1920),
    Duration::from_secs(3840),
    Duration::from_secs(6780),
];

/// Longest (virtual) time the out-of-order switch holds a webhook waiting for a successor.
pub const OUT_OF_ORDER_MAX_HOLD: Duration = Duration::from_secs(30);

/// One webhook on its way: what every attempt repeats.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub seq: u64,
    pub webhook_id: String,
    pub event_id: String,
    pub topic: String,
    pub subscription_id: u64,
    pub address: String,
    pub api_version: String,
    pub body: Vec<u8>,
    pub triggered_at: OffsetDateTime,
    /// Attempts already made (0 before the first).
    pub attempts: u32,
    pub first_due: OffsetDateTime,
    pub due: OffsetDateTime,
    /// Send the first attempt twice (duplicates switch at trigger time).
    pub send_twice: bool,
}

/// One delivery attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryAttempt {
    /// `X-Shopify-Webhook-Id`.
    pub webhook_id: String,
    /// `X-Shopify-Event-Id`.
    pub event_id: String,
    /// `X-Shopify-Topic`.
    pub topic: String,
    /// The subscription it was for.
    pub subscription_id: u64,
    /// Where it went.
    pub address: String,
    /// `X-Shopify-API-Version` it carried.
    pub api_version: String,
    /// 0 for the first attempt, 1..=8 for retries.
    pub attempt: u32,
    /// True for the extra copy sent by the duplicates switch.
    pub duplicate: bool,
    /// When it was scheduled (virtual time).
    #[serde(serialize_with = "ser_rfc3339")]
    pub due: OffsetDateTime,
    /// When it was sent (virtual time).
    #[serde(serialize_with = "ser_rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's status, if it answered in time.
    pub status: Option<u16>,
    /// Why no status: connection refused, timeout, ...
    pub error: Option<String>,
    /// True for a 2xx answer.
    pub delivered: bool,
}

/// A subscription deleted because a webhook exhausted its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedSubscription {
    /// Its ID.
    pub id: u64,
    /// Its topic.
    pub topic: String,
    /// Its address.
    pub address: String,
    /// When it was removed (virtual time).
    #[serde(serialize_with = "ser_rfc3339")]
    pub at: OffsetDateTime,
    /// Webhooks dropped with it (not counting the one that exhausted its retries).
    pub dropped_webhooks: usize,
}

pub(crate) fn ser_rfc3339<S: serde::Serializer>(
    t: &OffsetDateTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format(&Rfc3339).unwrap_or_default())
}

/// Longest delivery log kept; older attempts are dropped first.
const MAX_LOG: usize = 50_000;

/// Queue, held webhooks, log.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Vec<Job>,
    held: BTreeMap<u64, (Job, OffsetDateTime)>,
    log: Vec<DeliveryAttempt>,
    removed: Vec<RemovedSubscription>,
    next_seq: u64,
}

impl Outbox {
    fn push(&mut self, mut job: Job) {
        job.seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(job);
    }

    /// Queues a new webhook, honouring the out-of-order switch.
    pub fn enqueue_new(&mut self, job: Job, now: OffsetDateTime, out_of_order: bool) {
        if !out_of_order {
            self.push(job);
            return;
        }
        match self.held.remove(&job.subscription_id) {
            Some((mut held, _)) => {
                self.push(job);
                held.due = now;
                held.first_due = now;
                self.push(held);
            }
            None => {
                let release = now + OUT_OF_ORDER_MAX_HOLD;
                self.held.insert(job.subscription_id, (job, release));
            }
        }
    }

    /// Sends every held webhook now (the out-of-order switch was turned off).
    pub fn release_held(&mut self, now: OffsetDateTime) {
        let held = std::mem::take(&mut self.held);
        for (_, (mut job, _)) in held {
            job.due = now;
            job.first_due = now;
            self.push(job);
        }
    }

    /// Queues the next retry of a failed job.
    pub fn requeue(&mut self, job: Job) {
        self.push(job);
    }

    /// The next job due at `now`, earliest first, then in trigger order.
    pub fn take_due(&mut self, now: OffsetDateTime) -> Option<Job> {
        let expired: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (_, release))| *release <= now)
            .map(|(sub, _)| *sub)
            .collect();
        for sub in expired {
            if let Some((mut job, release)) = self.held.remove(&sub) {
                job.due = release;
                job.first_due = release;
                self.push(job);
            }
        }
        let index = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, j)| j.due <= now)
            .min_by_key(|(_, j)| (j.due, j.seq))
            .map(|(i, _)| i)?;
        Some(self.queue.swap_remove(index))
    }

    /// When the loop must look again (earliest due or hold release), if ever.
    pub fn next_wake(&self) -> Option<OffsetDateTime> {
        let due = self.queue.iter().map(|j| j.due);
        let held = self.held.values().map(|(_, release)| *release);
        due.chain(held).min()
    }

    /// Webhooks waiting (queued, retrying or held).
    pub fn pending(&self) -> usize {
        self.queue.len() + self.held.len()
    }

    /// Drops every webhook of a removed subscription; returns how many.
    pub fn drop_subscription(&mut self, id: u64) -> usize {
        let before = self.queue.len();
        self.queue.retain(|j| j.subscription_id != id);
        let held = usize::from(self.held.remove(&id).is_some());
        before - self.queue.len() + held
    }

    pub fn record(&mut self, attempt: DeliveryAttempt) {
        if self.log.len() >= MAX_LOG {
            self.log.remove(0);
        }
        self.log.push(attempt);
    }

    pub fn record_removal(&mut self, removed: RemovedSubscription) {
        self.removed.push(removed);
    }

    pub fn log(&self) -> &[DeliveryAttempt] {
        &self.log
    }

    pub fn removed(&self) -> &[RemovedSubscription] {
        &self.removed
    }
}

/// When retry number `attempts` (1-based) of a job first due at `first_due` is due, or
/// `None` when the schedule is exhausted. Due times hang off the first attempt's schedule,
/// not the moment a failure was noticed, so a slow receiver does not stretch the window.
pub(crate) fn retry_due(
    delays: &[Duration],
    first_due: OffsetDateTime,
    attempts: u32,
) -> Option<OffsetDateTime> {
    let n = usize::try_from(attempts).ok()?;
    if n == 0 || n > delays.len() {
        return None;
    }
    let total: Duration = delays[..n].iter().sum();
    Some(first_due + total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn job(sub: u64, id: &str, due: OffsetDateTime) -> Job {
        Job {
            seq: 0,
            webhook_id: id.to_owned(),
            event_id: format!("e-{id}"),
            topic: "customers/create".to_owned(),
            subscription_id: sub,
            address: "http://127.0.0.1:1/x".to_owned(),
            api_version: "2026-01".to_owned(),
            body: b"{}".to_vec(),
            triggered_at: due,
            attempts: 0,
            first_due: due,
            due,
            send_twice: false,
        }
    }

    #[test]
    fn eight_retries_end_exactly_four_hours_after_the_first_attempt() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let dues: Vec<_> = (1..=8)
            .map(|n| retry_due(&DEFAULT_RETRY_DELAYS, t0, n).unwrap())
            .collect();
        assert_eq!(dues[0] - t0, time::Duration::minutes(1));
        assert_eq!(dues[7] - t0, time::Duration::hours(4));
        let gaps: Vec<_> = std::iter::once(t0)
            .chain(dues.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(gaps.windows(2).all(|g| g[1] > g[0]), "{gaps:?}");
        assert_eq!(retry_due(&DEFAULT_RETRY_DELAYS, t0, 9), None);
    }

    #[test]
    fn out_of_order_swaps_consecutive_webhooks_of_one_subscription() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let mut out = Outbox::default();
        out.enqueue_new(job(1, "first", t0), t0, true);
        assert_eq!(out.take_due(t0).map(|j| j.webhook_id), None, "held");
        out.enqueue_new(job(1, "second", t0), t0, true);
        assert_eq!(out.take_due(t0).unwrap().webhook_id, "second");
        assert_eq!(out.take_due(t0).unwrap().webhook_id, "first");
        out.enqueue_new(job(1, "lonely", t0), t0, true);
        let later = t0 + OUT_OF_ORDER_MAX_HOLD;
        assert_eq!(out.next_wake(), Some(later));
        assert_eq!(out.take_due(later).unwrap().webhook_id, "lonely");
    }
}
