//! The `/api/v1/...` routes: `current/Me`, `system/Divisions`, `crm/Accounts`,
//! `salesinvoice/SalesInvoices` (list, get by key, POST, PUT, DELETE), and dispatch to the
//! sync routes in `sync.rs`.
//!
//! Contract facts followed (saas-contracts.md §3.3):
//! - URLs are `{base}/api/v1/{division}/{service}/{Entity}`; the division comes from
//!   `GET /api/v1/current/Me?$select=CurrentDivision`, which answers a one-item `results`
//!   collection (picqer's `Me` takes the first result).
//! - Collections and by-key answers have the OData shapes built in `query.rs`.
//!
//! The Accounts/SalesInvoices operations themselves are in `entity_routes.rs`.
//!
//! Choices: service segments (`crm`, `CRM`) match case-insensitively, as Exact's own
//! examples use both; entity set names match exactly. Any `%XX` in the path is decoded
//! (clients may send `Accounts(guid%27…%27)`).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::entities::{DIVISIONS, EntityDef, ME};
use super::entity_routes::Call;
use super::errors::ApiError;
use super::gate::Ctx;
use super::lexer::parse_literals;
use super::query::{Row, page, parse_options, render};
use super::records::def_of;
use super::schema;
use super::state::Shared;
use super::store::Entity;
use super::sync::{self, SyncSet};
use super::values::Val;

/// Every `/api/v1/{*rest}` call, after the gate.
pub(crate) async fn api_v1(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = match Query::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(_) => {
            return ApiError::bad_request("The query string cannot be parsed.").into_response();
        }
    };
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches("/api/v1/")
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let request_url = format!("{}{}", shared.base_url, uri.path());
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let get_only = |f: &dyn Fn() -> Result<Value, ApiError>| -> Response {
        if method != Method::GET {
            return method_not_allowed();
        }
        f().map_or_else(IntoResponse::into_response, |v| {
            axum::Json(v).into_response()
        })
    };
    match seg.as_slice() {
        ["current", me] if is(me, "Me") => get_only(&|| me_answer(&shared, &params)),
        [_, system, divisions] if is(system, "system") && *divisions == "Divisions" => {
            let set_url = shared.set_url(ctx.division, DIVISIONS.path);
            get_only(&|| {
                collection(
                    &shared,
                    &DIVISIONS,
                    division_rows(&shared),
                    &params,
                    &request_url,
                    Some(set_url.clone()),
                )
            })
        }
        [_, s, service, set] if is(s, "sync") => match SyncSet::find(service, set) {
            Some(which) => {
                get_only(&|| sync::answer(&shared, ctx.division, which, &params, &request_url))
            }
            None => ApiError::not_found().into_response(),
        },
        [_, s, set] if is(s, "sync") && *set == "Deleted" => get_only(&|| {
            sync::answer(
                &shared,
                ctx.division,
                SyncSet::Deleted,
                &params,
                &request_url,
            )
        }),
        [_, service, set] => {
            let entity = if is(service, "crm") && set.starts_with("Accounts") {
                Entity::Account
            } else if is(service, "salesinvoice") && set.starts_with("SalesInvoices") {
                Entity::SalesInvoice
            } else {
                return ApiError::not_found().into_response();
            };
            let key = match parse_key(set, def_of(entity)) {
                Ok(key) => key,
                Err(e) => return e.into_response(),
            };
            let call = Call {
                shared: &shared,
                division: ctx.division,
                entity,
                params: &params,
                request_url: &request_url,
            };
            call.serve(&method, key, &headers, &body)
        }
        _ => ApiError::not_found().into_response(),
    }
}

pub(crate) fn method_not_allowed() -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "Method not allowed.".to_owned(),
    }
    .into_response()
}

