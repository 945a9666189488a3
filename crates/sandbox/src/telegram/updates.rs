//! The bot's queue of incoming updates, shared by `getUpdates` and webhook delivery.
//!
//! Contract facts followed (saas-contracts.md §4.5, §4.6):
//! - `update_id`s start at a positive number and increase by one; after a week without
//!   updates the next one is chosen at random (it may be *lower* than the last one seen,
//!   so a client must not drop updates whose ID is below its last offset forever).
//! - Each Update carries at most one optional field (`message`, `edited_message`,
//!   `channel_post`, …).
//! - Undelivered updates are kept for at most 24 hours (`update_retention`), then dropped.
//! - `getUpdates` offsets follow the open-source Bot API server: an offset inside the
//!   queue forgets every earlier update; a negative offset counts from the end; an
//!   offset outside the queue returns from its head without forgetting anything.
//! - `allowed_updates` filters what gets queued from the moment it is set; the default
//!   is every type except `chat_member`, `message_reaction` and `message_reaction_count`.

use std::collections::VecDeque;

use rand::Rng;
use serde_json::Value;

/// A week, in seconds: the idle time after which update IDs restart at random.
const ID_RESET_IDLE: f64 = 7.0 * 24.0 * 3600.0;

/// Update types that are only delivered when asked for explicitly.
const OPT_IN_TYPES: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// One queued update.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingUpdate {
    pub id: i64,
    /// The Update object without `update_id` (one optional field).
    pub body: Value,
    /// Deliveries of updates with the same chat keep their order (the server queues per
    /// chat); `None` means an update without a chat, which has a queue of its own.
    pub chat_id: Option<i64>,
    pub created: f64,
    pub fail_count: u32,
    /// Last backoff step, seconds (starts at 1, doubles).
    pub delay: f64,
    pub next_attempt: f64,
    pub in_flight: bool,
}

/// The queue.
#[derive(Debug)]
pub(crate) struct Updates {
    next_id: i64,
    last_created: Option<f64>,
    pub pending: VecDeque<PendingUpdate>,
}

/// The update type of an Update body: its single field.
pub(crate) fn kind_of(body: &Value) -> Option<&str> {
    body.as_object()?.keys().next().map(String::as_str)
}

/// True when `kind` passes the `allowed_updates` filter (`None` or `[]`: the default).
pub(crate) fn allowed(filter: Option<&[String]>, kind: &str) -> bool {
    match filter {
        Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
        _ => !OPT_IN_TYPES.contains(&kind),
    }
}

impl Updates {
    pub(crate) fn new(first_id: i64) -> Self {
        Self {
            next_id: first_id.max(1),
            last_created: None,
            pending: VecDeque::new(),
        }
    }

    /// Queues `body` and returns its `update_id`.
    pub(crate) fn push(&mut self, body: Value, chat_id: Option<i64>, now: f64) -> i64 {
        if self
            .last_created
            .is_some_and(|last| now - last >= ID_RESET_IDLE && self.pending.is_empty())
        {
            // Update IDs are 32-bit on the wire (the server's JsonUpdate takes an int32).
            self.next_id = rand::rng().random_range(1..=2_000_000_000);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.last_created = Some(now);
        self.pending.push_back(PendingUpdate {
            id,
            body,
            chat_id,
            created: now,
            fail_count: 0,
            delay: 1.0,
            next_attempt: now,
            in_flight: false,
        });
        id
    }

    /// Drops updates older than `retention` seconds; returns how many.
    pub(crate) fn expire(&mut self, now: f64, retention: f64) -> usize {
        let before = self.pending.len();
        self.pending.retain(|u| now - u.created < retention);
        before - self.pending.len()
    }

    /// Drops everything (`drop_pending_updates`).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }

    pub(crate) fn remove(&mut self, id: i64) -> Option<PendingUpdate> {
        let idx = self.pending.iter().position(|u| u.id == id)?;
        self.pending.remove(idx)
    }

    pub(crate) fn get_mut(&mut self, id: i64) -> Option<&mut PendingUpdate> {
        self.pending.iter_mut().find(|u| u.id == id)
    }

    /// `getUpdates`: applies `offset` (forgetting confirmed updates) and returns up to
    /// `limit` updates from there.
    pub(crate) fn poll(&mut self, offset: i64, limit: usize) -> Vec<PendingUpdate> {
        let (Some(head), Some(tail)) = (self.pending.front(), self.pending.back()) else {
            return Vec::new();
        };
        let (head, next) = (head.id, tail.id + 1);
        let from = if offset < 0 {
            (next + offset).max(head)
        } else if offset > head && offset <= next {
            offset
        } else {
            head
        };
        // IDs within the queue only grow (a random restart needs an empty queue), so
        // "before `from`" is a prefix.
        while self.pending.front().is_some_and(|u| u.id < from) {
            self.pending.pop_front();
        }
        self.pending.iter().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queue_of(n: i64) -> Updates {
        let mut q = Updates::new(100);
        for i in 0..n {
            q.push(json!({"message": {"message_id": i}}), Some(1), 0.0);
        }
        q
    }

    #[test]
    fn ids_increase_by_one_and_offsets_confirm() {
        let mut q = queue_of(3);
        let ids: Vec<i64> = q.poll(0, 100).iter().map(|u| u.id).collect();
        assert_eq!(ids, [100, 101, 102]);
        assert_eq!(q.poll(102, 100).len(), 1, "offset 102 forgets 100 and 101");
        assert_eq!(q.pending.len(), 1);
        assert!(
            q.poll(103, 100).is_empty(),
            "offset one past the last confirms all"
        );
        assert!(q.pending.is_empty());
    }

    #[test]
    fn negative_offsets_count_from_the_end_and_foreign_ones_from_the_head() {
        let mut q = queue_of(3);
        assert_eq!(
            q.poll(5000, 100).len(),
            3,
            "outside the queue: from the head"
        );
        assert_eq!(q.poll(-1, 100)[0].id, 102);
        assert_eq!(q.pending.len(), 1);
    }

    #[test]
    fn a_week_of_silence_restarts_ids_at_random() {
        let mut q = queue_of(1);
        q.poll(101, 1);
        let id = q.push(json!({"message": {}}), None, ID_RESET_IDLE + 1.0);
        assert_ne!(id, 101, "not sequential after a week");
        assert!((1..=2_000_000_000).contains(&id));
        let next = q.push(json!({"message": {}}), None, ID_RESET_IDLE + 2.0);
        assert_eq!(next, id + 1, "sequential again afterwards");
    }

    #[test]
    fn expiry_and_filters() {
        let mut q = queue_of(2);
        assert_eq!(q.expire(86_400.0, 86_400.0), 2);
        assert!(allowed(None, "message"));
        assert!(!allowed(None, "chat_member"));
        assert!(allowed(Some(&["chat_member".to_owned()]), "chat_member"));
        assert!(!allowed(Some(&["edited_message".to_owned()]), "message"));
    }
}
