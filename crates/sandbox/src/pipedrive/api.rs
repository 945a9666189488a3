//! The Pipedrive API v2 persons routes: create, get, update, delete, list (and search, in
//! `search.rs`).
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI as shipped with the official
//! SDKs):
//! - `POST /api/v2/persons` answers **200** with `{"success":true,"data":<person>}` — the
//!   OpenAPI `addPerson` operation lists `'200': Add person` (not 201; 201 is only used by
//!   sub-resources such as followers and product variations).
//! - `GET`/`PATCH /api/v2/persons/{id}` answer 200 with the person; `DELETE` marks it deleted
//!   (purged by the real API after 30 days) and answers `{"success":true,"data":{"id":..}}`.
//! - `GET /api/v2/persons` lists with cursor pagination (`limit` ≤ 500, default 100;
//!   `additional_data.next_cursor`, null at the end).
//! - Bodies are JSON only (§2.5).
//!
//! Stricter-than-known choices: a body without a JSON `Content-Type` is a 415; an ID that
//! is not a positive integer is a 400. `GET` of a soft-deleted person still answers 200 with
//! `is_deleted: true` (a client must check the flag), while `PATCH`/`DELETE` of a deleted
//! person are 404 "Person not found".

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::gate::gate;
use super::model::{Mode, Person, Rejection, now_string, parse_person_input, split_name, success};
use super::search::search_persons;
use super::state::Shared;

/// Builds the emulator's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/persons", post(create_person).get(list_persons))
        .route("/api/v2/persons/search", get(search_persons))
        .route(
            "/api/v2/persons/{id}",
            get(get_person).patch(update_person).delete(delete_person),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(super::model::error_body(&self.message)),
        )
            .into_response()
    }
}

fn person_not_found() -> Rejection {
    Rejection {
        status: StatusCode::NOT_FOUND,
        message: "Person not found".to_owned(),
    }
}

fn ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(success(data))).into_response()
}

fn person_json(person: &Person) -> Value {
    serde_json::to_value(person).unwrap_or(Value::Null)
}

/// Parses a JSON request body, insisting on a JSON content type.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Rejection> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json".to_owned(),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| Rejection::bad_request(format!("Invalid JSON body: {e}")))
}

fn parse_id(raw: &str) -> Result<u64, Rejection> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Rejection::bad_request(
            "Validation failed: id: Expected positive integer",
        )),
    }
}

async fn create_person(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input = match json_body(&headers, &body).and_then(|v| parse_person_input(&v, Mode::Create))
    {
        Ok(input) => input,
        Err(rejection) => return rejection.into_response(),
    };
    let now = now_string();
    let name = input.name.unwrap_or_default();
    let (first_name, last_name) = split_name(&name);
    let searchable_from = tokio::time::Instant::now() + shared.config.search_lag;
    let created = {
        let mut inner = shared.lock();
        let person = Person {
            id: inner.allocate_id(),
            name,
            first_name,
            last_name,
            owner_id: input.owner_id.unwrap_or(shared.config.user_id),
            org_id: input.org_id.flatten(),
            add_time: input.add_time.unwrap_or_else(|| now.clone()),
            update_time: now,
            emails: input.emails.unwrap_or_default(),
            phones: input.phones.unwrap_or_default(),
            is_deleted: false,
            visible_to: input.visible_to.unwrap_or(3),
            label_ids: input.label_ids.unwrap_or_default(),
            picture_id: None,
            marketing_status: input.marketing_status,
            custom_fields: input
                .custom_fields
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
        };
        inner.insert_created(person, searchable_from)
    };
    tracing::debug!(
        person_id = created.id,
        "Pipedrive emulator created a person."
    );
    ok(person_json(&created))
}

async fn get_person(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    let id = match parse_id(&raw_id) {
        Ok(id) => id,
        Err(rejection) => return rejection.into_response(),
    };
    let found = shared.lock().persons.get(&id).map(|s| s.person.clone());
    match found {
        Some(person) => ok(person_json(&person)),
        None => person_not_found().into_response(),
    }
}

