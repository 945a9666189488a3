//! `GET /api/v2/{persons,organizations,deals}/search`, the endpoints check-before-create
//! relies on.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI `searchPersons`,
//! `searchOrganization`, `searchDeals` and the SDK's search response models):
//! - `term` is required: at least 2 characters, or 1 with `exact_match=true`.
//!   `exact_match` is a full, case-insensitive match. `limit` ≤ 500 (default 100) and
//!   `cursor` paginate.
//! - `fields` is a comma-separated subset of: persons `custom_fields, email, notes, phone,
//!   name` (filter `organization_id`); organizations `address, custom_fields, notes, name`;
//!   deals `custom_fields, notes, title` (filters `person_id`, `organization_id`,
//!   `status`). Default: all.
//! - Answer: `{"success":true,"data":{"items":[{"result_score":..,"item":{..}}]},
//!   "additional_data":{"next_cursor":..}}`. Person items: `id, type, name, phones`
//!   (strings)`, emails` (strings)`, visible_to, owner{id}, organization{id,name,address},
//!   custom_fields, notes`. Organization items: `id, type, name, address` (string or null)`,
//!   visible_to, owner{id}, custom_fields, notes`. Deal items: `id, type, title, value,
//!   currency, status, visible_to, owner{id}, stage{id,name}, person{id,name},
//!   organization{id,name}, custom_fields, notes, is_archived`.
//! - Deleted records are not found.
//!
//! Emulator choices: without `exact_match` a term matches any field value containing it
//! (case-insensitive); the real engine also tokenises. `notes` never match (no notes are
//! emulated). The real search index lags behind writes; `PipedriveConfig::search_lag`
//! emulates that for new records (default zero).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::common::{Rejection, decode_cursor, encode_cursor, id_param, parse_limit};
use super::deal_model::{Deal, stage_name};
use super::model::Person;
use super::org_model::Organization;
use super::state::{Inner, Shared};

const PERSON_FIELDS: [&str; 5] = ["custom_fields", "email", "notes", "phone", "name"];
const ORGANIZATION_FIELDS: [&str; 4] = ["address", "custom_fields", "notes", "name"];
const DEAL_FIELDS: [&str; 3] = ["custom_fields", "notes", "title"];

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchQuery {
    pub term: String,
    pub fields: Vec<String>,
    pub exact_match: bool,
    pub limit: usize,
    pub after: usize,
}

/// Parses the parameters every search shares; `allowed` are the entity's `fields`.
pub(crate) fn parse_search(
    params: &HashMap<String, String>,
    allowed: &[&str],
) -> Result<SearchQuery, Rejection> {
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
        None => allowed.iter().map(|f| (*f).to_owned()).collect(),
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .map(|field| {
                if allowed.contains(&field) {
                    Ok(field.to_owned())
                } else {
                    Err(Rejection::bad_request(format!(
                        "Validation failed: fields: '{field}' is not one of {}",
                        allowed.join(", ")
                    )))
                }
            })
            .collect::<Result<_, _>>()?,
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
        limit,
        after,
    })
}

