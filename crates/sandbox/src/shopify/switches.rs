//! The Shopify emulator's switches and inspection, in-process (on `Shared`, wrapped by the
//! handle) and over HTTP under `/_sandbox/shopify/` (routes listed in the module doc of
//! `shopify`). These routes are not part of the emulated API: they bypass auth, the
//! bucket, fault injection and the request log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use serde::Deserialize;
use serde_json::json;

use super::customers::{self, CustomerChange};
use super::errors::ApiError;
use super::outbox::{DeliveryAttempt, RemovedSubscription};
use super::schema::SchemaSwitch;
use super::state::{Shared, Switches};

impl Shared {
    pub fn set_duplicates(&self, on: bool) {
        self.lock().switches.duplicates = on;
    }

    pub fn set_out_of_order(&self, on: bool) {
        let now = self.clock().now();
        let mut state = self.lock();
        state.switches.out_of_order = on;
        if !on {
            state.outbox.release_held(now);
        }
        drop(state);
        self.wake.notify_one();
    }

    pub fn add_schema_switch(&self, switch: SchemaSwitch) -> Result<(), &'static str> {
        switch.validate()?;
        self.lock().switches.schema.push(switch);
        Ok(())
    }

    pub fn clear_schema_switches(&self) {
        self.lock().switches.schema.clear();
    }

    pub fn switches(&self) -> Switches {
        self.lock().switches.clone()
    }

    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.lock().outbox.log().to_vec()
    }

    pub fn removed_subscriptions(&self) -> Vec<RemovedSubscription> {
        self.lock().outbox.removed().to_vec()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        AxumJson(json!({ "error": message })),
    )
        .into_response()
}

/// The `/_sandbox/shopify/` routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_sandbox/shopify/deliveries",
            get(|State(s): State<Arc<Shared>>| async move { AxumJson(s.deliveries()) }),
        )
        .route(
            "/_sandbox/shopify/removed-subscriptions",
            get(|State(s): State<Arc<Shared>>| async move { AxumJson(s.removed_subscriptions()) }),
        )
        .route(
            "/_sandbox/shopify/switches",
            get(|State(s): State<Arc<Shared>>| async move { AxumJson(s.switches()) }),
        )
        .route(
            "/_sandbox/shopify/duplicates",
            post(
                |State(s): State<Arc<Shared>>, AxumJson(b): AxumJson<Enabled>| async move {
                    s.set_duplicates(b.enabled);
                    no_content()
                },
            ),
        )
        .route(
            "/_sandbox/shopify/out-of-order",
            post(
                |State(s): State<Arc<Shared>>, AxumJson(b): AxumJson<Enabled>| async move {
                    s.set_out_of_order(b.enabled);
                    no_content()
                },
            ),
        )
        .route(
            "/_sandbox/shopify/schema",
            post(
                |State(s): State<Arc<Shared>>, AxumJson(b): AxumJson<SchemaSwitch>| async move {
                    match s.add_schema_switch(b) {
                        Ok(()) => no_content(),
                        Err(message) => bad_request(message),
                    }
                },
            )
            .delete(|State(s): State<Arc<Shared>>| async move {
                s.clear_schema_switches();
                no_content()
            }),
        )
        .route("/_sandbox/shopify/trigger/customer", post(trigger_customer))
        .route(
            "/_sandbox/shopify/bucket",
            get(|State(s): State<Arc<Shared>>| async move {
                let now = s.clock().now();
                let used = s.lock().bucket.used(now);
                AxumJson(json!({
                    "used": used,
                    "size": s.config.bucket_size,
                    "leak_per_second": s.config.leak_rate,
                }))
            }),
        )
        .with_state(shared)
}

async fn trigger_customer(
    State(s): State<Arc<Shared>>,
    AxumJson(change): AxumJson<CustomerChange>,
) -> Response {
    match customers::trigger(&s, &change) {
        Ok((customer, topic)) => {
            AxumJson(json!({ "topic": topic, "customer": customer })).into_response()
        }
        Err(ApiError { status, errors }) => {
            (status, AxumJson(json!({ "errors": errors }))).into_response()
        }
    }
}
