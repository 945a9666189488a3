//! Test switches, in-process (methods used by [`super::ExactSandbox`]) and over HTTP under
//! `/_sandbox/exact/`. Every route takes an optional `?division=<n>` (default: the
//! current division) where a division applies.
//!
//! - `GET|POST /_sandbox/exact/authorize` → `{"code": "…"}`: a fresh authorization code, as
//!   if the user had consented (for clients that cannot follow the browser redirect).
//! - `POST /_sandbox/exact/expire-tokens` → 204: every access token is expired now (and
//!   the 570 s rule no longer blocks a refresh).
//! - `POST /_sandbox/exact/revoke` `{"refresh_token": "…"}` (or `{}` for all) →
//!   `{"revoked": n}`: refresh tokens stop working (400 `invalid_grant`).
//! - `GET|POST|DELETE /_sandbox/exact/schema`: list, add (a `SchemaChange` as JSON, e.g.
//!   `{"change":"rename_field","entity":"Accounts","from":"Name","to":"AccountName"}`),
//!   clear the schema switches.
//! - `POST /_sandbox/exact/accounts` (an account body; with `"ID"` of an existing account
//!   it updates) → the stored account; `DELETE /_sandbox/exact/accounts/{id}` → 204/404;
//!   `POST /_sandbox/exact/accounts/generate` `{"count": 5000}` → `{"created": n}`.
//! - `POST /_sandbox/exact/sales-invoices`, `DELETE /_sandbox/exact/sales-invoices/{id}`:
//!   the same for invoices (key `"InvoiceID"`).
//! - `GET /_sandbox/exact/changes` → the change log (every insert/update/delete with its
//!   Timestamp).
//! - `POST /_sandbox/exact/division-move` → 204: the division moves to a new database; its
//!   timestamps restart lower and `DivisionMoveDate` is set.
//! - `GET /_sandbox/exact/rate-limits` → `{"daily_remaining": n, "minutely_remaining": n,
//!   "throttled": n}`.
//!
//! Changes made here are "a user editing in Exact": they move Timestamps and fill the
//! change log like API writes, but are not counted as API creates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::entities::pad_code;
use super::errors::ApiError;
use super::query::{Row, render};
use super::records::{CreateOptions, create, def_of, update};
use super::schema::SchemaChange;
use super::state::Shared;
use super::store::{Entity, Record};
use super::values::Val;

impl Shared {
    /// A fresh authorization code for the registered redirect URI.
    pub fn issue_code(&self) -> String {
        let now = self.now_ms();
        self.lock()
            .tokens
            .issue_code(&self.config.redirect_uri, now)
    }

    /// Creates or (when the body's key names an existing record) updates a record.
    pub fn upsert(&self, division: i32, entity: Entity, fields: &Value) -> Result<Uuid, ApiError> {
        let def = def_of(entity);
        let key = fields
            .get(def.key)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        let now = self.now_local_ms();
        let mut inner = self.lock();
        if !inner.store.divisions.contains_key(&division) {
            return Err(ApiError::not_found());
        }
        match key {
            Some(id) if inner.store.get(division, entity, id).is_some() => {
                update(&mut inner.store, division, entity, id, fields, now)?;
                Ok(id)
            }
            id => create(
                &mut inner.store,
                division,
                entity,
                fields,
                &CreateOptions {
                    now_ms: now,
                    required: &[],
                    id,
                },
            ),
        }
    }

    /// Deletes a record (logged in `sync/Deleted`).
    pub fn remove(&self, division: i32, entity: Entity, id: Uuid) -> bool {
        self.lock().store.delete(division, entity, id)
    }

