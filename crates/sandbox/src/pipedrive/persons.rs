//! The Pipedrive API v2 persons routes: create, get, update, delete, list (search is in
//! `search.rs`), and the store operations behind them that the demo triggers reuse.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI as shipped with the official
//! SDKs):
//! - `POST /api/v2/persons` answers **200** with `{"success":true,"data":<person>}` — the
//!   OpenAPI `addPerson` operation lists `'200': Add person` (not 201; 201 is only used by
//!   sub-resources such as followers and product variations).
//! - `GET`/`PATCH /api/v2/persons/{id}` answer 200 with the person; `DELETE` marks it deleted
//!   (purged by the real API after 30 days) and answers `{"success":true,"data":{"id":..}}`.
//! - `GET /api/v2/persons` lists with time filters, sorting and cursor pagination (see
//!   `listing.rs`).
//! - Every create, change and delete fires a webhook v2 event (§2.1), `change_source`
//!   `api` for API calls.
//!
//! Stricter-than-known choices: `GET` of a soft-deleted person still answers 200 with
//! `is_deleted: true` (a client must check the flag), while `PATCH`/`DELETE` of a deleted
//! person are 404 "Person not found". An `org_id` must name a live organization (400
//! otherwise; the reference is silent on dangling links).
//!
//! Creates are counted per lower-cased email on the shared [`crate::control::Control`]
//! (a person without email under `person:<id>`), so a duplicate is visible to tests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::common::{Mode, Rejection, json_body, ok, ok_page, parse_id};
use super::events::{ChangeSource, Entity, Event, person_data};
use super::listing::ListQuery;
use super::model::{Person, PersonInput, parse_person_input, split_name};
use super::search::search_persons;
use super::state::{Inner, Shared, Stored};

/// The persons routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v2/persons", post(create).get(list))
        .route("/api/v2/persons/search", get(search_persons))
        .route(
            "/api/v2/persons/{id}",
            get(get_one).patch(update).delete(delete),
        )
}

fn person_not_found() -> Rejection {
    Rejection::not_found("Person not found")
}

fn person_json(person: &Person) -> Value {
    serde_json::to_value(person).unwrap_or(Value::Null)
}

fn check_org(inner: &Inner, org_id: Option<u64>) -> Result<(), Rejection> {
    match org_id {
        Some(id) if inner.live_organization(id).is_none() => Err(Rejection::bad_request(format!(
            "Validation failed: org_id: Organization {id} not found"
        ))),
        _ => Ok(()),
    }
}

/// Creates a person, counts the create and fires the webhook event.
pub(crate) fn create_person(
    shared: &Shared,
    input: PersonInput,
    source: ChangeSource,
) -> Result<Person, Rejection> {
    let now = shared.now();
    let now_string = shared.now_string();
    let name = input.name.unwrap_or_default();
    let (first_name, last_name) = split_name(&name);
    let mut inner = shared.lock();
    let org_id = input.org_id.flatten();
    check_org(&inner, org_id)?;
    let person = Person {
        id: inner.allocate_person_id(),
        name,
        first_name,
        last_name,
        owner_id: input.owner_id.unwrap_or(shared.config.user_id),
        org_id,
        add_time: input.add_time.unwrap_or_else(|| now_string.clone()),
        update_time: now_string,
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
    inner.total_creates += 1;
    count_person_create(shared, &person);
    inner.persons.insert(
        person.id,
        Stored {
            item: person.clone(),
            searchable_from: now + shared.config.search_lag,
        },
    );
    shared.publish(Event::created(
        Entity::Person,
        person.id,
        person_data(&person),
        source,
        now,
    ));
    tracing::debug!(
        person_id = person.id,
        "Pipedrive emulator created a person."
    );
    Ok(person)
}

/// One create per distinct lower-cased email; `person:<id>` when there is none.
fn count_person_create(shared: &Shared, person: &Person) {
    let mut seen: Vec<String> = Vec::new();
    for email in &person.emails {
        let key = email.value.to_ascii_lowercase();
        if !seen.contains(&key) {
            shared.control.count_create(&key);
            seen.push(key);
        }
    }
    if seen.is_empty() {
        shared
            .control
            .count_create(&format!("person:{}", person.id));
    }
}

/// Updates a live person and fires a change event when anything changed.
pub(crate) fn update_person(
    shared: &Shared,
    id: u64,
    input: PersonInput,
    source: ChangeSource,
) -> Result<Person, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    if let Some(org_id) = input.org_id {
        check_org(&inner, org_id)?;
    }
    let Some(stored) = inner.persons.get_mut(&id).filter(|s| !s.item.is_deleted) else {
        return Err(person_not_found());
    };
    let before = person_data(&stored.item);
    let p = &mut stored.item;
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
    if let Some(fields) = input.custom_fields {
        super::common::merge_custom_fields(&mut p.custom_fields, fields);
    }
    p.update_time = super::common::format_time(now);
    let updated = p.clone();
    if let Some(event) = Event::changed(
        Entity::Person,
        id,
        &before,
        person_data(&updated),
        source,
        now,
    ) {
        shared.publish(event);
    }
    Ok(updated)
}

/// Soft-deletes a live person and fires the delete event.
pub(crate) fn delete_person(
    shared: &Shared,
    id: u64,
    source: ChangeSource,
) -> Result<u64, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    let Some(stored) = inner.persons.get_mut(&id).filter(|s| !s.item.is_deleted) else {
        return Err(person_not_found());
    };
    let last = person_data(&stored.item);
    stored.item.is_deleted = true;
    stored.item.update_time = super::common::format_time(now);
    shared.publish(Event::deleted(Entity::Person, id, last, source, now));
    Ok(id)
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    json_body(&headers, &body)
        .and_then(|v| parse_person_input(&v, Mode::Create))
        .and_then(|input| create_person(&shared, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |p| ok(person_json(&p)))
}

async fn get_one(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    let found = parse_id(&raw_id).and_then(|id| {
        shared
            .lock()
            .persons
            .get(&id)
            .map(|s| s.item.clone())
            .ok_or_else(person_not_found)
    });
    found.map_or_else(IntoResponse::into_response, |p| ok(person_json(&p)))
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    parse_id(&raw_id)
        .and_then(|id| Ok((id, json_body(&headers, &body)?)))
        .and_then(|(id, v)| Ok((id, parse_person_input(&v, Mode::Update)?)))
        .and_then(|(id, input)| update_person(&shared, id, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |p| ok(person_json(&p)))
}

async fn delete(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    parse_id(&raw_id)
        .and_then(|id| delete_person(&shared, id, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |id| ok(json!({ "id": id })))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match ListQuery::parse(&params) {
        Ok(query) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let (items, next_cursor) = query.page(shared.lock().live_persons(), person_json);
    ok_page(items, next_cursor)
}
