//! Proactive pacing from what a target's rate headers say, so calls wait *before* the
//! target has to refuse them.
//!
//! - [`Gate`]: no call before an instant (a `Retry-After`, a reset at zero remaining).
//! - [`LeakyBucket`]: Shopify's bucket as its call-limit header reports it; a call waits
//!   while the bucket would be within `margin` marbles of full.
//! - [`SlidingWindow`]: at most `limit` calls in any rolling window, as Pipedrive counts its
//!   burst and search limits, with a little slack for the calls' travel time.
//! - [`WindowClock`]: maps a server's fixed-window resets (Exact's epoch-ms
//!   `X-RateLimit-Minutely-Reset`) onto local time, learning the server clock's offset and
//!   speed from the moments the reset value moves on, so a wait for "the reset" is right
//!   even when the server's clock is skewed or runs faster (the sandbox's scaled clock).
//!
//! Guarantee: waits only; nothing here fails a call.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// No call before a moment.
#[derive(Debug, Default)]
pub struct Gate {
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// Holds calls for `wait` from now (a later hold wins over an earlier one).
    pub fn hold(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut at = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none_or(|t| t < until) {
            *at = Some(until);
        }
    }

    /// Waits until calls may go.
    pub async fn ready(&self) {
        let at = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = at {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

/// At most `limit` calls in any rolling `window`. Each call reserves its moment: now, or
/// once the `limit`-th call before it is `window` plus a slack old. Reservations are in
/// order, so concurrent callers queue fairly, and a burst of up to `limit` goes at once.
/// The slack covers the calls' travel: the server counts a call when it handles it,
/// somewhere between its sending and its answer, so two calls a window apart when sent may
/// be counted closer. It is the larger of the configured `slack` and the longest of the
/// last [`TRAVELS`] calls' round trips ([`SlidingWindow::observe`]): on a loaded machine
/// or a slow network the window widens by as much as calls take.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    slack: Duration,
    /// The reserved moments of the last `limit` calls, oldest first.
    reserved: Mutex<VecDeque<Instant>>,
    /// The round trips of the last [`TRAVELS`] calls.
    travels: Mutex<VecDeque<Duration>>,
}

/// Round trips a [`SlidingWindow`] remembers for its slack.
pub const TRAVELS: usize = 32;

impl SlidingWindow {
    /// `limit` calls per `window`, at least `slack` kept in hand.
    pub fn new(limit: u32, window: Duration, slack: Duration) -> Self {
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        Self {
            limit,
            window,
            slack,
            reserved: Mutex::new(VecDeque::with_capacity(limit)),
            travels: Mutex::new(VecDeque::with_capacity(TRAVELS)),
        }
    }

    /// A call of this window took `travel` from sending to its answer.
    pub fn observe(&self, travel: Duration) {
        let mut travels = self.travels.lock().unwrap_or_else(|e| e.into_inner());
        if travels.len() == TRAVELS {
            travels.pop_front();
        }
        travels.push_back(travel);
    }

    /// The window plus the slack kept now.
    fn span(&self) -> Duration {
        let travels = self.travels.lock().unwrap_or_else(|e| e.into_inner());
        let longest = travels.iter().max().copied().unwrap_or_default();
        self.window + self.slack.max(longest)
    }

    /// Waits for this call's moment.
    pub async fn take(&self) {
        let at = self.reserve(Instant::now());
        tokio::time::sleep_until(at.into()).await;
    }

    /// Reserves the first moment from `now` on that keeps the window.
    fn reserve(&self, now: Instant) -> Instant {
        let span = self.span();
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let at = if reserved.len() < self.limit {
            now
        } else {
            now.max(reserved[reserved.len() - self.limit] + span)
        };
        reserved.push_back(at);
        while reserved.len() > self.limit {
            reserved.pop_front();
        }
        at
    }
}

/// A local model of a leaky bucket (size, leak per second), corrected from the header.
#[derive(Debug)]
pub struct LeakyBucket {
    state: Mutex<BucketState>,
    margin: f64,
}

#[derive(Debug)]
struct BucketState {
    size: f64,
    leak_per_sec: f64,
    level: f64,
    at: Instant,
}

impl LeakyBucket {
    /// A bucket of `size` leaking `leak_per_sec`, kept `margin` marbles short of full.
    pub fn new(size: u32, leak_per_sec: f64, margin: u32) -> Self {
        Self {
            state: Mutex::new(BucketState {
                size: f64::from(size.max(1)),
                leak_per_sec: leak_per_sec.max(0.01),
                level: 0.0,
                at: Instant::now(),
            }),
            margin: f64::from(margin),
        }
    }

    /// Takes a marble for a call, first waiting while the bucket is too full.
    pub async fn take(&self) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.leak();
            let room = s.size - self.margin;
            let over = s.level + 1.0 - room;
            let wait = if over > 0.0 {
                Duration::from_secs_f64(over / s.leak_per_sec)
            } else {
                Duration::ZERO
            };
            // Count the marble now, so concurrent callers queue behind it.
            s.level += 1.0;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// The server reported `used` of `size` after a call. Shopify's plans all leak a
    /// twentieth of their bucket per second (40/2, 80/4, 400/20).
    pub fn observe(&self, used: u32, size: u32) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.leak();
        s.size = f64::from(size.max(1));
        s.leak_per_sec = s.size / 20.0;
        // The header rounds up and is older than marbles taken since: never lower the
        // local level below what the server saw.
        s.level = s.level.max(f64::from(used));
        if f64::from(used) < s.level - 2.0 {
            s.level = f64::from(used) + 1.0;
        }
    }
}

impl BucketState {
    fn leak(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.level = (self.level - elapsed * self.leak_per_sec).max(0.0);
        self.at = now;
    }
}

/// The server's clock as seen through a fixed window's reset stamps (epoch ms).
#[derive(Debug, Default)]
pub struct WindowClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    last_reset: Option<i64>,
    /// The last window change: when we saw it, and the server time it stood for.
    changed: Option<(Instant, i64)>,
    /// Real milliseconds per server millisecond (1 until learned).
    ratio: Option<f64>,
}

