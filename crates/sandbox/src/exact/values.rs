//! Typed OData values of the Exact Online REST API and their wire forms.
//!
//! Contract facts followed (saas-contracts.md §3.3):
//! - Dates travel as OData `"/Date(<epoch ms>)/"`. Airbyte's Exact connector notes the
//!   number is **CET wall-clock time, not UTC** (`source.py` `_parse_timestamps`), so the
//!   emulator stores and renders every date as Europe/Amsterdam local time (CET, CEST in
//!   summer) read as if it were UTC. A client that treats the value as UTC is off by one or
//!   two hours, exactly as against the real API. `datetime'…'` filter literals are read in
//!   the same local time (Airbyte converts its cursor to CET before filtering).
//! - GUID literals are `guid'…'`; Int64 literals take an `L` suffix.
//!
//! Sorting GUIDs: the real API sorts them the SQL Server way; the emulator sorts by the
//! 128-bit value. Only consistency matters to a client (it pages by `$skiptoken`).

use std::cmp::Ordering;

use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};
use uuid::Uuid;

/// The EDM types the emulated entities use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Guid,
    Str,
    Int32,
    Int64,
    Double,
    Bool,
    DateTime,
}

impl Kind {
    /// The EDM name, as it appears in OData error messages.
    pub fn edm(self) -> &'static str {
        match self {
            Kind::Guid => "Edm.Guid",
            Kind::Str => "Edm.String",
            Kind::Int32 => "Edm.Int32",
            Kind::Int64 => "Edm.Int64",
            Kind::Double => "Edm.Double",
            Kind::Bool => "Edm.Boolean",
            Kind::DateTime => "Edm.DateTime",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Kind::Int32 | Kind::Int64 | Kind::Double)
    }
}

/// One value. Dates are Amsterdam wall-clock epoch milliseconds (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Guid(Uuid),
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Date(i64),
}

impl Val {
    /// The JSON the API sends for this value.
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Guid(g) => Value::String(g.to_string()),
            Val::Str(s) => Value::String(s.clone()),
            Val::Int(n) => Value::from(*n),
            Val::Double(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::Date(ms) => Value::String(format!("/Date({ms})/")),
        }
    }

    /// The OData URI literal of this value (for `$skiptoken` and key URIs).
    pub fn literal(&self) -> String {
        match self {
            Val::Null => "null".to_owned(),
            Val::Guid(g) => format!("guid'{g}'"),
            Val::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Val::Int(n) => format!("{n}L"),
            Val::Double(x) => format!("{x}"),
            Val::Bool(b) => b.to_string(),
            Val::Date(ms) => format!("datetime'{}'", format_local(*ms)),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Reads a JSON request value as `kind`; `Err` names the expected type.
    pub fn from_json(kind: Kind, value: &Value) -> Result<Val, String> {
        if value.is_null() {
            return Ok(Val::Null);
        }
        let bad = || format!("expected a value of type {}", kind.edm());
        match kind {
            Kind::Guid => value
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .map(Val::Guid)
                .ok_or_else(bad),
            Kind::Str => value
                .as_str()
                .map(|s| Val::Str(s.to_owned()))
                .ok_or_else(bad),
            Kind::Int32 | Kind::Int64 => value.as_i64().map(Val::Int).ok_or_else(bad),
            Kind::Double => value.as_f64().map(Val::Double).ok_or_else(bad),
            Kind::Bool => value.as_bool().map(Val::Bool).ok_or_else(bad),
            Kind::DateTime => value
                .as_str()
                .and_then(parse_json_date)
                .map(Val::Date)
                .ok_or_else(bad),
        }
    }
}

/// Total order used by `$orderby` and `$skiptoken`: null first (as SQL Server sorts),
/// then by value; values of different types compare equal (never mixed in one column).
pub(crate) fn compare(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Less,
        (_, Val::Null) => Ordering::Greater,
        (Val::Guid(x), Val::Guid(y)) => x.as_u128().cmp(&y.as_u128()),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (x, y) => match (number(x), number(y)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        },
    }
}

fn number(v: &Val) -> Option<f64> {
    match v {
        // Precision loss above 2^53 is irrelevant: equal Int64s are compared exactly below.
        Val::Int(n) => Some(*n as f64),
        Val::Double(x) => Some(*x),
        _ => None,
    }
}

/// Equality used by `eq`/`ne` (exact for integers, which `compare` may round).
pub(crate) fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => x == y,
        _ => compare(a, b) == Ordering::Equal && (a == &Val::Null) == (b == &Val::Null),
    }
}

