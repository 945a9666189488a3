//! Reading request bodies the way the Admin REST API does: the `{"<root>": {...}}`
//! wrapper, string fields that may be null, and the normalisation Shopify applies to
//! emails, phones and tags (see `customers.rs` for the facts and choices).

use serde_json::{Map, Value};

use super::errors::{ApiError, FieldErrors};

/// The `{"<root>": {...}}` object of a request body.
pub(crate) fn root<'a>(body: &'a Value, name: &str) -> Result<&'a Map<String, Value>, ApiError> {
    body.get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::missing_root(name))
}

/// A string field: absent → `None`, null → `Some("")`, string → trimmed, else invalid.
pub(crate) fn text(
    obj: &Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<String> {
    match obj.get(key)? {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.trim().to_owned()),
        _ => {
            errors.add(key, "is invalid");
            None
        }
    }
}

/// Comma-separated tags, trimmed, without empties or repeats.
pub(crate) fn normalize_tags(raw: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for tag in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out.join(", ")
}

/// A plausible address: something@domain.tld, no spaces.
pub(crate) fn email_ok(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !email.chars().any(char::is_whitespace)
        && !domain.contains('@')
        && domain
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.ends_with('.'))
}

/// `+` and 7–15 digits once spaces, dashes, dots and parentheses are dropped.
pub(crate) fn normalize_phone(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(kept)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn emails_phones_and_tags_are_checked_and_normalised() {
        assert!(email_ok("bob@biller.com"));
        for bad in ["bob", "@x.com", "a@b", "a b@c.com", "a@b@c.com", "a@.com"] {
            assert!(!email_ok(bad), "{bad}");
        }
        assert_eq!(
            normalize_phone("+1 (613) 555-0123").unwrap(),
            "+16135550123"
        );
        assert_eq!(normalize_phone("613 555 0123"), None, "no country code");
        assert_eq!(normalize_tags(" b, a,,b "), "b, a");
    }
}
