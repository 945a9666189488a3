//! Shopify API versions and "fall forward".
//!
//! Contract facts followed (saas-contracts.md §1.7):
//! - Versions are named `YYYY-MM`; a new stable version ships every quarter (January,
//!   April, July, October) at 17:00 UTC, and each is supported for at least 12 months.
//!   There is also a release candidate (the next version) and `unstable`.
//! - A request to an unsupported version, or with no version, is served by the **oldest
//!   supported stable version**, without an error ("fall forward"); `X-Shopify-API-Version`
//!   says which version served it.
//!
//! Stricter choice: "at least 12 months" is taken as exactly 12 months, so the supported
//! window is as short as the contract allows and a pinned version falls forward as early as
//! it could for real. The set is derived from the sandbox clock's date unless a test pins
//! it ([`super::ShopifyConfig::api_versions`]). A version that is not `YYYY-MM` (or
//! `unstable`) is not a version at all: the path is answered 404, like any unknown path.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The months in which Shopify releases a stable version.
const RELEASE_MONTHS: [u8; 4] = [1, 4, 7, 10];

/// A quarter's version as `(year, month)`.
type Quarter = (i32, u8);

fn release_instant((year, month): Quarter) -> Option<OffsetDateTime> {
    let month = Month::try_from(month).ok()?;
    let date = Date::from_calendar_date(year, month, 1).ok()?;
    Some(PrimitiveDateTime::new(date, Time::from_hms(17, 0, 0).ok()?).assume_utc())
}

fn name((year, month): Quarter) -> String {
    format!("{year:04}-{month:02}")
}

fn next_quarter((year, month): Quarter) -> Quarter {
    if month >= 10 {
        (year + 1, 1)
    } else {
        (year, month + 3)
    }
}

/// The stable versions supported at `now`, oldest first.
pub fn stable_versions(now: OffsetDateTime) -> Vec<String> {
    supported_quarters(now).into_iter().map(name).collect()
}

fn supported_quarters(now: OffsetDateTime) -> Vec<Quarter> {
    let mut out = Vec::new();
    for year in now.year() - 2..=now.year() {
        for month in RELEASE_MONTHS {
            let Some(released) = release_instant((year, month)) else {
                continue;
            };
            let Some(retired) = release_instant((year + 1, month)) else {
                continue;
            };
            if released <= now && now < retired {
                out.push((year, month));
            }
        }
    }
    out
}

/// True when `raw` looks like a version: `YYYY-MM` with a real month, or `unstable`.
pub fn is_well_formed(raw: &str) -> bool {
    if raw == "unstable" {
        return true;
    }
    let bytes = raw.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
        && raw[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
}

/// Which version serves a request for `requested` (`None`: no version in the path).
///
/// Returns `None` when `requested` is not a version at all (the caller answers 404).
/// `pinned` replaces the clock-derived set of stable versions when given.
pub fn resolve(
    requested: Option<&str>,
    now: OffsetDateTime,
    pinned: Option<&[String]>,
) -> Option<String> {
    if let Some(raw) = requested
        && !is_well_formed(raw)
    {
        return None;
    }
    let (stable, candidate) = match pinned {
        Some(list) if !list.is_empty() => {
            let mut list = list.to_vec();
            list.sort();
            (list, None)
        }
        _ => {
            let quarters = supported_quarters(now);
            let candidate = quarters.last().map(|q| name(next_quarter(*q)));
            (
                quarters.into_iter().map(name).collect::<Vec<_>>(),
                candidate,
            )
        }
    };
    let oldest = stable
        .first()
        .cloned()
        .unwrap_or_else(|| "unstable".to_owned());
    Some(match requested {
        Some(raw)
            if raw == "unstable"
                || stable.iter().any(|v| v == raw)
                || candidate.as_deref() == Some(raw) =>
        {
            raw.to_owned()
        }
        _ => oldest,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_window_is_twelve_months_of_quarterly_releases() {
        let now = datetime!(2026-11-27 18:00 UTC);
        assert_eq!(
            stable_versions(now),
            ["2026-01", "2026-04", "2026-07", "2026-10"]
        );
        // 2026-01 retires at 2027-01-01 17:00 UTC, exactly when 2027-01 ships.
        assert_eq!(
            stable_versions(datetime!(2027-01-01 16:59:59 UTC))
                .first()
                .unwrap(),
            "2026-01"
        );
        assert_eq!(
            stable_versions(datetime!(2027-01-01 17:00 UTC)),
            ["2026-04", "2026-07", "2026-10", "2027-01"]
        );
    }

    #[test]
    fn unsupported_or_missing_versions_fall_forward_to_the_oldest_supported() {
        let now = datetime!(2026-11-27 18:00 UTC);
        assert_eq!(resolve(Some("2025-01"), now, None).unwrap(), "2026-01");
        assert_eq!(resolve(Some("2026-02"), now, None).unwrap(), "2026-01");
        assert_eq!(resolve(None, now, None).unwrap(), "2026-01");
        assert_eq!(resolve(Some("2026-07"), now, None).unwrap(), "2026-07");
        assert_eq!(
            resolve(Some("2027-01"), now, None).unwrap(),
            "2027-01",
            "RC"
        );
        assert_eq!(resolve(Some("2027-04"), now, None).unwrap(), "2026-01");
        assert_eq!(resolve(Some("unstable"), now, None).unwrap(), "unstable");
        assert_eq!(resolve(Some("v1"), now, None), None);
        assert_eq!(resolve(Some("2025-13"), now, None), None);
    }

    #[test]
    fn a_pinned_set_replaces_the_calendar() {
        let pinned = ["2025-04".to_owned(), "2025-01".to_owned()];
        let now = datetime!(2026-11-27 18:00 UTC);
        assert_eq!(
            resolve(Some("2025-04"), now, Some(&pinned)).unwrap(),
            "2025-04"
        );
        assert_eq!(
            resolve(Some("2024-10"), now, Some(&pinned)).unwrap(),
            "2025-01"
        );
    }
}