/// Europe/Amsterdam's UTC offset at `utc`: +2 h from the last Sunday of March 01:00 UTC to
/// the last Sunday of October 01:00 UTC (the EU rule), +1 h otherwise.
pub(crate) fn amsterdam_offset(utc: OffsetDateTime) -> UtcOffset {
    let year = utc.year();
    let switch = |month: Month| {
        let mut day = Date::from_calendar_date(year, month, 31).unwrap_or(Date::MIN);
        while day.weekday() != Weekday::Sunday {
            day = day.previous_day().unwrap_or(Date::MIN);
        }
        PrimitiveDateTime::new(day, Time::from_hms(1, 0, 0).unwrap_or(Time::MIDNIGHT)).assume_utc()
    };
    let summer = utc >= switch(Month::March) && utc < switch(Month::October);
    UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// A UTC instant as Amsterdam wall-clock epoch milliseconds (the API's date value).
pub(crate) fn local_millis(utc: OffsetDateTime) -> i64 {
    let local = utc.to_offset(amsterdam_offset(utc));
    let wall = PrimitiveDateTime::new(local.date(), local.time()).assume_utc();
    i64::try_from(wall.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Formats wall-clock milliseconds as `2024-05-31T13:45:00` (milliseconds if any).
pub(crate) fn format_local(ms: i64) -> String {
    let Ok(dt) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    match dt.millisecond() {
        0 => base,
        millis => format!("{base}.{millis:03}"),
    }
}

/// Parses the body of a `datetime'…'` literal (`2024-05-31`, `2024-05-31T13:45`,
/// `2024-05-31T13:45:00`, `2024-05-31T13:45:00.123`) as wall-clock milliseconds.
pub(crate) fn parse_local(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00"));
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    if d.next().is_some() || date.len() != 10 {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let hour: u8 = t.next()?.parse().ok()?;
    let minute: u8 = t.next()?.parse().ok()?;
    let second: u8 = t.next().map_or(Some(0), |s| s.parse().ok())?;
    if t.next().is_some() || !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 7 {
        return None;
    }
    let millis: u16 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_milli(hour, minute, second, millis).ok()?;
    let wall = PrimitiveDateTime::new(date, time).assume_utc();
    i64::try_from(wall.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A date sent in a JSON body: `"/Date(ms)/"` or an ISO wall-clock time (as the Exact
/// documentation's examples send them).
fn parse_json_date(text: &str) -> Option<i64> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|s| s.strip_suffix(")/"))
    {
        return inner.parse().ok();
    }
    parse_local(text.trim_end_matches('Z'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_are_amsterdam_wall_clock() {
        // Winter: CET, UTC+1. 2023-01-01T00:00Z is 01:00 in Amsterdam.
        let winter = local_millis(datetime!(2023-01-01 00:00 UTC));
        assert_eq!(winter, 1_672_531_200_000 + 3_600_000);
        // Summer: CEST, UTC+2.
        let summer = local_millis(datetime!(2023-07-01 00:00 UTC));
        assert_eq!(summer, 1_688_169_600_000 + 7_200_000);
        // DST begins 2023-03-26 01:00 UTC.
        assert_eq!(
            amsterdam_offset(datetime!(2023-03-26 00:59 UTC)).whole_hours(),
            1
        );
        assert_eq!(
            amsterdam_offset(datetime!(2023-03-26 01:00 UTC)).whole_hours(),
            2
        );
        assert_eq!(Val::Date(5).to_json(), Value::from("/Date(5)/"));
    }

    #[test]
    fn datetime_literals_round_trip() {
        let ms = parse_local("2017-05-31T00:00:00").unwrap();
        assert_eq!(format_local(ms), "2017-05-31T00:00:00");
        assert_eq!(parse_local("2017-05-31"), Some(ms));
        assert_eq!(
            format_local(parse_local("2017-05-31T01:02:03.5").unwrap()),
            "2017-05-31T01:02:03.500"
        );
        assert_eq!(parse_local("2017-5-31"), None);
        assert_eq!(parse_local("2017-02-30T00:00"), None);
    }

    #[test]
    fn literals_and_ordering() {
        assert_eq!(Val::Str("O'Neil".into()).literal(), "'O''Neil'");
        assert_eq!(Val::Int(7).literal(), "7L");
        assert_eq!(compare(&Val::Null, &Val::Int(1)), Ordering::Less);
        assert!(equal(&Val::Int(i64::MAX), &Val::Int(i64::MAX)));
        assert!(!equal(&Val::Int(i64::MAX), &Val::Int(i64::MAX - 1)));
        assert!(!equal(&Val::Null, &Val::Str(String::new())));
    }
}
