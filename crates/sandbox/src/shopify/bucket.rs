//! The REST Admin API leaky bucket, on the sandbox clock.
//!
//! Contract facts followed (saas-contracts.md §1.5):
//! - Per app and store, each request adds one "marble"; the bucket leaks continuously.
//!   Standard: bucket 40, leak 2/s; Advanced 80, 4/s; Plus 400, 20/s (staff forum reply).
//! - Every REST response carries `X-Shopify-Shop-Api-Call-Limit: used/size`.
//! - When the bucket is full the answer is HTTP 429 with `Retry-After` in seconds (mocks
//!   expect `"2.0"`), body `{"errors":"Exceeded 2 calls per second for api client. Reduce
//!   request rates to resume uninterrupted service."}` (wording from public client code and
//!   test fixtures; found with the code search).
//!
//! Emulator choices: a refused request adds no marble; the header rounds the level **up**
//! (never under-reports what is used); `Retry-After` is Shopify's customary `2.0` or, if a
//! configured plan needs longer for one marble to leak, that longer wait — so a client that
//! waits as told always gets in.

use time::OffsetDateTime;

/// A leaky bucket of `size` marbles leaking `leak_per_sec` per virtual second.
#[derive(Debug, Clone)]
pub(crate) struct LeakyBucket {
    size: u32,
    leak_per_sec: f64,
    level: f64,
    at: Option<OffsetDateTime>,
}

/// What one request got from the bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    /// Served; the header shows `used`.
    Admitted { used: u32 },
    /// Refused; the client should wait `retry_after` seconds.
    Throttled { used: u32, retry_after: f64 },
}

/// Shopify's customary `Retry-After` value.
const CUSTOMARY_RETRY_AFTER: f64 = 2.0;

impl LeakyBucket {
    pub fn new(size: u32, leak_per_sec: f64) -> Self {
        Self {
            size: size.max(1),
            leak_per_sec: if leak_per_sec.is_finite() && leak_per_sec > 0.0 {
                leak_per_sec
            } else {
                2.0
            },
            level: 0.0,
            at: None,
        }
    }

    fn leak(&mut self, now: OffsetDateTime) {
        if let Some(at) = self.at {
            let elapsed = (now - at).as_seconds_f64().max(0.0);
            self.level = (self.level - elapsed * self.leak_per_sec).max(0.0);
        }
        self.at = Some(now);
    }

    fn shown(&self) -> u32 {
        // Tiny float residue must not show a marble that has leaked.
        let level = (self.level - 1e-9).ceil().max(0.0);
        (level as u32).min(self.size)
    }

    /// Marbles in the bucket at `now`, as the header would show them.
    pub fn used(&mut self, now: OffsetDateTime) -> u32 {
        self.leak(now);
        self.shown()
    }

    /// Adds a marble for a request at `now`, if it fits.
    pub fn admit(&mut self, now: OffsetDateTime) -> Admission {
        self.leak(now);
        if self.level + 1.0 <= f64::from(self.size) + 1e-9 {
            self.level += 1.0;
            Admission::Admitted { used: self.shown() }
        } else {
            let needed = (self.level + 1.0 - f64::from(self.size)) / self.leak_per_sec;
            Admission::Throttled {
                used: self.size,
                retry_after: needed.max(CUSTOMARY_RETRY_AFTER),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn forty_fit_the_forty_first_waits_and_two_leak_per_second() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let mut b = LeakyBucket::new(40, 2.0);
        for n in 1..=40 {
            assert_eq!(b.admit(t0), Admission::Admitted { used: n });
        }
        assert_eq!(
            b.admit(t0),
            Admission::Throttled {
                used: 40,
                retry_after: 2.0
            }
        );
        let t1 = t0 + Duration::seconds(1);
        assert_eq!(b.used(t1), 38);
        assert_eq!(b.admit(t1), Admission::Admitted { used: 39 });
        assert_eq!(b.admit(t1), Admission::Admitted { used: 40 });
        assert!(matches!(b.admit(t1), Admission::Throttled { .. }));
        assert_eq!(b.used(t1 + Duration::seconds(60)), 0);
    }

    #[test]
    fn the_header_rounds_a_part_marble_up() {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let mut b = LeakyBucket::new(40, 2.0);
        b.admit(t0);
        b.admit(t0);
        assert_eq!(
            b.used(t0 + Duration::milliseconds(250)),
            2,
            "1.5 shows as 2"
        );
        assert_eq!(b.used(t0 + Duration::milliseconds(500)), 1);
    }
}