/// The best score over `(field, value)` pairs whose field the query searches.
pub(crate) fn score<'a>(
    query: &SearchQuery,
    values: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<f64> {
    let term = query.term.to_lowercase();
    let mut best: Option<f64> = None;
    for (field, value) in values {
        if !query.fields.iter().any(|f| f == field) {
            continue;
        }
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
    best.map(|s| (s * 10_000.0).round() / 10_000.0)
}

fn custom_values(fields: &serde_json::Map<String, Value>) -> impl Iterator<Item = (&str, &str)> {
    fields
        .values()
        .filter_map(Value::as_str)
        .map(|v| ("custom_fields", v))
}

fn person_values(p: &Person) -> Vec<(&str, &str)> {
    let mut values = vec![("name", p.name.as_str())];
    values.extend(p.emails.iter().map(|e| ("email", e.value.as_str())));
    values.extend(p.phones.iter().map(|e| ("phone", e.value.as_str())));
    values.extend(custom_values(&p.custom_fields));
    values
}

fn organization_values(o: &Organization) -> Vec<(&str, &str)> {
    let mut values = vec![("name", o.name.as_str())];
    values.extend(o.address.iter().map(|a| ("address", a.value.as_str())));
    values.extend(custom_values(&o.custom_fields));
    values
}

fn deal_values(d: &Deal) -> Vec<(&str, &str)> {
    let mut values = vec![("title", d.title.as_str())];
    values.extend(custom_values(&d.custom_fields));
    values
}

/// Sorts hits best first (ties by ID, so pages are stable) and answers one page.
fn respond(mut hits: Vec<(f64, u64, Value)>, query: &SearchQuery) -> Response {
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let total = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(query.after)
        .take(query.limit)
        .map(|(score, _, item)| json!({ "result_score": score, "item": item }))
        .collect();
    let served = query.after.saturating_add(page.len());
    let next_cursor = (served < total).then(|| encode_cursor(served as u64));
    axum::Json(json!({
        "success": true,
        "data": { "items": page },
        "additional_data": { "next_cursor": next_cursor },
    }))
    .into_response()
}

fn org_ref(inner: &Inner, id: Option<u64>, with_address: bool) -> Value {
    let Some(id) = id else { return Value::Null };
    let org = inner.organizations.get(&id).map(|s| &s.item);
    let mut reference = json!({ "id": id, "name": org.map(|o| o.name.clone()) });
    if with_address {
        reference["address"] = json!(
            org.and_then(|o| o.address.as_ref())
                .map(|a| a.value.clone())
        );
    }
    reference
}

/// `GET /api/v2/persons/search`.
pub(crate) async fn search_persons(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let parsed = parse_search(&params, &PERSON_FIELDS)
        .and_then(|q| Ok((q, id_param(&params, "organization_id")?)));
    let (query, org_filter) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    let now = shared.now();
    let inner = shared.lock();
    let hits = inner
        .persons
        .values()
        .filter(|s| !s.item.is_deleted && s.searchable_from <= now)
        .map(|s| &s.item)
        .filter(|p| org_filter.is_none_or(|org| p.org_id == Some(org)))
        .filter_map(|p| {
            let score = score(&query, person_values(p))?;
            let item = json!({
                "id": p.id,
                "type": "person",
                "name": p.name,
                "phones": p.phones.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
                "emails": p.emails.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
                "visible_to": p.visible_to,
                "owner": { "id": p.owner_id },
                "organization": org_ref(&inner, p.org_id, true),
                "custom_fields": [],
                "notes": [],
            });
            Some((score, p.id, item))
        })
        .collect();
    drop(inner);
    respond(hits, &query)
}

/// `GET /api/v2/organizations/search`.
pub(crate) async fn search_organizations(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match parse_search(&params, &ORGANIZATION_FIELDS) {
        Ok(query) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let now = shared.now();
    let hits = shared
        .lock()
        .organizations
        .values()
        .filter(|s| !s.item.is_deleted && s.searchable_from <= now)
        .map(|s| &s.item)
        .filter_map(|o| {
            let score = score(&query, organization_values(o))?;
            let item = json!({
                "id": o.id,
                "type": "organization",
                "name": o.name,
                "address": o.address.as_ref().map(|a| a.value.clone()),
                "visible_to": o.visible_to,
                "owner": { "id": o.owner_id },
                "custom_fields": [],
                "notes": [],
            });
            Some((score, o.id, item))
        })
        .collect();
    respond(hits, &query)
}

/// `GET /api/v2/deals/search`.
pub(crate) async fn search_deals(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let parsed = parse_search(&params, &DEAL_FIELDS).and_then(|q| {
        let status = match params.get("status").map(String::as_str) {
            None => None,
            Some(s @ ("open" | "won" | "lost")) => Some(s.to_owned()),
            Some(_) => {
                return Err(Rejection::bad_request(
                    "Validation failed: status: must be one of open, won, lost",
                ));
            }
        };
        Ok((
            q,
            id_param(&params, "person_id")?,
            id_param(&params, "organization_id")?,
            status,
        ))
    });
    let (query, person, org, status) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    let now = shared.now();
    let inner = shared.lock();
    let hits = inner
        .deals
        .values()
        .filter(|s| !s.item.is_deleted && s.searchable_from <= now)
        .map(|s| &s.item)
        .filter(|d| person.is_none_or(|id| d.person_id == Some(id)))
        .filter(|d| org.is_none_or(|id| d.org_id == Some(id)))
        .filter(|d| status.as_ref().is_none_or(|s| &d.status == s))
        .filter_map(|d| {
            let score = score(&query, deal_values(d))?;
            let person_ref = d.person_id.map(|id| {
                let name = inner.persons.get(&id).map(|s| s.item.name.clone());
                json!({ "id": id, "name": name })
            });
            let item = json!({
                "id": d.id,
                "type": "deal",
                "title": d.title,
                "value": d.value,
                "currency": d.currency,
                "status": d.status,
                "visible_to": d.visible_to,
                "owner": { "id": d.owner_id },
                "stage": { "id": d.stage_id, "name": stage_name(d.stage_id) },
                "person": person_ref,
                "organization": org_ref(&inner, d.org_id, false),
                "custom_fields": [],
                "notes": [],
                "is_archived": d.is_archived,
            });
            Some((score, d.id, item))
        })
        .collect();
    drop(inner);
    respond(hits, &query)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn term_length_rule_depends_on_exact_match() {
        let parse = |p: &[(&str, &str)]| parse_search(&params(p), &PERSON_FIELDS);
        assert!(parse(&[("term", "a")]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&[("term", "a"), ("exact_match", "true")]).is_ok());
        assert!(parse(&[("term", "ab")]).is_ok());
        assert!(parse(&[("term", "ab"), ("exact_match", "yes")]).is_err());
    }

    #[test]
    fn fields_must_be_the_entitys() {
        let q = parse_search(
            &params(&[("term", "ab"), ("fields", "email,name")]),
            &PERSON_FIELDS,
        )
        .unwrap();
        assert_eq!(q.fields, ["email", "name"]);
        assert!(
            parse_search(
                &params(&[("term", "ab"), ("fields", "address")]),
                &PERSON_FIELDS
            )
            .is_err()
        );
        assert!(
            parse_search(
                &params(&[("term", "ab"), ("fields", "address")]),
                &ORGANIZATION_FIELDS
            )
            .is_ok()
        );
        assert!(
            parse_search(&params(&[("term", "ab"), ("fields", "name")]), &DEAL_FIELDS).is_err()
        );
        let all = parse_search(&params(&[("term", "ab")]), &DEAL_FIELDS).unwrap();
        assert_eq!(all.fields, ["custom_fields", "notes", "title"]);
    }

    #[test]
    fn exact_match_is_case_insensitive_and_whole_value_only() {
        let values = [("name", "Bob Biller"), ("email", "Bob@Biller.com")];
        let exact = |term: &str, fields: &[&str]| SearchQuery {
            term: term.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            exact_match: true,
            limit: 100,
            after: 0,
        };
        assert_eq!(
            score(&exact("bob@biller.com", &["email"]), values),
            Some(1.0)
        );
        assert_eq!(score(&exact("bob@biller.co", &["email"]), values), None);
        let fuzzy = SearchQuery {
            exact_match: false,
            ..exact("biller", &["email"])
        };
        assert!(score(&fuzzy, values).is_some_and(|s| s > 0.0 && s < 1.0));
        assert_eq!(
            score(&exact("bob@biller.com", &["name"]), values),
            None,
            "fields=name must not look at emails"
        );
    }
}