/// Decodes `%XX` escapes in a path segment (clients may send `'` as `%27`).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Accounts` → no key; `Accounts(guid'…')` → the key.
fn parse_key(segment: &str, def: &EntityDef) -> Result<Option<Uuid>, ApiError> {
    let Some(rest) = segment.strip_prefix(def.set) else {
        return Err(ApiError::not_found());
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let inner = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')'));
    match inner.and_then(parse_literals).as_deref() {
        Some([Val::Guid(id)]) => Ok(Some(*id)),
        Some(_) => Err(ApiError::bad_request(format!(
            "Bad Request - Error in query syntax: the key of '{}' is a guid'…' literal.",
            def.set
        ))),
        None if inner.is_some() => Err(ApiError::bad_request(
            "Bad Request - Error in query syntax.",
        )),
        None => Err(ApiError::not_found()),
    }
}

/// Renders one collection page as `{"d": {"results": [...], "__next": ...}}`.
pub(crate) fn collection(
    shared: &Shared,
    def: &EntityDef,
    rows: Vec<Row>,
    params: &[(String, String)],
    request_url: &str,
    set_url: Option<String>,
) -> Result<Value, ApiError> {
    let opts = parse_options(
        params,
        def,
        &["$filter", "$select", "$top", "$orderby", "$skiptoken"],
    )
    .map_err(ApiError::bad_request)?;
    let page = page(rows, &opts, def, shared.config.page_size).map_err(ApiError::bad_request)?;
    Ok(envelope(
        shared,
        def,
        &page.rows,
        opts.select.as_deref(),
        set_url,
        super::query::next_link(request_url, &opts, &page),
    ))
}

/// `{"d": {"results": [...]}}` plus `__next` when given; schema switches applied.
pub(crate) fn envelope(
    shared: &Shared,
    def: &EntityDef,
    rows: &[Row],
    select: Option<&[String]>,
    set_url: Option<String>,
    next: Option<String>,
) -> Value {
    let set_url = set_url.unwrap_or_else(|| shared.set_url(shared.current_division(), def.path));
    let changes = shared.lock().schema.clone();
    let results: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut v = render(row, def, select, &set_url);
            schema::apply(&changes, def.set, &mut v);
            v
        })
        .collect();
    let mut d = json!({ "results": results });
    if let Some(next) = next {
        d["__next"] = Value::String(next);
    }
    json!({ "d": d })
}

fn me_answer(shared: &Shared, params: &[(String, String)]) -> Result<Value, ApiError> {
    let opts = parse_options(params, &ME, &["$select"]).map_err(ApiError::bad_request)?;
    let user = Uuid::new_v5(&Uuid::NAMESPACE_OID, shared.config.client_id.as_bytes());
    let row = Row::from([
        ("UserID", Val::Guid(user)),
        ("UserName", Val::Str("sandbox.user@example.com".to_owned())),
        ("FullName", Val::Str("Sandbox User".to_owned())),
        ("Email", Val::Str("sandbox.user@example.com".to_owned())),
        ("LanguageCode", Val::Str("nl-NL".to_owned())),
        (
            "CurrentDivision",
            Val::Int(i64::from(shared.current_division())),
        ),
    ]);
    let url = format!("{}/api/v1/current/Me", shared.base_url);
    Ok(envelope(
        shared,
        &ME,
        &[row],
        opts.select.as_deref(),
        Some(url),
        None,
    ))
}

fn division_rows(shared: &Shared) -> Vec<Row> {
    let inner = shared.lock();
    inner
        .store
        .divisions
        .iter()
        .map(|(code, d)| {
            Row::from([
                ("Code", Val::Int(i64::from(*code))),
                ("Description", Val::Str(d.description.clone())),
                ("DivisionMoveDate", d.move_date.map_or(Val::Null, Val::Date)),
            ])
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entities::ACCOUNTS;
    use super::*;

    #[test]
    fn keys_and_segments() {
        let g = "5d0c6d0f-0000-0000-0000-000000000001";
        assert_eq!(parse_key("Accounts", &ACCOUNTS).unwrap(), None);
        assert_eq!(
            parse_key(&format!("Accounts(guid'{g}')"), &ACCOUNTS).unwrap(),
            Some(g.parse().unwrap())
        );
        assert_eq!(
            parse_key(&format!("Accounts('{g}')"), &ACCOUNTS)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(parse_key("AccountsX", &ACCOUNTS).unwrap_err().status, 404);
        assert_eq!(percent_decode("Accounts(guid%27x%27)"), "Accounts(guid'x')");
    }
}
