//! `GET /api/v2/persons/search`, the endpoint check-before-create relies on.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI `searchPersons`):
//! - `term` is required: at least 2 characters, or 1 with `exact_match=true`.
//! - `fields` is a comma-separated subset of `custom_fields, email, notes, phone, name`
//!   (default: all); `exact_match` is a full, case-insensitive match; `organization_id`
//!   filters; `limit` ≤ 500 (default 100) and `cursor` paginate.
//! - Answer: `{"success":true,"data":{"items":[{"result_score":..,"item":{"id","type":
//!   "person","name","phones":[strings],"emails":[strings],"visible_to","owner":{"id"},
//!   "organization":..,"custom_fields":[],"notes":[]}}]},"additional_data":{"next_cursor":..}}`.
//! - Deleted persons are not found.
//!
//! Emulator choices: without `exact_match` a term matches any field value containing it
//! (case-insensitive); the real engine also tokenises. `notes` never match (the emulated
//! company has no Contact Sync). `organization.name` is null (no organizations yet).
//! The real search index lags behind writes; `PipedriveConfig::search_lag` emulates that for
//! newly created persons (default zero).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{decode_cursor, encode_cursor, parse_limit};
use super::model::{Person, Rejection};
use super::state::Shared;

const SEARCH_FIELDS: [&str; 5] = ["custom_fields", "email", "notes", "phone", "name"];

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchQuery {
    pub term: String,
    pub fields: Vec<String>,
    pub exact_match: bool,
    pub organization_id: Option<u64>,
    pub limit: usize,
    pub after: usize,
}

pub(crate) fn parse_search(params: &HashMap<String, String>) -> Result<SearchQuery, Rejection> {
    let exact_match = match params.get("exact_match").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(Rejection::bad_request(
                "Validation failed: exact_match: must be a boolean",
            ));
        }
    };
    let term = params
        .get("term")
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let min = if exact_match { 1 } else { 2 };
    if term.chars().count() < min {
        return Err(Rejection::bad_request(
            "Validation failed: term: must be at least 2 characters long (1 with exact_match)",
        ));
    }
    let fields = match params.get("fields") {
        None => SEARCH_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        Some(raw) => {
            let mut fields = Vec::new();
            for field in raw.split(',').map(str::trim) {
                if !SEARCH_FIELDS.contains(&field) {
                    return Err(Rejection::bad_request(format!(
                        "Validation failed: fields: '{field}' is not one of custom_fields, email, notes, phone, name"
                    )));
                }
                fields.push(field.to_owned());
            }
            fields
        }
    };
    let organization_id = match params.get("organization_id") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            Rejection::bad_request("Validation failed: organization_id: Expected integer")
        })?),
    };
    let limit = parse_limit(params)?;
    let after = match params.get("cursor") {
        None => 0,
        Some(c) => usize::try_from(decode_cursor(c)?).unwrap_or(usize::MAX),
    };
    Ok(SearchQuery {
        term,
        fields,
        exact_match,
        organization_id,
        limit,
        after,
    })
}

/// The values of `person` that the given search field looks at.
fn field_values<'a>(person: &'a Person, field: &str) -> Vec<&'a str> {
    match field {
        "name" => vec![person.name.as_str()],
        "email" => person.emails.iter().map(|e| e.value.as_str()).collect(),
        "phone" => person.phones.iter().map(|p| p.value.as_str()).collect(),
        "custom_fields" => person
            .custom_fields
            .values()
            .filter_map(Value::as_str)
            .collect(),
        _ => Vec::new(),
    }
}

/// The best score of `person` for the query, if it matches at all.
pub(crate) fn score(person: &Person, query: &SearchQuery) -> Option<f64> {
    let term = query.term.to_lowercase();
    let mut best: Option<f64> = None;
    for field in &query.fields {
        for value in field_values(person, field) {
            let value = value.to_lowercase();
            let hit = if query.exact_match {
                value == term
            } else {
                value.contains(&term)
            };
            if hit {
                // Share of the value the term covers: 1.0 for a full match.
                let s = term.chars().count() as f64 / value.chars().count().max(1) as f64;
                best = Some(best.map_or(s, |b: f64| b.max(s)));
            }
        }
    }
    best.map(|s| (s * 10_000.0).round() / 10_000.0)
}