    /// Adds `n` accounts with consecutive codes, fast (no per-record validation scan).
    pub fn generate_accounts(&self, division: i32, n: usize) -> Vec<Uuid> {
        let now = self.now_local_ms();
        let mut inner = self.lock();
        let Some(d) = inner.store.divisions.get(&division) else {
            return Vec::new();
        };
        let first = d
            .accounts
            .values()
            .filter_map(|r| {
                r.fields
                    .get("Code")
                    .and_then(Val::as_str)?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        (first..first + n as u64)
            .map(|code| {
                let id = Uuid::new_v4();
                let row = Row::from([
                    ("ID", Val::Guid(id)),
                    (
                        "Code",
                        Val::Str(pad_code(&code.to_string()).unwrap_or_default()),
                    ),
                    ("Name", Val::Str(format!("Generated Account {code}"))),
                    ("Email", Val::Str(format!("account{code}@example.com"))),
                    ("City", Val::Str("Amsterdam".to_owned())),
                    ("Country", Val::Str("NL".to_owned())),
                    ("Status", Val::Str("C".to_owned())),
                    ("IsSupplier", Val::Bool(false)),
                    ("Division", Val::Int(i64::from(division))),
                    ("Created", Val::Date(now)),
                    ("Modified", Val::Date(now)),
                ]);
                inner
                    .store
                    .insert(division, Entity::Account, id, row, Vec::new());
                id
            })
            .collect()
    }

    /// One record as the REST API renders it (no schema switches), plus its `Timestamp`
    /// (and, for invoices, the posted lines).
    pub fn inspect(&self, division: i32, entity: Entity, id: Uuid) -> Option<Value> {
        let inner = self.lock();
        let record = inner.store.get(division, entity, id)?;
        Some(self.render_record(division, entity, record))
    }

    /// Every record of a kind, in key order.
    pub fn inspect_all(&self, division: i32, entity: Entity) -> Vec<Value> {
        let inner = self.lock();
        let Some(d) = inner.store.divisions.get(&division) else {
            return Vec::new();
        };
        d.records(entity)
            .values()
            .map(|r| self.render_record(division, entity, r))
            .collect()
    }

    /// Inspection shows the posted invoice lines in place of the deferred link.
    fn render_record(&self, division: i32, entity: Entity, record: &Record) -> Value {
        let def = def_of(entity);
        let mut v = render(&record.fields, def, None, &self.set_url(division, def.path));
        v["Timestamp"] = Value::from(record.timestamp);
        if entity == Entity::SalesInvoice {
            v["SalesInvoiceLines"] = Value::Array(record.lines.clone());
        }
        v
    }
}

/// The `/_sandbox/exact/` router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/exact/authorize", get(authorize).post(authorize))
        .route("/_sandbox/exact/expire-tokens", post(expire_tokens))
        .route("/_sandbox/exact/revoke", post(revoke))
        .route(
            "/_sandbox/exact/schema",
            get(schema_list).post(schema_add).delete(schema_clear),
        )
        .route("/_sandbox/exact/accounts", post(upsert_account))
        .route("/_sandbox/exact/accounts/generate", post(generate))
        .route("/_sandbox/exact/accounts/{id}", delete(delete_account))
        .route("/_sandbox/exact/sales-invoices", post(upsert_invoice))
        .route(
            "/_sandbox/exact/sales-invoices/{id}",
            delete(delete_invoice),
        )
        .route("/_sandbox/exact/changes", get(changes))
        .route("/_sandbox/exact/division-move", post(division_move))
        .route("/_sandbox/exact/rate-limits", get(rate_limits))
        .with_state(shared)
}

type Params = Query<HashMap<String, String>>;

fn division(shared: &Shared, params: &HashMap<String, String>) -> i32 {
    params
        .get("division")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| shared.current_division())
}

async fn authorize(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "code": shared.issue_code() })).into_response()
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> StatusCode {
    let (now, rules) = (shared.now_ms(), shared.rules());
    shared.lock().tokens.expire_access_tokens(now, &rules);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    #[serde(default)]
    refresh_token: Option<String>,
}

async fn revoke(State(shared): State<Arc<Shared>>, Json(body): Json<Revoke>) -> Response {
    let revoked = shared
        .lock()
        .tokens
        .revoke_refresh(body.refresh_token.as_deref());
    Json(json!({ "revoked": revoked })).into_response()
}

async fn schema_list(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().schema.clone()).into_response()
}

async fn schema_add(
    State(shared): State<Arc<Shared>>,
    Json(change): Json<SchemaChange>,
) -> StatusCode {
    shared.lock().schema.push(change);
    StatusCode::NO_CONTENT
}

async fn schema_clear(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().schema.clear();
    StatusCode::NO_CONTENT
}

fn upsert_answer(shared: &Shared, division: i32, entity: Entity, body: &Value) -> Response {
    match shared.upsert(division, entity, body) {
        Ok(id) => Json(shared.inspect(division, entity, id)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn upsert_account(
    State(shared): State<Arc<Shared>>,
    Query(p): Params,
    Json(body): Json<Value>,
) -> Response {
    upsert_answer(&shared, division(&shared, &p), Entity::Account, &body)
}

async fn upsert_invoice(
    State(shared): State<Arc<Shared>>,
    Query(p): Params,
    Json(body): Json<Value>,
) -> Response {
    upsert_answer(&shared, division(&shared, &p), Entity::SalesInvoice, &body)
}

fn delete_answer(shared: &Shared, division: i32, entity: Entity, id: &str) -> StatusCode {
    match Uuid::parse_str(id) {
        Ok(id) if shared.remove(division, entity, id) => StatusCode::NO_CONTENT,
        _ => StatusCode::NOT_FOUND,
    }
}

async fn delete_account(
    State(shared): State<Arc<Shared>>,
    Query(p): Params,
    Path(id): Path<String>,
) -> StatusCode {
    delete_answer(&shared, division(&shared, &p), Entity::Account, &id)
}

async fn delete_invoice(
    State(shared): State<Arc<Shared>>,
    Query(p): Params,
    Path(id): Path<String>,
) -> StatusCode {
    delete_answer(&shared, division(&shared, &p), Entity::SalesInvoice, &id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    count: usize,
}

async fn generate(
    State(shared): State<Arc<Shared>>,
    Query(p): Params,
    Json(body): Json<Generate>,
) -> Response {
    let created = shared
        .generate_accounts(division(&shared, &p), body.count.min(1_000_000))
        .len();
    Json(json!({ "created": created })).into_response()
}

async fn changes(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().store.changes.clone()).into_response()
}

async fn division_move(State(shared): State<Arc<Shared>>, Query(p): Params) -> StatusCode {
    let (d, now) = (division(&shared, &p), shared.now_local_ms());
    if shared.lock().store.move_division(d, now) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn rate_limits(State(shared): State<Arc<Shared>>, Query(p): Params) -> Response {
    let d = division(&shared, &p);
    let now = shared.now_ms();
    let config = &shared.config;
    let inner = shared.lock();
    let (daily, minutely) = inner.limits.remaining(
        &config.client_id,
        d,
        now,
        config.minutely_limit,
        config.daily_limit,
    );
    Json(json!({"daily_remaining": daily, "minutely_remaining": minutely, "throttled": inner.throttled})).into_response()
}
