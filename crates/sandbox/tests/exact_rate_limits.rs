//! Exact emulator rate limits (saas-contracts.md §3.2): 60 calls a minute and 5,000 a day
//! per app and division, the six `X-RateLimit-*` headers with resets in UTC epoch
//! milliseconds, 429 with only the exceeded limit's headers, and recovery once the window
//! resets on the (frozen, advanced) sandbox clock.
//!
//! Expected reset values are computed here from the clock's epoch milliseconds with plain
//! integer arithmetic (next multiple of 60,000 / 86,400,000), not with emulator code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::exact_helpers as helpers;

use std::time::Duration;

use helpers::*;
use switchboard_sandbox::exact::{ExactConfig, ExactSandbox};

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Moves the frozen clock to `offset_ms` past the next boundary of `period_ms`.
fn align(sb: &ExactSandbox, period_ms: i64, offset_ms: i64) {
    let now = sb.clock().now_millis();
    let target = (now / period_ms + 1) * period_ms + offset_ms;
    sb.clock()
        .advance(Duration::from_millis(u64::try_from(target - now).unwrap()));
}

fn limited(minutely: u32, daily: u32) -> ExactConfig {
    ExactConfig {
        minutely_limit: minutely,
        daily_limit: daily,
        ..config()
    }
}

#[tokio::test]
async fn the_61st_call_in_a_minute_gets_429_and_passes_after_the_reset() {
    let sb = start(limited(60, 5000)).await;
    let api = Api::new(&sb);
    align(&sb, MINUTE, 1_000);
    let now = sb.clock().now_millis();
    let minute_reset = ((now / MINUTE + 1) * MINUTE).to_string();
    let day_reset = ((now / DAY + 1) * DAY).to_string();
    for i in 1..=60 {
        let ok = api.get("current/Me?$select=CurrentDivision").await;
        assert_eq!(ok.status(), 200, "call {i}");
        assert_eq!(
            header(&ok, "x-ratelimit-minutely-limit").as_deref(),
            Some("60")
        );
        assert_eq!(
            header(&ok, "x-ratelimit-minutely-remaining"),
            Some((60 - i).to_string())
        );
        assert_eq!(
            header(&ok, "x-ratelimit-minutely-reset").as_deref(),
            Some(minute_reset.as_str())
        );
        assert_eq!(header(&ok, "x-ratelimit-limit").as_deref(), Some("5000"));
        assert_eq!(
            header(&ok, "x-ratelimit-remaining"),
            Some((5000 - i).to_string())
        );
        assert_eq!(
            header(&ok, "x-ratelimit-reset").as_deref(),
            Some(day_reset.as_str())
        );
    }
    let refused = api.get("current/Me?$select=CurrentDivision").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "x-ratelimit-minutely-limit").as_deref(),
        Some("60")
    );
    assert_eq!(
        header(&refused, "x-ratelimit-minutely-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&refused, "x-ratelimit-minutely-reset").as_deref(),
        Some(minute_reset.as_str())
    );
    for daily in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert_eq!(
            header(&refused, daily),
            None,
            "{daily} is missing on a minutely 429"
        );
    }
    assert_eq!(refused.text().await.unwrap(), "", "Exact's 429 has no body");
    assert_eq!(sb.throttled_count(), 1);

    // Still refused one millisecond before the reset, admitted at it.
    sb.clock().advance(Duration::from_millis(58_999));
    assert_eq!(api.get("current/Me").await.status(), 429);
    sb.clock().advance(Duration::from_millis(1));
    let after = api.get("current/Me").await;
    assert_eq!(after.status(), 200);
    assert_eq!(
        header(&after, "x-ratelimit-minutely-remaining").as_deref(),
        Some("59")
    );
    assert_eq!(
        header(&after, "x-ratelimit-remaining").as_deref(),
        Some("4939"),
        "refused calls do not count against the day"
    );
}

#[tokio::test]
async fn the_daily_limit_gives_429_without_minutely_headers_until_midnight_utc() {
    let sb = start(limited(60, 3)).await;
    align(&sb, DAY, 10 * MINUTE);
    let api = Api::new(&sb);
    for _ in 0..3 {
        assert_eq!(api.get("current/Me").await.status(), 200);
    }
    let refused = api.get("current/Me").await;
    assert_eq!(refused.status(), 429);
    let midnight = ((sb.clock().now_millis() / DAY + 1) * DAY).to_string();
    assert_eq!(header(&refused, "x-ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(
        header(&refused, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&refused, "x-ratelimit-reset").as_deref(),
        Some(midnight.as_str())
    );
    for minutely in [
        "x-ratelimit-minutely-limit",
        "x-ratelimit-minutely-remaining",
        "x-ratelimit-minutely-reset",
    ] {
        assert_eq!(
            header(&refused, minutely),
            None,
            "{minutely} is missing on a daily 429"
        );
    }
    // A new minute does not help; a new day does (with a new token: hours have passed).
    sb.clock().advance(Duration::from_secs(3600));
    let api = Api::new(&sb);
    assert_eq!(api.get("current/Me").await.status(), 429);
    align(&sb, DAY, 0);
    let api = Api::new(&sb);
    let next_day = api.get("current/Me").await;
    assert_eq!(next_day.status(), 200);
    assert_eq!(
        header(&next_day, "x-ratelimit-remaining").as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn limits_are_per_division_and_the_token_endpoint_is_not_counted() {
    let sb = start(ExactConfig {
        divisions: vec![DIVISION, 777],
        ..limited(2, 100)
    })
    .await;
    let api = Api::new(&sb);
    align(&sb, MINUTE, 0);
    let path = |d: i32| format!("{d}/crm/Accounts?$filter=Name eq 'x'");
    assert_eq!(api.get(&path(DIVISION)).await.status(), 200);
    assert_eq!(api.get(&path(DIVISION)).await.status(), 200);
    assert_eq!(api.get(&path(DIVISION)).await.status(), 429);
    assert_eq!(
        api.get(&path(777)).await.status(),
        200,
        "another division has its own count"
    );
    assert_eq!(
        api.get("888/crm/Accounts?$filter=Name eq 'x'")
            .await
            .status(),
        403
    );
    let code = sb.issue_authorization_code();
    assert_eq!(exchange_code(&sb, &code).await.status(), 200);
    assert_eq!(sb.rate_limit_remaining(), (98, 0));
}
