//! The Admin REST API front door: version, auth, leaky bucket, then the resource routes.
//!
//! Contract facts followed:
//! - Paths are `/admin/api/{version}/<resource>.json`; a path without a version
//!   (`/admin/<resource>.json`) or with an unsupported one is served by the oldest
//!   supported version, and every answer says which in `X-Shopify-API-Version` (§1.7).
//! - Auth is `X-Shopify-Access-Token` (§1.5); a missing or wrong token is 401 with the
//!   `[API] Invalid API key ...` body (`errors.rs`). Unauthenticated answers carry no
//!   call-limit header: there is no app + store bucket to report.
//! - Every authenticated answer carries `X-Shopify-Shop-Api-Call-Limit: used/size`; a
//!   full bucket answers 429 with `Retry-After` (§1.5, `bucket.rs`). Requests to unknown
//!   paths still cost a marble, as they reach the API.
//! - Unknown paths and IDs are 404 `{"errors":"Not Found"}`.
//!
//! Routing is done by hand rather than with axum's router because a segment such as
//! `{id}.json` mixes a parameter with a fixed suffix.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::Value;

use super::bucket::Admission;
use super::errors::{ApiError, INVALID_TOKEN, error_response, json_response, throttled_message};
use super::json::Json;
use super::listing::{Filters, ListRequest, parse_limit};
use super::schema::Resource;
use super::state::{Shared, State as ShopState};
use super::{customers, orders, subscriptions};

const CALL_LIMIT: HeaderName = HeaderName::from_static("x-shopify-shop-api-call-limit");
const API_VERSION: HeaderName = HeaderName::from_static("x-shopify-api-version");

/// `/admin/api/{version}/{rest}` → `(Some(version), rest)`; `/admin/{rest}` → `(None, rest)`.
fn split_admin_path(path: &str) -> Option<(Option<&str>, &str)> {
    let rest = path.strip_prefix("/admin/")?;
    match rest.strip_prefix("api/") {
        Some(versioned) => {
            let (version, rest) = versioned.split_once('/')?;
            Some((Some(version), rest))
        }
        None => Some((None, rest)),
    }
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| {
            given.len() == token.len()
                && given
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
}

/// Everything a route needs about its request.
struct Call<'a> {
    shared: &'a Shared,
    method: &'a Method,
    segments: Vec<&'a str>,
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    version: &'a str,
    /// `http://host:port/admin/api/{requested version}/` for `Link` URLs.
    link_base: String,
}

