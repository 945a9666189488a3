//! Exact payload facts the poller needs: OData envelopes, `/Date(ms)/` dates, sync rows.

use serde::Deserialize;
use serde_json::Value;

/// `{"d": {"results": [...], "__next": "..."}}`.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope {
    pub d: Page,
}

/// One page of a collection.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// The rows, verbatim.
    #[serde(default)]
    pub results: Vec<Value>,
    /// Full URL of the next page, if any.
    #[serde(rename = "__next", default)]
    pub next: Option<String>,
}

/// `"/Date(1672531200000)/"` → epoch milliseconds (UTC).
///
/// The number is not UTC: Exact writes the Dutch wall-clock time as if it were
/// (saas-contracts.md §3.3, after Airbyte's connector), so the Amsterdam offset is taken
/// off: one hour, two in summer time (EU rule: last Sunday of March to last Sunday of
/// October, 01:00 UTC).
pub fn odata_date_millis(value: &Value) -> Option<i64> {
    let s = value.as_str()?;
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    // A zone suffix such as `+0100` may follow the milliseconds.
    let end = inner[1..].find(['+', '-']).map_or(inner.len(), |i| i + 1);
    let local: i64 = inner[..end].parse().ok()?;
    let hour = 3_600_000;
    // Summer time is decided on the UTC instant; `local - 1h` is that instant in winter
    // and an hour after it in summer, which only matters in the switch hours themselves.
    let offset = if amsterdam_summer_time(local - hour) {
        2 * hour
    } else {
        hour
    };
    Some(local - offset)
}

fn amsterdam_summer_time(utc_ms: i64) -> bool {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(utc_ms.div_euclid(1000)) else {
        return false;
    };
    let last_sunday_0100 = |month: time::Month| {
        let days = time::util::days_in_month(month, t.year());
        let last = time::Date::from_calendar_date(t.year(), month, days).ok()?;
        let back = i64::from(last.weekday().number_days_from_sunday());
        Some(
            (last - time::Duration::days(back))
                .with_hms(1, 0, 0)
                .ok()?
                .assume_utc(),
        )
    };
    match (
        last_sunday_0100(time::Month::March),
        last_sunday_0100(time::Month::October),
    ) {
        (Some(start), Some(end)) => t >= start && t < end,
        _ => false,
    }
}

/// A row's `Timestamp` rowversion.
pub fn row_timestamp(row: &Value) -> Option<i64> {
    match row.get("Timestamp")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim_end_matches('L').parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_odata_dates_as_dutch_wall_clock_time() {
        // 2023-01-01T00:00 in Amsterdam (winter, +01:00) is 2022-12-31T23:00Z.
        assert_eq!(
            odata_date_millis(&Value::from("/Date(1672531200000)/")),
            Some(1_672_527_600_000)
        );
        assert_eq!(
            odata_date_millis(&Value::from("/Date(1672531200000+0100)/")),
            Some(1_672_527_600_000)
        );
        // 2023-07-01T12:00 in Amsterdam (summer, +02:00) is 10:00Z.
        assert_eq!(
            odata_date_millis(&Value::from("/Date(1688212800000)/")),
            Some(1_688_205_600_000)
        );
        assert_eq!(odata_date_millis(&Value::from("2023-01-01")), None);
    }

    #[test]
    fn reads_the_rowversion_as_number_or_string() {
        assert_eq!(
            row_timestamp(&serde_json::json!({"Timestamp": 123})),
            Some(123)
        );
        assert_eq!(
            row_timestamp(&serde_json::json!({"Timestamp": "124L"})),
            Some(124)
        );
    }
}