fn search_item(person: &Person, result_score: f64) -> Value {
    json!({
        "result_score": result_score,
        "item": {
            "id": person.id,
            "type": "person",
            "name": person.name,
            "phones": person.phones.iter().map(|p| p.value.clone()).collect::<Vec<_>>(),
            "emails": person.emails.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
            "visible_to": person.visible_to,
            "owner": { "id": person.owner_id },
            "organization": person.org_id.map(|id| json!({ "id": id, "name": null, "address": null })),
            "custom_fields": [],
            "notes": [],
        }
    })
}

/// The search handler.
pub(crate) async fn search_persons(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match parse_search(&params) {
        Ok(query) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let now = tokio::time::Instant::now();
    let mut hits: Vec<(f64, Person)> = {
        let inner = shared.lock();
        inner
            .persons
            .values()
            .filter(|s| !s.person.is_deleted && s.searchable_from <= now)
            .filter(|s| {
                query
                    .organization_id
                    .is_none_or(|org| s.person.org_id == Some(org))
            })
            .filter_map(|s| score(&s.person, &query).map(|sc| (sc, s.person.clone())))
            .collect()
    };
    // Best first; ties by ID so pages are stable.
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    let page: Vec<Value> = hits
        .iter()
        .skip(query.after)
        .take(query.limit)
        .map(|(sc, p)| search_item(p, *sc))
        .collect();
    let served = query.after.saturating_add(page.len());
    let next_cursor = if served < hits.len() {
        Value::String(encode_cursor(served as u64))
    } else {
        Value::Null
    };
    let body = json!({
        "success": true,
        "data": { "items": page },
        "additional_data": { "next_cursor": next_cursor },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pipedrive::model::ContactValue;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn person(name: &str, email: &str) -> Person {
        Person {
            id: 1,
            name: name.to_owned(),
            first_name: None,
            last_name: None,
            owner_id: 1,
            org_id: None,
            add_time: String::new(),
            update_time: String::new(),
            emails: vec![ContactValue {
                value: email.to_owned(),
                primary: true,
                label: "work".to_owned(),
            }],
            phones: vec![],
            is_deleted: false,
            visible_to: 3,
            label_ids: vec![],
            picture_id: None,
            marketing_status: None,
            custom_fields: Default::default(),
        }
    }

    #[test]
    fn term_length_rule_depends_on_exact_match() {
        assert!(parse_search(&params(&[("term", "a")])).is_err());
        assert!(parse_search(&params(&[])).is_err());
        assert!(parse_search(&params(&[("term", "a"), ("exact_match", "true")])).is_ok());
        assert!(parse_search(&params(&[("term", "ab")])).is_ok());
        assert!(parse_search(&params(&[("term", "ab"), ("exact_match", "yes")])).is_err());
    }

    #[test]
    fn fields_must_be_known() {
        let q = parse_search(&params(&[("term", "ab"), ("fields", "email,name")])).unwrap();
        assert_eq!(q.fields, ["email", "name"]);
        assert!(parse_search(&params(&[("term", "ab"), ("fields", "address")])).is_err());
    }

    #[test]
    fn exact_email_match_is_case_insensitive_and_whole_value_only() {
        let p = person("Bob Biller", "Bob@Biller.com");
        let exact = |term: &str| SearchQuery {
            term: term.to_owned(),
            fields: vec!["email".to_owned()],
            exact_match: true,
            organization_id: None,
            limit: 100,
            after: 0,
        };
        assert_eq!(score(&p, &exact("bob@biller.com")), Some(1.0));
        assert_eq!(score(&p, &exact("bob@biller.co")), None);
        let fuzzy = SearchQuery {
            exact_match: false,
            ..exact("biller")
        };
        assert!(score(&p, &fuzzy).is_some_and(|s| s > 0.0 && s < 1.0));
        let name_only = SearchQuery {
            fields: vec!["name".to_owned()],
            ..exact("bob@biller.com")
        };
        assert_eq!(
            score(&p, &name_only),
            None,
            "fields=name must not look at emails"
        );
    }
}