/// The axum handler for everything under `/admin/`.
pub(crate) async fn admin(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((requested, rest)) = split_admin_path(uri.path()) else {
        return ApiError::not_found().response();
    };
    let Some(version) = shared.resolve_version(requested) else {
        return ApiError::not_found().response();
    };
    let mut response = if authorized(&headers, &shared.config.access_token) {
        let now = shared.clock().now();
        let admission = shared.lock().bucket.admit(now);
        let size = shared.config.bucket_size;
        let (mut response, used) = match admission {
            Admission::Admitted { used } => {
                let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
                    .map(|q| q.0)
                    .unwrap_or_default();
                let link_base = match requested {
                    Some(v) => format!("{}/admin/api/{v}/", shared.base_url),
                    None => format!("{}/admin/", shared.base_url),
                };
                let call = Call {
                    shared: &shared,
                    method: &method,
                    segments: rest.split('/').collect(),
                    query,
                    headers: &headers,
                    body: &body,
                    version: &version,
                    link_base,
                };
                (route(&call).unwrap_or_else(|e| e.response()), used)
            }
            Admission::Throttled { used, retry_after } => {
                let message = throttled_message(shared.config.leak_rate);
                let mut r = error_response(StatusCode::TOO_MANY_REQUESTS, &Value::from(message));
                if let Ok(v) = HeaderValue::from_str(&format!("{retry_after:.1}")) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                (r, used)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{used}/{size}")) {
            response.headers_mut().insert(CALL_LIMIT, v);
        }
        response
    } else {
        error_response(StatusCode::UNAUTHORIZED, &Value::from(INVALID_TOKEN))
    };
    if let Ok(v) = HeaderValue::from_str(&version) {
        response.headers_mut().insert(API_VERSION, v);
    }
    response
}

fn id_of(segment: &str) -> Result<u64, ApiError> {
    segment
        .strip_suffix(".json")
        .and_then(|id| id.parse().ok())
        .ok_or_else(ApiError::not_found)
}

fn route(call: &Call<'_>) -> Result<Response, ApiError> {
    let m = call.method;
    match call.segments.as_slice() {
        ["customers.json"] if m == Method::GET => list(call, Resource::Customer),
        ["customers.json"] if m == Method::POST => {
            let c = customers::create(call.shared, &body_json(call, "customer")?)?;
            one(
                call,
                StatusCode::CREATED,
                "customer",
                Resource::Customer,
                customer_doc(&c),
            )
        }
        ["customers", "count.json"] if m == Method::GET => {
            count(call.shared.lock().customers.len())
        }
        ["customers", file] => {
            let id = id_of(file)?;
            match *m {
                Method::GET => {
                    let c = call.shared.lock().customers.get(&id).cloned();
                    let c = c.ok_or_else(ApiError::not_found)?;
                    one(
                        call,
                        StatusCode::OK,
                        "customer",
                        Resource::Customer,
                        customer_doc(&c),
                    )
                }
                Method::PUT => {
                    let c = customers::update(call.shared, id, &body_json(call, "customer")?)?;
                    one(
                        call,
                        StatusCode::OK,
                        "customer",
                        Resource::Customer,
                        customer_doc(&c),
                    )
                }
                Method::DELETE => customers::delete(call.shared, id).map(|()| empty()),
                _ => Err(ApiError::not_found()),
            }
        }
        ["orders.json"] if m == Method::GET => list(call, Resource::Order),
        ["orders.json"] if m == Method::POST => {
            let o = orders::create(call.shared, &body_json(call, "order")?)?;
            let doc = call.shared.lock().order_doc(&o);
            one(call, StatusCode::CREATED, "order", Resource::Order, doc)
        }
        ["orders", "count.json"] if m == Method::GET => count(call.shared.lock().orders.len()),
        ["orders", file] => {
            let id = id_of(file)?;
            match *m {
                Method::GET => {
                    let doc = {
                        let state = call.shared.lock();
                        let o = state.orders.get(&id).ok_or_else(ApiError::not_found)?;
                        state.order_doc(o)
                    };
                    one(call, StatusCode::OK, "order", Resource::Order, doc)
                }
                Method::PUT => {
                    let o = orders::update(call.shared, id, &body_json(call, "order")?)?;
                    let doc = call.shared.lock().order_doc(&o);
                    one(call, StatusCode::OK, "order", Resource::Order, doc)
                }
                Method::DELETE => orders::delete(call.shared, id).map(|()| empty()),
                _ => Err(ApiError::not_found()),
            }
        }
        ["webhooks.json"] if m == Method::GET => list_webhooks(call),
        ["webhooks.json"] if m == Method::POST => {
            let new = subscriptions::parse(&body_json(call, "webhook")?)?;
            let sub = subscriptions::create(call.shared, new, call.version)?;
            Ok(wrap(StatusCode::CREATED, "webhook", Json::of(&sub)))
        }
        ["webhooks", "count.json"] if m == Method::GET => {
            count(call.shared.lock().subscriptions.len())
        }
        ["webhooks", file] => {
            let id = id_of(file)?;
            match *m {
                Method::GET => {
                    let sub = call.shared.lock().subscriptions.get(&id).cloned();
                    let sub = sub.ok_or_else(ApiError::not_found)?;
                    Ok(wrap(StatusCode::OK, "webhook", Json::of(&sub)))
                }
                Method::DELETE => subscriptions::delete(call.shared, id).map(|()| empty()),
                _ => Err(ApiError::not_found()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The request body as JSON; a non-JSON content type or body counts as a missing root.
fn body_json(call: &Call<'_>, root: &str) -> Result<Value, ApiError> {
    let is_json = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(ApiError::missing_root(root));
    }
    serde_json::from_slice(call.body).map_err(|_| ApiError::missing_root(root))
}

fn customer_doc(c: &super::model::Customer) -> Json {
    ShopState::customer_doc(c)
}

fn wrap(status: StatusCode, key: &str, doc: Json) -> Response {
    json_response(status, Json::object(vec![(key, doc)]).to_bytes())
}

fn empty() -> Response {
    json_response(StatusCode::OK, b"{}".to_vec())
}

fn count(n: usize) -> Result<Response, ApiError> {
    let doc = Json::object(vec![("count", Json::from(n as u64))]);
    Ok(json_response(StatusCode::OK, doc.to_bytes()))
}

fn fields_param(call: &Call<'_>) -> Option<Vec<String>> {
    call.query
        .iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.split(',').map(|f| f.trim().to_owned()).collect())
}

/// One resource, with schema switches and the `fields` parameter applied.
fn one(
    call: &Call<'_>,
    status: StatusCode,
    key: &str,
    resource: Resource,
    doc: Json,
) -> Result<Response, ApiError> {
    let mut doc = call.shared.lock().render(resource, doc, false);
    if let Some(fields) = fields_param(call) {
        doc.retain_keys(&fields);
    }
    Ok(wrap(status, key, doc))
}

fn order_open(status: Option<&str>, closed: bool, cancelled: bool) -> bool {
    match status.unwrap_or("open") {
        "any" => true,
        "closed" => closed,
        "cancelled" => cancelled,
        _ => !closed && !cancelled,
    }
}

fn list(call: &Call<'_>, resource: Resource) -> Result<Response, ApiError> {
    let with_status = resource == Resource::Order;
    let offset = call.shared.config.shop_utc_offset;
    let request = ListRequest::parse(&call.query, with_status, offset)?;
    let (key, file) = match resource {
        Resource::Customer => ("customers", "customers.json"),
        Resource::Order => ("orders", "orders.json"),
    };
    let state = call.shared.lock();
    let f: &Filters = &request.filters;
    let ids: Vec<u64> = match resource {
        Resource::Customer => state
            .customers
            .values()
            .filter(|c| f.matches(c.id, c.created_at, c.updated_at))
            .map(|c| c.id)
            .collect(),
        Resource::Order => state
            .orders
            .values()
            .filter(|o| f.matches(o.id, o.created_at, o.updated_at))
            .filter(|o| {
                let (closed, cancelled) = (o.closed_at.is_some(), o.cancelled_at.is_some());
                order_open(f.status.as_deref(), closed, cancelled)
            })
            .map(|o| o.id)
            .collect(),
    };
    let page = request.page(&ids);
    let docs: Vec<Json> = page
        .ids
        .iter()
        .filter_map(|id| match resource {
            Resource::Customer => state.customers.get(id).map(ShopState::customer_doc),
            Resource::Order => state.orders.get(id).map(|o| state.order_doc(o)),
        })
        .map(|doc| {
            let mut doc = state.render(resource, doc, false);
            if let Some(fields) = &request.fields {
                doc.retain_keys(fields);
            }
            doc
        })
        .collect();
    drop(state);
    let mut response = wrap(StatusCode::OK, key, Json::Array(docs));
    let link = request.link_header(&format!("{}{file}", call.link_base), &page);
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, v);
    }
    Ok(response)
}

fn list_webhooks(call: &Call<'_>) -> Result<Response, ApiError> {
    let get = |name: &str| {
        call.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = parse_limit(get("limit"))?;
    let since = get("since_id")
        .map(|raw| raw.trim().parse::<u64>())
        .transpose()
        .map_err(|_| ApiError::bad_param("since_id", "must be an integer"))?;
    let subs: Vec<Json> = call
        .shared
        .lock()
        .subscriptions
        .values()
        .filter(|s| get("topic").is_none_or(|t| t == s.topic))
        .filter(|s| get("address").is_none_or(|a| a == s.address))
        .filter(|s| since.is_none_or(|id| s.id > id))
        .take(limit)
        .map(Json::of)
        .collect();
    Ok(wrap(StatusCode::OK, "webhooks", Json::Array(subs)))
}
