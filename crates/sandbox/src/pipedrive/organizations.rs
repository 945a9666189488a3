//! The Pipedrive API v2 organizations routes: create, get, update, delete, list (search is
//! in `search.rs`), and the store operations behind them.
//!
//! Contract facts followed (saas-contracts.md §2.5: "the same CRUD set exists under
//! `/api/v2/organizations`"; v2 OpenAPI): answers and envelopes as for persons — 200 with
//! `{"success":true,"data":<organization>}` for add/get/update, `{"success":true,"data":
//! {"id":..}}` for the soft delete, cursor pagination for the list (`owner_id` filter
//! supported). Each create, change and delete fires a webhook v2 event (§2.1).
//!
//! Creates are counted on the shared control under `organization:<lower-cased name>`, the
//! natural key a check-before-create would search by. Same strict choices as persons:
//! a deleted organization is still readable (with `is_deleted: true`) but 404 to update or
//! delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::common::{
    Mode, Rejection, format_time, id_param, json_body, merge_custom_fields, ok, ok_page, parse_id,
};
use super::events::{ChangeSource, Entity, Event, organization_data};
use super::listing::ListQuery;
use super::org_model::{Organization, OrganizationInput, parse_organization_input};
use super::search::search_organizations;
use super::state::{Shared, Stored};

/// The organizations routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v2/organizations", post(create).get(list))
        .route("/api/v2/organizations/search", get(search_organizations))
        .route(
            "/api/v2/organizations/{id}",
            get(get_one).patch(update).delete(delete),
        )
}

fn org_not_found() -> Rejection {
    Rejection::not_found("Organization not found")
}

fn org_json(org: &Organization) -> Value {
    serde_json::to_value(org).unwrap_or(Value::Null)
}

/// The create counter key of an organization.
pub(crate) fn create_key(name: &str) -> String {
    format!("organization:{}", name.to_lowercase())
}

/// Creates an organization, counts the create and fires the webhook event.
pub(crate) fn create_organization(
    shared: &Shared,
    input: OrganizationInput,
    source: ChangeSource,
) -> Result<Organization, Rejection> {
    let now = shared.now();
    let now_string = format_time(now);
    let name = input.name.unwrap_or_default();
    let mut inner = shared.lock();
    let org = Organization {
        id: inner.allocate_organization_id(),
        owner_id: input.owner_id.unwrap_or(shared.config.user_id),
        add_time: input.add_time.unwrap_or_else(|| now_string.clone()),
        update_time: input.update_time.unwrap_or(now_string),
        is_deleted: false,
        visible_to: input.visible_to.unwrap_or(3),
        address: input.address.flatten(),
        label_ids: input.label_ids.unwrap_or_default(),
        custom_fields: input
            .custom_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .collect(),
        name,
    };
    shared.control.count_create(&create_key(&org.name));
    inner.organizations.insert(
        org.id,
        Stored {
            item: org.clone(),
            searchable_from: now + shared.config.search_lag,
        },
    );
    shared.publish(Event::created(
        Entity::Organization,
        org.id,
        organization_data(&org),
        source,
        now,
    ));
    Ok(org)
}

/// Updates a live organization and fires a change event when anything changed.
pub(crate) fn update_organization(
    shared: &Shared,
    id: u64,
    input: OrganizationInput,
    source: ChangeSource,
) -> Result<Organization, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    let Some(stored) = inner
        .organizations
        .get_mut(&id)
        .filter(|s| !s.item.is_deleted)
    else {
        return Err(org_not_found());
    };
    let before = organization_data(&stored.item);
    let o = &mut stored.item;
    if let Some(name) = input.name {
        o.name = name;
    }
    if let Some(owner_id) = input.owner_id {
        o.owner_id = owner_id;
    }
    if let Some(visible_to) = input.visible_to {
        o.visible_to = visible_to;
    }
    if let Some(label_ids) = input.label_ids {
        o.label_ids = label_ids;
    }
    if let Some(address) = input.address {
        o.address = address;
    }
    if let Some(fields) = input.custom_fields {
        merge_custom_fields(&mut o.custom_fields, fields);
    }
    o.update_time = input.update_time.unwrap_or_else(|| format_time(now));
    let updated = o.clone();
    if let Some(event) = Event::changed(
        Entity::Organization,
        id,
        &before,
        organization_data(&updated),
        source,
        now,
    ) {
        shared.publish(event);
    }
    Ok(updated)
}

/// Soft-deletes a live organization and fires the delete event.
pub(crate) fn delete_organization(
    shared: &Shared,
    id: u64,
    source: ChangeSource,
) -> Result<u64, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    let Some(stored) = inner
        .organizations
        .get_mut(&id)
        .filter(|s| !s.item.is_deleted)
    else {
        return Err(org_not_found());
    };
    let last = organization_data(&stored.item);
    stored.item.is_deleted = true;
    stored.item.update_time = format_time(now);
    shared.publish(Event::deleted(Entity::Organization, id, last, source, now));
    Ok(id)
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    json_body(&headers, &body)
        .and_then(|v| parse_organization_input(&v, Mode::Create))
        .and_then(|input| create_organization(&shared, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |o| ok(org_json(&o)))
}

async fn get_one(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    parse_id(&raw_id)
        .and_then(|id| {
            shared
                .lock()
                .organizations
                .get(&id)
                .map(|s| s.item.clone())
                .ok_or_else(org_not_found)
        })
        .map_or_else(IntoResponse::into_response, |o| ok(org_json(&o)))
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    parse_id(&raw_id)
        .and_then(|id| Ok((id, json_body(&headers, &body)?)))
        .and_then(|(id, v)| Ok((id, parse_organization_input(&v, Mode::Update)?)))
        .and_then(|(id, input)| update_organization(&shared, id, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |o| ok(org_json(&o)))
}

async fn delete(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    parse_id(&raw_id)
        .and_then(|id| delete_organization(&shared, id, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |id| ok(json!({ "id": id })))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = ListQuery::parse(&params).and_then(|q| Ok((q, id_param(&params, "owner_id")?)));
    let (query, owner) = match query {
        Ok(query) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let inner = shared.lock();
    let live = inner
        .live_organizations()
        .filter(|o| owner.is_none_or(|id| o.owner_id == id));
    let (items, next_cursor) = query.page(live, org_json);
    ok_page(items, next_cursor)
}
