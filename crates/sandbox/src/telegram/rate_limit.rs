//! Flood control for message sending, on the sandbox clock.
//!
//! The Bot FAQ (saas-contracts.md §4.4) gives only approximate limits: about 1 message/s
//! per chat with short bursts tolerated, about 30 messages/s overall, at most 20
//! messages/min per group; long messages (over about 500 characters) hit them sooner. The
//! exact rules are unpublished, so the emulator fixes its own, each configurable:
//!
//! - **Per chat**: a token bucket of `per_chat_burst` (3) messages refilled at
//!   `per_chat_per_second` (1.0) per virtual second. A message longer than
//!   `long_message_chars` (500) UTF-16 units costs 2 tokens.
//! - **Overall**: at most `global_per_second` (30) messages in any sliding 1-second window,
//!   across all chats.
//! - **Groups**: at most `group_per_minute` (20) messages in any sliding 60-second window
//!   per group, supergroup or channel (any negative chat ID; channels are included, the
//!   stricter reading of "group").
//!
//! A refused message is not counted. The answer is 429 with `retry_after` = whole seconds
//! until the message would be admitted (at least 1), and — the stricter reading of §4.3 —
//! **every** call of the bot is then refused with 429 until that time has passed, not
//! only calls for the chat concerned. The same holds for every other 429 the emulator
//! issues itself (`setWebhook` more than once a second, the `flood` switch); only a 429
//! injected through a `FaultRule` stays a single answer.

use std::collections::{HashMap, VecDeque};

/// The configured limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub per_chat_per_second: f64,
    pub per_chat_burst: u32,
    pub global_per_second: u32,
    pub group_per_minute: u32,
    pub long_message_chars: usize,
}

/// Limiter state; times are virtual Unix seconds.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    blocked_until: f64,
    buckets: HashMap<i64, (f64, f64)>,
    global: VecDeque<f64>,
    groups: HashMap<i64, VecDeque<f64>>,
}

