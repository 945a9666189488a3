//! Shopify payload facts ingest needs: the record ID and when it changed.

use serde_json::Value;

/// The native ID of a REST resource payload, as a string. Read from `id` as an unsigned
/// integer (never through an `f64`, which would round IDs above 2^53), else from the end of
/// `admin_graphql_api_id`.
pub(super) fn record_id(payload: &Value) -> Option<String> {
    match payload.get("id") {
        Some(Value::Number(n)) if n.is_u64() => return n.as_u64().map(|id| id.to_string()),
        Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
        _ => {}
    }
    payload
        .get("admin_graphql_api_id")
        .and_then(Value::as_str)
        .and_then(|gid| gid.rsplit('/').next())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}

/// `updated_at` (else `created_at`) in epoch milliseconds.
pub(super) fn updated_at_millis(payload: &Value) -> Option<i64> {
    ["updated_at", "created_at"]
        .iter()
        .filter_map(|key| payload.get(*key).and_then(Value::as_str))
        .find_map(crate::webhook::rfc3339_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_2_pow_53_keep_every_digit() {
        let payload: Value = serde_json::from_str(r#"{"id": 820982911946154508}"#).unwrap();
        assert_eq!(record_id(&payload).as_deref(), Some("820982911946154508"));
    }

    #[test]
    fn falls_back_to_the_graphql_id() {
        let payload: Value = serde_json::from_str(
            r#"{"admin_graphql_api_id": "gid://shopify/Customer/706405506930370084"}"#,
        )
        .unwrap();
        assert_eq!(record_id(&payload).as_deref(), Some("706405506930370084"));
    }

    #[test]
    fn reads_the_shop_offset_timestamp() {
        let payload: Value =
            serde_json::from_str(r#"{"updated_at": "2021-12-31T19:00:00-05:00"}"#).unwrap();
        // 2021-12-31T19:00:00-05:00 is 2022-01-01T00:00:00Z.
        assert_eq!(updated_at_millis(&payload), Some(1_640_995_200_000));
    }
}
