//! The Pipedrive API v2 deals routes: create, get, update, delete, list (search is in
//! `search.rs`), and the store operations behind them.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI `addDeal`, `getDeal`,
//! `updateDeal`, `deleteDeal` — "Marks a deal as deleted. After 30 days, the deal will be
//! permanently deleted." — and `getDeals`): 200 with `{"success":true,"data":<deal>}` for
//! add/get/update, `{"success":true,"data":{"id":..}}` for the delete, cursor pagination
//! for the list with `owner_id`, `person_id`, `org_id`, `stage_id` and `status` filters.
//! Each create, change and delete fires a webhook v2 event (§2.1). `origin` is set by
//! the emulator (`API` for API creates, `ManuallyCreated` for demo triggers) and cannot be
//! changed.
//!
//! Creates are counted on the shared control under `deal:<title>`. Stricter-than-known:
//! `person_id`/`org_id` must name live records (400 otherwise); the default currency is
//! `USD` (the OpenAPI examples').

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Number, Value, json};

use super::common::{Mode, Rejection, format_time, id_param, json_body, ok, ok_page, parse_id};
use super::deal_model::{Deal, DealInput, PIPELINE_ID, parse_deal_input};
use super::events::{ChangeSource, Entity, Event, deal_data};
use super::listing::ListQuery;
use super::search::search_deals;
use super::state::{Inner, Shared, Stored};

/// Currency of deals created without one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// The deals routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v2/deals", post(create).get(list))
        .route("/api/v2/deals/search", get(search_deals))
        .route(
            "/api/v2/deals/{id}",
            get(get_one).patch(update).delete(delete),
        )
}

fn deal_not_found() -> Rejection {
    Rejection::not_found("Deal not found")
}

fn deal_json(deal: &Deal) -> Value {
    serde_json::to_value(deal).unwrap_or(Value::Null)
}

/// The create counter key of a deal.
pub(crate) fn create_key(title: &str) -> String {
    format!("deal:{title}")
}

fn check_links(inner: &Inner, input: &DealInput) -> Result<(), Rejection> {
    if let Some(Some(id)) = input.person_id
        && inner.live_person(id).is_none()
    {
        return Err(Rejection::bad_request(format!(
            "Validation failed: person_id: Person {id} not found"
        )));
    }
    if let Some(Some(id)) = input.org_id
        && inner.live_organization(id).is_none()
    {
        return Err(Rejection::bad_request(format!(
            "Validation failed: org_id: Organization {id} not found"
        )));
    }
    Ok(())
}

/// A deal with every field at its default, before the create body is applied.
fn blank_deal(id: u64, shared: &Shared, now: &str, source: ChangeSource) -> Deal {
    Deal {
        id,
        title: String::new(),
        creator_user_id: shared.config.user_id,
        owner_id: shared.config.user_id,
        person_id: None,
        org_id: None,
        pipeline_id: PIPELINE_ID,
        stage_id: 1,
        value: Number::from(0),
        currency: DEFAULT_CURRENCY.to_owned(),
        add_time: now.to_owned(),
        update_time: now.to_owned(),
        stage_change_time: None,
        is_deleted: false,
        is_archived: false,
        archive_time: None,
        status: "open".to_owned(),
        probability: None,
        lost_reason: None,
        visible_to: 3,
        close_time: None,
        won_time: None,
        lost_time: None,
        expected_close_date: None,
        label_ids: Vec::new(),
        origin: match source {
            ChangeSource::Api => "API",
            ChangeSource::App => "ManuallyCreated",
        }
        .to_owned(),
        origin_id: None,
        channel: None,
        channel_id: None,
        arr: None,
        mrr: None,
        acv: None,
        custom_fields: Map::new(),
    }
}

/// Creates a deal, counts the create and fires the webhook event.
pub(crate) fn create_deal(
    shared: &Shared,
    input: DealInput,
    source: ChangeSource,
) -> Result<Deal, Rejection> {
    let now = shared.now();
    let now_string = format_time(now);
    let mut inner = shared.lock();
    check_links(&inner, &input)?;
    // Validate against a scratch deal first, so a refused body does not burn an ID.
    let mut deal = blank_deal(0, shared, &now_string, source);
    deal.apply(input, &now_string)?;
    deal.id = inner.allocate_deal_id();
    deal.stage_change_time = None;
    deal.custom_fields.retain(|_, v| !v.is_null());
    shared.control.count_create(&create_key(&deal.title));
    inner.deals.insert(
        deal.id,
        Stored {
            item: deal.clone(),
            searchable_from: now + shared.config.search_lag,
        },
    );
    shared.publish(Event::created(
        Entity::Deal,
        deal.id,
        deal_data(&deal),
        source,
        now,
    ));
    Ok(deal)
}

