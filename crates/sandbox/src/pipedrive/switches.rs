//! Pipedrive-specific switches under `/_sandbox/pipedrive/`, next to the shared
//! `/_sandbox/` control API. Each route has an in-process twin on
//! [`super::PipedriveSandbox`]; both call the functions here or the same store methods.
//!
//! - `POST /_sandbox/pipedrive/authorize` `{"redirect_uri":"..","scope":".."}` →
//!   `{"code":".."}`: an authorization code, as if the user had consented.
//! - `POST /_sandbox/pipedrive/oauth/expire`: every access token issued so far expires now.
//! - `POST /_sandbox/pipedrive/oauth/revoke` `{"refresh_token":".."}` revokes one (404 when
//!   unknown); `{}` revokes all.
//! - `GET /_sandbox/pipedrive/webhooks`: subscriptions with ban counter, ban end and
//!   removal reason; `GET /_sandbox/pipedrive/deliveries`: the delivery log.
//! - `POST /_sandbox/pipedrive/deliveries` `{"duplicate":true,"out_of_order":true}` turns
//!   duplicate / out-of-order webhook deliveries on or off (either key may be left out).
//! - `GET|POST|DELETE /_sandbox/pipedrive/schema`: list, add (a [`SchemaSwitch`]) or clear
//!   schema switches.
//! - `POST /_sandbox/pipedrive/trigger` `{"entity":"person","action":"change","id":1,
//!   "fields":{"name":"New Name"}}`: a change made "in the web app" (`change_source`
//!   `app`), firing webhooks like any other; `action` defaults to `change`, and `create`
//!   needs no `id`. The body `fields` follow the API's validation.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common::{Mode, Rejection, ok};
use super::events::{Action, ChangeSource, Entity};
use super::schema::SchemaSwitch;
use super::state::Shared;
use super::{deal_model, deals, model, org_model, organizations, persons};

/// A change made as if by a user in the web app (for demos and tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The record type.
    pub entity: Entity,
    /// What to do (default `change`).
    #[serde(default = "change")]
    pub action: Action,
    /// The record, for `change` and `delete`.
    #[serde(default)]
    pub id: Option<u64>,
    /// The fields to set, validated like an API body.
    #[serde(default)]
    pub fields: Value,
}

fn change() -> Action {
    Action::Change
}

impl Trigger {
    /// Changes record `id` of `entity` with `fields`.
    pub fn change(entity: Entity, id: u64, fields: Value) -> Self {
        Self {
            entity,
            action: Action::Change,
            id: Some(id),
            fields,
        }
    }

    /// Creates a record of `entity` from `fields`.
    pub fn create(entity: Entity, fields: Value) -> Self {
        Self {
            entity,
            action: Action::Create,
            id: None,
            fields,
        }
    }

    /// Deletes record `id` of `entity`.
    pub fn delete(entity: Entity, id: u64) -> Self {
        Self {
            entity,
            action: Action::Delete,
            id: Some(id),
            fields: Value::Null,
        }
    }
}

fn to_json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Runs a trigger; answers the record (or `{"id":..}` for a delete).
pub(crate) fn run_trigger(shared: &Shared, trigger: Trigger) -> Result<Value, Rejection> {
    let source = ChangeSource::App;
    let fields = if trigger.fields.is_null() {
        json!({})
    } else {
        trigger.fields
    };
    let id = || {
        trigger
            .id
            .ok_or_else(|| Rejection::bad_request("Validation failed: id: is required"))
    };
    let mode = match trigger.action {
        Action::Create => Mode::Create,
        _ => Mode::Update,
    };
    match (trigger.entity, trigger.action) {
        (entity, Action::Delete) => {
            let id = id()?;
            match entity {
                Entity::Person => persons::delete_person(shared, id, source),
                Entity::Organization => organizations::delete_organization(shared, id, source),
                Entity::Deal => deals::delete_deal(shared, id, source),
            }
            .map(|id| json!({ "id": id }))
        }
        (Entity::Person, action) => {
            let input = model::parse_person_input(&fields, mode)?;
            match action {
                Action::Create => persons::create_person(shared, input, source),
                _ => persons::update_person(shared, id()?, input, source),
            }
            .map(to_json)
        }
        (Entity::Organization, action) => {
            let input = org_model::parse_organization_input(&fields, mode)?;
            match action {
                Action::Create => organizations::create_organization(shared, input, source),
                _ => organizations::update_organization(shared, id()?, input, source),
            }
            .map(to_json)
        }
        (Entity::Deal, action) => {
            let input = deal_model::parse_deal_input(&fields, mode)?;
            match action {
                Action::Create => deals::create_deal(shared, input, source),
                _ => deals::update_deal(shared, id()?, input, source),
            }
            .map(to_json)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    redirect_uri: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryBehaviour {
    #[serde(default)]
    duplicate: Option<bool>,
    #[serde(default)]
    out_of_order: Option<bool>,
}

/// The `/_sandbox/pipedrive/` routes.
pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/pipedrive/authorize", post(authorize))
        .route(
            "/_sandbox/pipedrive/oauth/expire",
            post(|State(s): State<Arc<Shared>>| async move {
                s.oauth.expire_access_tokens(s.now());
                StatusCode::NO_CONTENT
            }),
        )
        .route("/_sandbox/pipedrive/oauth/revoke", post(revoke))
        .route(
            "/_sandbox/pipedrive/webhooks",
            axum::routing::get(
                |State(s): State<Arc<Shared>>| async move { axum::Json(s.hub.states()) },
            ),
        )
        .route(
            "/_sandbox/pipedrive/deliveries",
            axum::routing::get(|State(s): State<Arc<Shared>>| async move {
                axum::Json(s.hub.deliveries())
            })
            .post(deliveries_behaviour),
        )
        .route(
            "/_sandbox/pipedrive/schema",
            axum::routing::get(|State(s): State<Arc<Shared>>| async move {
                axum::Json(s.schema.list())
            })
            .post(add_schema)
            .delete(|State(s): State<Arc<Shared>>| async move {
                s.schema.clear();
                StatusCode::NO_CONTENT
            }),
        )
        .route("/_sandbox/pipedrive/trigger", post(trigger))
        .with_state(shared)
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    axum::Json(body): axum::Json<AuthorizeBody>,
) -> Response {
    let code = s
        .oauth
        .issue_code(&body.redirect_uri, body.scope.as_deref(), s.now());
    axum::Json(json!({ "code": code })).into_response()
}

async fn revoke(State(s): State<Arc<Shared>>, body: Option<axum::Json<RevokeBody>>) -> Response {
    match body.map(|b| b.0).unwrap_or_default().refresh_token {
        Some(token) if !s.oauth.revoke_refresh_token(&token) => {
            Rejection::not_found("Unknown refresh token").into_response()
        }
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => {
            s.oauth.revoke_all_refresh_tokens();
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn deliveries_behaviour(
    State(s): State<Arc<Shared>>,
    axum::Json(body): axum::Json<DeliveryBehaviour>,
) -> StatusCode {
    if let Some(on) = body.duplicate {
        s.hub.set_duplicates(on);
    }
    if let Some(on) = body.out_of_order {
        s.hub.set_out_of_order(on);
    }
    StatusCode::NO_CONTENT
}

async fn add_schema(
    State(s): State<Arc<Shared>>,
    axum::Json(switch): axum::Json<SchemaSwitch>,
) -> Response {
    match s.schema.add(switch) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => Rejection::bad_request(message).into_response(),
    }
}

async fn trigger(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Trigger>) -> Response {
    run_trigger(&s, body).map_or_else(IntoResponse::into_response, ok)
}