impl WindowClock {
    /// Notes a reset stamp from an answer.
    pub fn observe(&self, reset_ms: i64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = s.last_reset
            && reset_ms > previous
        {
            // The window moved on: the server's clock just passed `previous`.
            if let Some((t0, server0)) = s.changed {
                let real = t0.elapsed().as_secs_f64() * 1000.0;
                let server = (previous - server0) as f64;
                if server > 0.0 && real > 0.0 {
                    s.ratio = Some(real / server);
                }
            }
            s.changed = Some((Instant::now(), previous));
        }
        s.last_reset = Some(reset_ms.max(s.last_reset.unwrap_or(i64::MIN)));
    }

    /// Real time until the server's clock reaches `reset_ms`; `local_now_ms` is used while
    /// nothing is learned yet.
    pub fn until(&self, reset_ms: i64, local_now_ms: i64) -> Duration {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ratio = s.ratio.unwrap_or(1.0);
        let server_ms_left = match s.changed {
            Some((t0, server0)) => {
                let server_now = server0 as f64 + t0.elapsed().as_secs_f64() * 1000.0 / ratio;
                reset_ms as f64 - server_now
            }
            None => (reset_ms - local_now_ms) as f64,
        };
        Duration::from_secs_f64((server_ms_left * ratio).max(0.0) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bucket_waits_only_near_full() {
        // A 400-marble bucket leaks 20 per second once the header names its size.
        let bucket = LeakyBucket::new(400, 20.0, 2);
        let start = Instant::now();
        for _ in 0..398 {
            bucket.take().await;
        }
        assert!(start.elapsed() < Duration::from_millis(40));
        bucket.observe(398, 400);
        bucket.take().await;
        bucket.take().await;
        // Two more marbles at 20 per second: about 100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_sliding_window_admits_a_burst_then_one_call_per_freed_slot() {
        let w = SlidingWindow::new(3, Duration::from_secs(2), Duration::from_millis(100));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(w.reserve(t0), t0);
        assert_eq!(w.reserve(t0 + ms(10)), t0 + ms(10));
        assert_eq!(
            w.reserve(t0 + ms(20)),
            t0 + ms(20),
            "a burst up to the limit"
        );
        assert_eq!(
            w.reserve(t0 + ms(30)),
            t0 + ms(2100),
            "the first call's slot"
        );
        assert_eq!(w.reserve(t0 + ms(40)), t0 + ms(2110));
        assert_eq!(
            w.reserve(t0 + ms(5000)),
            t0 + ms(5000),
            "an idle window admits at once"
        );
    }

    #[test]
    fn slow_calls_widen_the_window_by_their_round_trip() {
        let w = SlidingWindow::new(1, Duration::from_secs(2), Duration::from_millis(100));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(w.reserve(t0), t0);
        w.observe(ms(40));
        assert_eq!(w.reserve(t0), t0 + ms(2100), "fast calls: the slack");
        w.observe(ms(700));
        assert_eq!(
            w.reserve(t0),
            t0 + ms(2100) + ms(2700),
            "a call that took 700 ms may have been counted 700 ms late"
        );
        for _ in 0..TRAVELS {
            w.observe(ms(40));
        }
        assert_eq!(
            w.reserve(t0),
            t0 + ms(4800) + ms(2100),
            "forgotten once the last calls are fast again"
        );
    }

    #[test]
    fn the_window_clock_learns_a_fast_server_clock() {
        let clock = WindowClock::default();
        clock.observe(60_000);
        assert_eq!(clock.until(60_000, 30_000), Duration::from_secs(30));
        clock.observe(120_000); // moved on: server at 60 000
        let left = clock.until(120_000, 0);
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
    }

    #[tokio::test]
    async fn a_hold_delays_the_next_call() {
        let gate = Gate::default();
        let start = Instant::now();
        gate.hold(Duration::from_millis(60));
        gate.hold(Duration::from_millis(10)); // an earlier end does not shorten it
        gate.ready().await;
        assert!(start.elapsed() >= Duration::from_millis(59));
    }
}