/// Updates a live deal and fires a change event when anything changed.
pub(crate) fn update_deal(
    shared: &Shared,
    id: u64,
    input: DealInput,
    source: ChangeSource,
) -> Result<Deal, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    check_links(&inner, &input)?;
    let Some(stored) = inner.deals.get_mut(&id).filter(|s| !s.item.is_deleted) else {
        return Err(deal_not_found());
    };
    let before = deal_data(&stored.item);
    stored.item.apply(input, &format_time(now))?;
    let updated = stored.item.clone();
    if let Some(event) = Event::changed(Entity::Deal, id, &before, deal_data(&updated), source, now)
    {
        shared.publish(event);
    }
    Ok(updated)
}

/// Soft-deletes a live deal and fires the delete event.
pub(crate) fn delete_deal(
    shared: &Shared,
    id: u64,
    source: ChangeSource,
) -> Result<u64, Rejection> {
    let now = shared.now();
    let mut inner = shared.lock();
    let Some(stored) = inner.deals.get_mut(&id).filter(|s| !s.item.is_deleted) else {
        return Err(deal_not_found());
    };
    let last = deal_data(&stored.item);
    stored.item.is_deleted = true;
    stored.item.update_time = format_time(now);
    shared.publish(Event::deleted(Entity::Deal, id, last, source, now));
    Ok(id)
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    json_body(&headers, &body)
        .and_then(|v| parse_deal_input(&v, Mode::Create))
        .and_then(|input| create_deal(&shared, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |d| ok(deal_json(&d)))
}

async fn get_one(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    parse_id(&raw_id)
        .and_then(|id| {
            shared
                .lock()
                .deals
                .get(&id)
                .map(|s| s.item.clone())
                .ok_or_else(deal_not_found)
        })
        .map_or_else(IntoResponse::into_response, |d| ok(deal_json(&d)))
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    parse_id(&raw_id)
        .and_then(|id| Ok((id, json_body(&headers, &body)?)))
        .and_then(|(id, v)| Ok((id, parse_deal_input(&v, Mode::Update)?)))
        .and_then(|(id, input)| update_deal(&shared, id, input, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |d| ok(deal_json(&d)))
}

async fn delete(State(shared): State<Arc<Shared>>, Path(raw_id): Path<String>) -> Response {
    parse_id(&raw_id)
        .and_then(|id| delete_deal(&shared, id, ChangeSource::Api))
        .map_or_else(IntoResponse::into_response, |id| ok(json!({ "id": id })))
}

/// The list filters of `getDeals` the emulator supports.
struct Filters {
    owner: Option<u64>,
    person: Option<u64>,
    org: Option<u64>,
    stage: Option<u64>,
    status: Option<String>,
}

impl Filters {
    fn parse(params: &HashMap<String, String>) -> Result<Self, Rejection> {
        let status = match params.get("status").map(String::as_str) {
            None | Some("all_not_deleted") => None,
            Some(s @ ("open" | "won" | "lost")) => Some(s.to_owned()),
            Some(_) => {
                return Err(Rejection::bad_request(
                    "Validation failed: status: must be one of open, won, lost, all_not_deleted",
                ));
            }
        };
        Ok(Self {
            owner: id_param(params, "owner_id")?,
            person: id_param(params, "person_id")?,
            org: id_param(params, "org_id")?,
            stage: id_param(params, "stage_id")?,
            status,
        })
    }

    fn matches(&self, d: &Deal) -> bool {
        self.owner.is_none_or(|id| d.owner_id == id)
            && self.person.is_none_or(|id| d.person_id == Some(id))
            && self.org.is_none_or(|id| d.org_id == Some(id))
            && self.stage.is_none_or(|id| d.stage_id == id)
            && self.status.as_ref().is_none_or(|s| &d.status == s)
    }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = ListQuery::parse(&params).and_then(|q| Ok((q, Filters::parse(&params)?)));
    let (query, filters) = match query {
        Ok(query) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let inner = shared.lock();
    let live = inner.live_deals().filter(|d| filters.matches(d));
    let (items, next_cursor) = query.page(live, deal_json);
    ok_page(items, next_cursor)
}