/// Whole seconds to wait, at least 1 (`retry_after` is an Integer).
pub(crate) fn whole_seconds(secs: f64) -> u32 {
    let ceil = secs.ceil();
    if ceil.is_finite() && ceil >= 1.0 {
        ceil.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

impl RateLimiter {
    /// Seconds left of a bot-wide block, if one runs.
    pub(crate) fn blocked_for(&self, now: f64) -> Option<u32> {
        (now < self.blocked_until).then(|| whole_seconds(self.blocked_until - now))
    }

    /// Starts (or extends) a bot-wide block of `retry_after` seconds.
    pub(crate) fn block(&mut self, now: f64, retry_after: u32) {
        self.blocked_until = self.blocked_until.max(now + f64::from(retry_after));
    }

    /// Admits one message of `len_utf16` units to `chat_id`, or answers the `retry_after`
    /// (and starts the bot-wide block).
    pub(crate) fn admit_message(
        &mut self,
        limits: &Limits,
        chat_id: i64,
        len_utf16: usize,
        now: f64,
    ) -> Result<(), u32> {
        if let Some(left) = self.blocked_for(now) {
            return Err(left);
        }
        let wait = self.wait_needed(limits, chat_id, len_utf16, now);
        if wait > 0.0 {
            let retry_after = whole_seconds(wait);
            self.block(now, retry_after);
            return Err(retry_after);
        }
        let cost = cost(limits, len_utf16);
        let rate = limits.per_chat_per_second;
        let burst = f64::from(limits.per_chat_burst);
        let bucket = self.buckets.entry(chat_id).or_insert((burst, now));
        let tokens = (bucket.0 + (now - bucket.1) * rate).min(burst);
        *bucket = (tokens - cost, now);
        self.global.push_back(now);
        if chat_id < 0 {
            self.groups.entry(chat_id).or_default().push_back(now);
        }
        Ok(())
    }

    /// Seconds until every limit admits the message (0 when it may go now). Also drops
    /// window entries that have aged out.
    fn wait_needed(&mut self, limits: &Limits, chat_id: i64, len_utf16: usize, now: f64) -> f64 {
        let mut wait: f64 = 0.0;
        let cost = cost(limits, len_utf16);
        let rate = limits.per_chat_per_second;
        let burst = f64::from(limits.per_chat_burst);
        let (stored, at) = self.buckets.get(&chat_id).copied().unwrap_or((burst, now));
        let tokens = (stored + (now - at) * rate).min(burst);
        if tokens < cost {
            wait = wait.max((cost - tokens) / rate);
        }
        wait = wait.max(window_wait(
            &mut self.global,
            limits.global_per_second,
            1.0,
            now,
        ));
        if chat_id < 0 {
            let window = self.groups.entry(chat_id).or_default();
            wait = wait.max(window_wait(window, limits.group_per_minute, 60.0, now));
        }
        wait
    }
}

/// A long message counts double; the bucket never asks for more than it can hold.
fn cost(limits: &Limits, len_utf16: usize) -> f64 {
    let cost: f64 = if len_utf16 > limits.long_message_chars {
        2.0
    } else {
        1.0
    };
    cost.min(f64::from(limits.per_chat_burst))
}

/// Seconds until a sliding window of `len` seconds has room for one more event.
fn window_wait(window: &mut VecDeque<f64>, max: u32, len: f64, now: f64) -> f64 {
    while window.front().is_some_and(|&t| t <= now - len) {
        window.pop_front();
    }
    if window.len() < max as usize {
        return 0.0;
    }
    // The event that must age out for one slot to free up.
    let idx = window.len() - max as usize;
    window.get(idx).map_or(0.0, |&t| t + len - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        per_chat_per_second: 1.0,
        per_chat_burst: 3,
        global_per_second: 30,
        group_per_minute: 20,
        long_message_chars: 500,
    };

    #[test]
    fn a_chat_gets_a_burst_of_three_then_one_per_second() {
        let mut rl = RateLimiter::default();
        for _ in 0..3 {
            assert_eq!(rl.admit_message(&LIMITS, 7, 10, 100.0), Ok(()));
        }
        assert_eq!(rl.admit_message(&LIMITS, 7, 10, 100.0), Err(1));
        assert_eq!(rl.blocked_for(100.5), Some(1), "bot-wide block");
        assert_eq!(
            rl.admit_message(&LIMITS, 8, 10, 100.5),
            Err(1),
            "other chat too"
        );
        assert_eq!(rl.admit_message(&LIMITS, 7, 10, 101.0), Ok(()));
        assert_eq!(rl.admit_message(&LIMITS, 7, 10, 101.0), Err(1));
    }

    #[test]
    fn long_messages_cost_two() {
        let mut rl = RateLimiter::default();
        assert_eq!(rl.admit_message(&LIMITS, 7, 501, 0.0), Ok(()));
        assert_eq!(rl.admit_message(&LIMITS, 7, 501, 0.0), Err(1));
    }

    #[test]
    fn thirty_per_second_overall() {
        let mut rl = RateLimiter::default();
        for chat in 0..30 {
            assert_eq!(rl.admit_message(&LIMITS, chat + 1, 5, 10.0), Ok(()));
        }
        assert_eq!(rl.admit_message(&LIMITS, 99, 5, 10.2), Err(1));
        assert_eq!(
            rl.admit_message(&LIMITS, 99, 5, 11.2),
            Ok(()),
            "after the block"
        );
    }

    #[test]
    fn twenty_per_minute_per_group() {
        let mut rl = RateLimiter::default();
        for i in 0..20 {
            assert_eq!(rl.admit_message(&LIMITS, -5, 5, f64::from(i) * 2.0), Ok(()));
        }
        // The first of the 20 was at t=0; a slot frees at t=60.
        assert_eq!(rl.admit_message(&LIMITS, -5, 5, 40.0), Err(20));
        assert_eq!(rl.admit_message(&LIMITS, -5, 5, 60.0), Ok(()));
    }
}