async fn update_person(
    State(shared): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = parse_id(&raw_id)
        .and_then(|id| Ok((id, json_body(&headers, &body)?)))
        .and_then(|(id, v)| Ok((id, parse_person_input(&v, Mode::Update)?)));
    let (id, input) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    let now = now_string();
    let updated = {
        let mut inner = shared.lock();
        let Some(stored) = inner.persons.get_mut(&id).filter(|s| !s.person.is_deleted) else {
            return person_not_found().into_response();
        };
        let p = &mut stored.person;
        if let Some(name) = input.name {
            (p.first_name, p.last_name) = split_name(&name);
            p.name = name;
        }
        if let Some(owner_id) = input.owner_id {
            p.owner_id = owner_id;
        }
        if let Some(org_id) = input.org_id {
            p.org_id = org_id;
        }
        if let Some(emails) = input.emails {
            p.emails = emails;
        }
        if let Some(phones) = input.phones {
            p.phones = phones;
        }
        if let Some(visible_to) = input.visible_to {
            p.visible_to = visible_to;
        }
        if let Some(label_ids) = input.label_ids {
            p.label_ids = label_ids;
        }
        if input.marketing_status.is_some() {
            p.marketing_status = input.marketing_status;
        }
        for (key, value) in input.custom_fields.unwrap_or_default() {
            if value.is_null() {
                p.custom_fields.remove(&key);
            } else {
                p.custom_fields.insert(key, value);
            }
        }
        p.update_time = now;
        p.clone()
    };
    ok(person_json(&updated))
}

async fn delete_person(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    let id = match parse_id(&raw_id) {
        Ok(id) => id,
        Err(rejection) => return rejection.into_response(),
    };
    let now = now_string();
    let deleted = {
        let mut inner = shared.lock();
        match inner.persons.get_mut(&id).filter(|s| !s.person.is_deleted) {
            Some(stored) => {
                stored.person.is_deleted = true;
                stored.person.update_time = now;
                true
            }
            None => false,
        }
    };
    if deleted {
        ok(json!({ "id": id }))
    } else {
        person_not_found().into_response()
    }
}

/// Opaque cursor: base64url of the last ID served.
pub(crate) fn encode_cursor(after: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{{\"after\":{after}}}"))
}

/// Decodes a cursor made by [`encode_cursor`]; a foreign cursor is a 400.
pub(crate) fn decode_cursor(cursor: &str) -> Result<u64, Rejection> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("after").and_then(Value::as_u64))
        .ok_or_else(|| Rejection::bad_request("Validation failed: cursor: Invalid cursor"))
}

/// Parses `limit` (default 100, 1..=500 per the OpenAPI parameter description).
pub(crate) fn parse_limit(params: &HashMap<String, String>) -> Result<usize, Rejection> {
    match params.get("limit") {
        None => Ok(100),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(Rejection::bad_request(
                "Validation failed: limit: must be an integer from 1 to 500",
            )),
        },
    }
}

async fn list_persons(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let page = parse_limit(&params).and_then(|limit| {
        let after = params
            .get("cursor")
            .map(|c| decode_cursor(c))
            .transpose()?
            .unwrap_or(0);
        Ok((limit, after))
    });
    let (limit, after) = match page {
        Ok(page) => page,
        Err(rejection) => return rejection.into_response(),
    };
    let (items, more) = {
        let inner = shared.lock();
        let mut live = inner.live_persons().filter(|p| p.id > after);
        let items: Vec<Person> = live.by_ref().take(limit).cloned().collect();
        (items, live.next().is_some())
    };
    let next_cursor = match items.last() {
        Some(last) if more => Value::String(encode_cursor(last.id)),
        _ => Value::Null,
    };
    let data: Vec<Value> = items.iter().map(person_json).collect();
    let body =
        json!({ "success": true, "data": data, "additional_data": { "next_cursor": next_cursor } });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    Rejection {
        status: StatusCode::NOT_FOUND,
        message: "Not found".to_owned(),
    }
    .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_rejected() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert_eq!(
            decode_cursor("bm9wZQ").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn limit_defaults_to_100_and_caps_at_500() {
        let mut params = HashMap::new();
        assert_eq!(parse_limit(&params).unwrap(), 100);
        params.insert("limit".to_owned(), "500".to_owned());
        assert_eq!(parse_limit(&params).unwrap(), 500);
        params.insert("limit".to_owned(), "501".to_owned());
        assert!(parse_limit(&params).is_err());
    }
}
