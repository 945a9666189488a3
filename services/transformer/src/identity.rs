//! Identity: which canonical record is this source record?
//!
//! The xref (`sb.xref`, compacted) maps `<connection>/<entity>/<native id>` to a canonical
//! ID, and `natural/<canonical entity>/<field>=<value>[&…]` (normalised natural keys such as
//! a lower-cased e-mail) to the canonical ID that first claimed it. Resolution order:
//! the record's own xref entry, then its natural keys in the configured order, then a new
//! deterministic ID (UUIDv5 of connection, entity and native ID), so a replay never mints
//! a new one. Sinks write the same entries for the records they create, which is how a
//! target's webhook about a record Switchboard created finds its canonical record.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_core::canonical::canonical_id;

/// The value of an xref entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XrefEntry {
    /// Canonical ID the key belongs to.
    pub canonical_id: String,
    /// Canonical entity.
    pub entity: String,
}

/// Key of a native record.
pub fn native_key(connection: &str, entity: &str, native_id: &str) -> String {
    format!("{connection}/{entity}/{native_id}")
}

/// Key of a natural key, or `None` when one of its fields is empty. Values are trimmed and
/// lower-cased: `Ada@Example.com ` and `ada@example.com` are the same person.
pub fn natural_key(entity: &str, fields: &[String], record: &Map<String, Value>) -> Option<String> {
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        let value = match record.get(field)? {
            Value::String(s) => s.trim().to_lowercase(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        if value.is_empty() {
            return None;
        }
        parts.push(format!("{field}={value}"));
    }
    (!parts.is_empty()).then(|| format!("natural/{entity}/{}", parts.join("&")))
}

/// The result of resolving one record.
#[derive(Debug, PartialEq)]
pub struct Resolution {
    /// The canonical ID.
    pub canonical_id: String,
    /// How it was found: `xref`, `natural_key` or `new`.
    pub how: &'static str,
    /// Entries to write (new links), in the same transaction as the record.
    pub writes: Vec<(String, XrefEntry)>,
}

/// Resolves `<connection>/<entity>/<native id>` against `xref`, given the record's mapped
/// fields and the entity's natural keys.
pub fn resolve(
    xref: &HashMap<String, XrefEntry>,
    connection: &str,
    entity: &str,
    native_id: &str,
    canonical_entity: &str,
    natural_keys: &[Vec<String>],
    record: &Map<String, Value>,
) -> Resolution {
    let own = native_key(connection, entity, native_id);
    let naturals: Vec<String> = natural_keys
        .iter()
        .filter_map(|fields| natural_key(canonical_entity, fields, record))
        .collect();
    let (canonical_id, how) = if let Some(entry) = xref.get(&own) {
        (entry.canonical_id.clone(), "xref")
    } else if let Some(entry) = naturals.iter().find_map(|k| xref.get(k)) {
        (entry.canonical_id.clone(), "natural_key")
    } else {
        (canonical_id(connection, entity, native_id), "new")
    };
    let link = || XrefEntry {
        canonical_id: canonical_id.clone(),
        entity: canonical_entity.to_owned(),
    };
    let mut writes = Vec::new();
    if !xref.contains_key(&own) {
        writes.push((own, link()));
    }
    // A natural key belongs to the first record that claimed it; a later record with the
    // same e-mail links to that one instead of stealing the key.
    for key in naturals {
        if !xref.contains_key(&key) {
            writes.push((key, link()));
        }
    }
    Resolution {
        canonical_id,
        how,
        writes,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(xref: &mut HashMap<String, XrefEntry>, r: &Resolution) {
        for (k, v) in &r.writes {
            xref.insert(k.clone(), v.clone());
        }
    }

    #[test]
    fn two_systems_with_one_email_share_one_canonical_record() {
        let keys = vec![vec!["email".to_owned()]];
        let mut xref = HashMap::new();
        let shop = json!({"email": "Ada@Example.com "});
        let crm = json!({"email": "ada@example.com"});
        let a = resolve(
            &xref,
            "shop",
            "customers",
            "1",
            "contact",
            &keys,
            shop.as_object().unwrap(),
        );
        assert_eq!(a.how, "new");
        assert_eq!(a.canonical_id, canonical_id("shop", "customers", "1"));
        apply(&mut xref, &a);
        let b = resolve(
            &xref,
            "crm",
            "persons",
            "77",
            "contact",
            &keys,
            crm.as_object().unwrap(),
        );
        assert_eq!((b.how, &b.canonical_id), ("natural_key", &a.canonical_id));
        apply(&mut xref, &b);
        // Later, the person's own link decides even if the e-mail changed.
        let moved = json!({"email": "ada@elsewhere.com"});
        let c = resolve(
            &xref,
            "crm",
            "persons",
            "77",
            "contact",
            &keys,
            moved.as_object().unwrap(),
        );
        assert_eq!((c.how, &c.canonical_id), ("xref", &a.canonical_id));
        assert_eq!(c.writes.len(), 1, "only the new e-mail is claimed");
    }

    #[test]
    fn alternatives_are_tried_in_order_and_need_every_field() {
        let keys = [
            vec!["vat_number".to_owned()],
            vec!["name".to_owned(), "country".to_owned()],
        ];
        let record = json!({"vat_number": null, "name": "Acme BV", "country": "NL"});
        let key = keys
            .iter()
            .find_map(|k| natural_key("organization", k, record.as_object().unwrap()));
        assert_eq!(
            key.as_deref(),
            Some("natural/organization/name=acme bv&country=nl")
        );
    }

    #[test]
    fn resolution_is_deterministic() {
        let record = json!({"email": null});
        let r = |x: &HashMap<String, XrefEntry>| {
            resolve(
                x,
                "shop",
                "customers",
                "9",
                "contact",
                &[],
                record.as_object().unwrap(),
            )
        };
        assert_eq!(r(&HashMap::new()), r(&HashMap::new()));
    }
}
