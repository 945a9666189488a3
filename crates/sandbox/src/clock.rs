//! The sandbox clock: virtual wall-clock time that can run faster than real time and can be
//! moved forward, so hour- and day-long rules (Shopify's 4-hour retry schedule, Exact's
//! daily limit and 10-minute tokens) run in seconds in a test.
//!
//! Virtual now = base + real time elapsed × scale + manual advances. Every emulator reads
//! time only through its [`Clock`]; a test shares one clock between emulators to keep them
//! in step. Real-time sleeps are [`Clock::sleep`]s of virtual durations.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// A shared, cheap-to-clone virtual clock.
#[derive(Clone, Debug)]
pub struct Clock(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    real_base: Instant,
    virtual_base: OffsetDateTime,
    scale: f64,
}

impl State {
    fn now(&self) -> OffsetDateTime {
        let real = self.real_base.elapsed().as_secs_f64() * self.scale;
        self.virtual_base + Duration::from_secs_f64(real)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::real()
    }
}

impl Clock {
    /// Real time: one virtual second per real second, starting now.
    pub fn real() -> Self {
        Self::scaled(1.0)
    }

    /// `scale` virtual seconds per real second (e.g. 3600.0: an hour per second).
    pub fn scaled(scale: f64) -> Self {
        Self(Arc::new(Mutex::new(State {
            real_base: Instant::now(),
            virtual_base: OffsetDateTime::now_utc(),
            scale: sane_scale(scale),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtual now.
    pub fn now(&self) -> OffsetDateTime {
        self.state().now()
    }

    /// Virtual now as Unix epoch milliseconds.
    pub fn now_millis(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Virtual seconds per real second.
    pub fn scale(&self) -> f64 {
        self.state().scale
    }

    /// Changes the speed from now on; virtual time does not jump.
    pub fn set_scale(&self, scale: f64) {
        let mut state = self.state();
        let now = state.now();
        state.virtual_base = now;
        state.real_base = Instant::now();
        state.scale = sane_scale(scale);
    }

    /// Moves virtual time forward by `by` at once.
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.virtual_base += by;
    }

    /// Waits until virtual time has moved `d` past now (by running, or by an advance).
    pub async fn sleep(&self, d: Duration) {
        let until = self.now() + d;
        self.sleep_until(until).await;
    }

    /// Waits until virtual time reaches `until`.
    pub async fn sleep_until(&self, until: OffsetDateTime) {
        loop {
            let (now, scale) = {
                let state = self.state();
                (state.now(), state.scale)
            };
            if now >= until {
                return;
            }
            let left = (until - now).as_seconds_f64() / scale;
            // Short real naps, so an advance or a speed change is noticed promptly.
            tokio::time::sleep(Duration::from_secs_f64(left.clamp(0.0005, 0.05))).await;
        }
    }
}

fn sane_scale(scale: f64) -> f64 {
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_forward_at_once() {
        let clock = Clock::real();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() - before >= time::Duration::hours(1));
    }

    #[tokio::test]
    async fn a_scaled_clock_runs_an_hour_in_a_fraction_of_a_second() {
        let clock = Clock::scaled(36_000.0);
        let started = Instant::now();
        clock.sleep(Duration::from_secs(3600)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn changing_speed_does_not_jump() {
        let clock = Clock::scaled(1000.0);
        let before = clock.now();
        clock.set_scale(1.0);
        assert!(clock.now() - before < time::Duration::seconds(5));
    }
}
