//! `crm/Accounts` and `salesinvoice/SalesInvoices`: list, get by key, POST, PUT, DELETE.
//!
//! Contract facts followed (saas-contracts.md §3.2–§3.3):
//! - By key: `Accounts(guid'…')` answers `{"d": {...}}` without `results`.
//! - After POST the record's properties are **null** unless the request sends
//!   `Prefer: return=representation` (Exact "Tips and Tricks": "the entity will contain all
//!   properties with the NULL value"). Strict reading: the key is null too; only
//!   `__metadata.uri` and the `Location` header identify the new record.
//! - Mandatory filtering: collection GETs of Accounts must carry a `$filter` on one of a
//!   listed set of properties, else 400 "This endpoint has mandatory filtering applied…"
//!   (picqer/exact-php-client issue #591; §3.2 says single and bulk endpoints that have a
//!   sync API must be filtered, so SalesInvoices get the same rule, on any property).
//!
//! Choices: POST answers 201, PUT and DELETE 204 with no body (the OData v2/v3 norm that
//! picqer's `parseResponse` handles); PUT merges the properties sent. A body needs
//! `Content-Type: application/json` (else 415). Successful API creates are counted with
//! `Control::count_create` under the record's natural key (see `records::create_key`).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::{collection, envelope, method_not_allowed};
use super::entities::EntityDef;
use super::errors::ApiError;
use super::filter::{Expr, Operand};
use super::query::{Row, parse_options, render};
use super::records::{CreateOptions, create, create_key, def_of, update};
use super::schema;
use super::state::Shared;
use super::store::Entity;
use super::values::Val;

/// Account properties that satisfy mandatory filtering: the emulated ones among those
/// picqer #591 quotes from the real error message.
const ACCOUNT_FILTER_FIELDS: &[&str] = &[
    "City",
    "Code",
    "Country",
    "Created",
    "Email",
    "EndDate",
    "ID",
    "IsSupplier",
    "Modified",
    "Name",
    "Phone",
    "StartDate",
    "Status",
];

/// One Accounts/SalesInvoices call.
pub(crate) struct Call<'a> {
    pub shared: &'a Shared,
    pub division: i32,
    pub entity: Entity,
    pub params: &'a [(String, String)],
    /// The request URL without query, for `__next`.
    pub request_url: &'a str,
}

impl Call<'_> {
    pub fn serve(
        &self,
        method: &Method,
        key: Option<Uuid>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        let result = match (method.as_str(), key) {
            ("GET", None) => self.list().map(|v| axum::Json(v).into_response()),
            ("GET", Some(id)) => self.get_one(id).map(|v| axum::Json(v).into_response()),
            ("POST", None) => self.post(headers, body),
            ("PUT", Some(id)) => json_body(headers, body).and_then(|v| {
                let now = self.shared.now_local_ms();
                update(
                    &mut self.shared.lock().store,
                    self.division,
                    self.entity,
                    id,
                    &v,
                    now,
                )?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }),
            ("DELETE", Some(id)) => {
                if self
                    .shared
                    .lock()
                    .store
                    .delete(self.division, self.entity, id)
                {
                    Ok(StatusCode::NO_CONTENT.into_response())
                } else {
                    Err(ApiError::not_found())
                }
            }
            _ => return method_not_allowed(),
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }

    fn def(&self) -> &'static EntityDef {
        def_of(self.entity)
    }

    fn set_url(&self) -> String {
        self.shared.set_url(self.division, self.def().path)
    }

    fn list(&self) -> Result<Value, ApiError> {
        if self.shared.config.mandatory_filtering {
            self.check_mandatory_filter()?;
        }
        let rows = self
            .shared
            .lock()
            .store
            .rows(self.division, self.entity, false);
        collection(
            self.shared,
            self.def(),
            rows,
            self.params,
            self.request_url,
            Some(self.set_url()),
        )
    }

    fn check_mandatory_filter(&self) -> Result<(), ApiError> {
        let def = self.def();
        let allowed: Vec<&str> = match self.entity {
            Entity::Account => ACCOUNT_FILTER_FIELDS.to_vec(),
            Entity::SalesInvoice => def.fields.iter().map(|(f, _)| *f).collect(),
        };
        let filter = self
            .params
            .iter()
            .find(|(k, _)| k == "$filter")
            .map(|(_, v)| v.as_str());
        let parsed = filter
            .map(|f| super::filter::parse(f, def))
            .transpose()
            .map_err(ApiError::bad_request)?;
        if parsed.is_some_and(|expr| uses_any(&expr, &allowed)) {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "This endpoint has mandatory filtering applied. A GET request for this endpoint must have a $filter parameter with one of the following fields in the url:{}.",
            allowed.join(",")
        )))
    }

    fn get_one(&self, id: Uuid) -> Result<Value, ApiError> {
        let def = self.def();
        let opts = parse_options(self.params, def, &["$select"]).map_err(ApiError::bad_request)?;
        let row = self
            .shared
            .lock()
            .store
            .get(self.division, self.entity, id)
            .map(|r| r.fields.clone())
            .ok_or_else(ApiError::not_found)?;
        let enveloped = envelope(
            self.shared,
            def,
            &[row],
            opts.select.as_deref(),
            Some(self.set_url()),
            None,
        );
        Ok(json!({ "d": enveloped["d"]["results"][0].clone() }))
    }

    fn post(&self, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
        let value = json_body(headers, body)?;
        let def = self.def();
        let now = self.shared.now_local_ms();
        let (id, row) = {
            let mut inner = self.shared.lock();
            let required = schema::required_fields(&inner.schema, def.set);
            let options = CreateOptions {
                now_ms: now,
                required: &required,
                id: None,
            };
            let id = create(
                &mut inner.store,
                self.division,
                self.entity,
                &value,
                &options,
            )?;
            let row = inner
                .store
                .get(self.division, self.entity, id)
                .map(|r| r.fields.clone())
                .unwrap_or_default();
            (id, row)
        };
        self.shared
            .control
            .count_create(&create_key(self.entity, &row));
        let represent = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("return=representation"));
        let set_url = self.set_url();
        let entity = if represent {
            envelope(self.shared, def, &[row], None, Some(set_url.clone()), None)["d"]["results"][0]
                .clone()
        } else {
            let key_only = Row::from([(def.key, Val::Guid(id))]);
            let mut v = render(&key_only, def, None, &set_url);
            v[def.key] = Value::Null;
            v
        };
        let location = entity["__metadata"]["uri"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut response =
            (StatusCode::CREATED, axum::Json(json!({ "d": entity }))).into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    }
}

fn uses_any(expr: &Expr, fields: &[&str]) -> bool {
    let named = |o: &Operand| match o {
        Operand::Field(f, _) | Operand::Trim(f) => fields.contains(&f.as_str()),
        Operand::Lit(..) => false,
    };
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => uses_any(a, fields) || uses_any(b, fields),
        Expr::Cmp(_, l, r) => named(l) || named(r),
    }
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json.".to_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Error processing request stream. The JSON is not valid: {e}"
        ))
    })
}
