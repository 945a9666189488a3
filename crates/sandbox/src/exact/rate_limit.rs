//! Exact Online's minutely and daily API call limits, per app and division, on the
//! sandbox clock.
//!
//! Contract facts followed (saas-contracts.md §3.2):
//! - 60 calls per company per minute and 5,000 per app per company per day (new apps since
//!   2021); over either, **429**. The daily count resets at midnight.
//! - Headers `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (daily) and
//!   `X-RateLimit-Minutely-Limit`, `-Minutely-Remaining`, `-Minutely-Reset`; resets are
//!   **UTC epoch milliseconds**.
//! - On a 429 from the minutely limit the daily headers are missing, and the other way
//!   round (picqer/exact-php-client issue #646).
//!
//! Choices: windows are fixed, aligned to the UTC minute and the UTC day. picqer #646's
//! log shows minutely resets on whole minutes (`02:02:00` for calls at `02:01:49`) and the
//! daily reset at 02:00 CEST, i.e. midnight UTC. Refused calls are not counted. The 5,000
//! default is the stricter of the two published daily limits (older apps had 50,000).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    minute_start: i64,
    minute_used: u32,
    day_start: i64,
    day_used: u32,
}

/// The verdict on one call and the headers to send with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admitted(Headers),
    MinutelyExceeded(Headers),
    DailyExceeded(Headers),
}

/// Rate header values; a `None` group is left out of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Headers {
    /// (limit, remaining, reset ms)
    pub daily: Option<(u32, u32, i64)>,
    pub minutely: Option<(u32, u32, i64)>,
}

impl Headers {
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        if let Some((limit, remaining, reset)) = self.daily {
            put("x-ratelimit-limit", limit.to_string());
            put("x-ratelimit-remaining", remaining.to_string());
            put("x-ratelimit-reset", reset.to_string());
        }
        if let Some((limit, remaining, reset)) = self.minutely {
            put("x-ratelimit-minutely-limit", limit.to_string());
            put("x-ratelimit-minutely-remaining", remaining.to_string());
            put("x-ratelimit-minutely-reset", reset.to_string());
        }
    }
}

/// Call counts per (client ID, division).
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    usage: HashMap<(String, i32), Usage>,
}

impl RateLimits {
    /// Counts one call at `now_ms` (UTC epoch ms) if the limits allow it.
    pub fn admit(
        &mut self,
        client: &str,
        division: i32,
        now_ms: i64,
        minutely: u32,
        daily: u32,
    ) -> Verdict {
        let usage = self.usage.entry((client.to_owned(), division)).or_default();
        let minute_start = now_ms - now_ms.rem_euclid(MINUTE_MS);
        let day_start = now_ms - now_ms.rem_euclid(DAY_MS);
        if usage.minute_start != minute_start {
            usage.minute_start = minute_start;
            usage.minute_used = 0;
        }
        if usage.day_start != day_start {
            usage.day_start = day_start;
            usage.day_used = 0;
        }
        let daily_group = |used: u32| Some((daily, daily.saturating_sub(used), day_start + DAY_MS));
        let minutely_group = |used: u32| {
            Some((
                minutely,
                minutely.saturating_sub(used),
                minute_start + MINUTE_MS,
            ))
        };
        if usage.day_used >= daily {
            return Verdict::DailyExceeded(Headers {
                daily: daily_group(usage.day_used),
                minutely: None,
            });
        }
        if usage.minute_used >= minutely {
            return Verdict::MinutelyExceeded(Headers {
                daily: None,
                minutely: minutely_group(usage.minute_used),
            });
        }
        usage.minute_used += 1;
        usage.day_used += 1;
        Verdict::Admitted(Headers {
            daily: daily_group(usage.day_used),
            minutely: minutely_group(usage.minute_used),
        })
    }

    /// Calls left today and this minute for (client, division), without counting one.
    pub fn remaining(
        &self,
        client: &str,
        division: i32,
        now_ms: i64,
        minutely: u32,
        daily: u32,
    ) -> (u32, u32) {
        let minute_start = now_ms - now_ms.rem_euclid(MINUTE_MS);
        let day_start = now_ms - now_ms.rem_euclid(DAY_MS);
        match self.usage.get(&(client.to_owned(), division)) {
            None => (daily, minutely),
            Some(u) => (
                if u.day_start == day_start {
                    daily.saturating_sub(u.day_used)
                } else {
                    daily
                },
                if u.minute_start == minute_start {
                    minutely.saturating_sub(u.minute_used)
                } else {
                    minutely
                },
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn minutely_then_daily_with_aligned_resets() {
        let mut r = RateLimits::default();
        let t0 = 1_700_000_010_000; // 30 s into a minute
        for i in 1..=3 {
            match r.admit("app", 1, t0, 3, 5) {
                Verdict::Admitted(h) => {
                    assert_eq!(h.minutely, Some((3, 3 - i, 1_700_000_040_000)));
                    assert_eq!(h.daily.unwrap().2 % DAY_MS, 0);
                }
                v => panic!("{v:?}"),
            }
        }
        let Verdict::MinutelyExceeded(h) = r.admit("app", 1, t0, 3, 5) else {
            panic!()
        };
        assert_eq!(h.daily, None, "daily headers are missing on a minutely 429");
        assert_eq!(h.minutely, Some((3, 0, 1_700_000_040_000)));
        assert!(
            matches!(r.admit("app", 2, t0, 3, 5), Verdict::Admitted(_)),
            "per division"
        );
        assert!(matches!(
            r.admit("app", 1, 1_700_000_040_000, 3, 5),
            Verdict::Admitted(_)
        ));
        assert!(matches!(
            r.admit("app", 1, 1_700_000_040_000, 3, 5),
            Verdict::Admitted(_)
        ));
        let Verdict::DailyExceeded(h) = r.admit("app", 1, 1_700_000_040_000, 3, 5) else {
            panic!()
        };
        assert_eq!(
            h.minutely, None,
            "minutely headers are missing on a daily 429"
        );
        assert_eq!(r.remaining("app", 1, 1_700_000_040_000, 3, 5), (0, 1));
    }
}
