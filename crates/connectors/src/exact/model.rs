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

/// `"/Date(1672531200000)/"` → epoch milliseconds.
pub fn odata_date_millis(value: &Value) -> Option<i64> {
    let s = value.as_str()?;
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    // A zone suffix such as `+0100` may follow the milliseconds.
    let end = inner[1..].find(['+', '-']).map_or(inner.len(), |i| i + 1);
    inner[..end].parse().ok()
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
    fn reads_odata_dates_with_and_without_zone() {
        assert_eq!(
            odata_date_millis(&Value::from("/Date(1672531200000)/")),
            Some(1_672_531_200_000)
        );
        assert_eq!(
            odata_date_millis(&Value::from("/Date(1672531200000+0100)/")),
            Some(1_672_531_200_000)
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
