//! Shopify emulation: the Admin REST API for customers, orders and webhook subscriptions,
//! with the REST leaky bucket, outbound webhooks with Shopify's retry schedule, and
//! switches for duplicate, out-of-order and drifted deliveries; plus [`ShopifyWebhooks`],
//! a standalone sender of signed webhooks.
//!
//! Follows saas-contracts.md §1: §1.1–§1.3 (deliveries, headers, HMAC, timeouts, retries:
//! `webhooks`, `outbox`, `dispatch`), §1.4 (payload shapes: `model`, `order`), §1.5
//! (access-token auth and the leaky bucket: `rest`, `bucket`), §1.7 (versions and fall
//! forward: `version`). Each submodule names its facts and the stricter choices it makes.
//! All time — bucket leak, retry schedule, timestamps, version calendar — is read from the
//! sandbox [`Clock`], so a 4-hour retry window runs in seconds on a scaled clock.
//!
//! Admin API (under `/admin/api/{version}/`, or `/admin/` without a version):
//! `customers.json` (GET list, POST), `customers/{id}.json` (GET, PUT, DELETE),
//! `customers/count.json`; the same for `orders`; `webhooks.json` (GET, POST),
//! `webhooks/{id}.json` (GET, DELETE), `webhooks/count.json`. Injected faults, outages and
//! the request log of [`Control`] apply to all of them (`/_sandbox/faults` etc.).
//!
//! Sandbox routes (`/_sandbox/shopify/…`, no auth, not logged), each with an in-process
//! twin on [`ShopifySandbox`]:
//! - `GET deliveries`: the delivery log ([`DeliveryAttempt`]s with virtual times);
//!   `GET removed-subscriptions`: subscriptions deleted after exhausted retries.
//! - `POST duplicates {"enabled": true}`: send every webhook twice (same webhook and event
//!   IDs); `POST out-of-order {"enabled": true}`: swap consecutive webhooks.
//! - `POST schema` with a [`SchemaSwitch`] (`{"rename":{"from":"email","to":"email_address"}}`,
//!   `{"add":{"field":"x","value":1}}`, `{"retype":{"field":"id","to":"string"}}`, optional
//!   `"resource"` and `"scope"`); `DELETE schema` clears them; `GET switches` shows all.
//! - `POST trigger/customer` with a [`CustomerChange`] (`{"email": …, "first_name": …}`):
//!   update the customer with that email (or create one) and fire its webhook.
//! - `GET bucket`: the leaky bucket's level.

mod bucket;
mod config;
mod customers;
mod dispatch;
mod errors;
mod input;
mod json;
mod listing;
mod model;
mod order;
mod orders;
mod outbox;
mod rest;
mod schema;
mod state;
mod subscriptions;
mod switches;
mod version;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use axum::serve::ListenerExt as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{RestPlan, ShopifyConfig};
pub use customers::CustomerChange;
pub use errors::{INVALID_TOKEN, ShopifyError, fault_body, throttled_message};
pub use model::{Customer, CustomerIds, SAMPLE_CUSTOMER_ID, customer_payload, format_shop_time};
pub use order::{LineItem, Order, OrderCustomer, SAMPLE_LINE_ITEM_ID, SAMPLE_ORDER_ID};
pub use outbox::{
    DEFAULT_RETRY_DELAYS, DeliveryAttempt, OUT_OF_ORDER_MAX_HOLD, RemovedSubscription,
};
pub use schema::{AddField, JsonType, Rename, Resource, Retype, SchemaSwitch, Scope};
pub use state::Switches;
pub use subscriptions::{KNOWN_TOPICS, SAMPLE_WEBHOOK_ID, Subscription};
pub use version::stable_versions;
pub use webhooks::{CONNECT_TIMEOUT, Delivery, ShopifyWebhooks, TOTAL_TIMEOUT, WebhookError, sign};

use crate::clock::Clock;
use crate::control::{Control, instrument};
use state::Shared;

/// A running Shopify emulator. Dropping it stops the server and the webhook task;
/// [`shutdown`](Self::shutdown) also waits for them.
#[derive(Debug)]
pub struct ShopifySandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ShopifySandbox {
    /// Binds `config.addr` (loopback only), serves the API and runs the webhook outbox.
    pub async fn start(config: ShopifyConfig) -> Result<Self, ShopifyError> {
        config.check()?;
        let bind_err = |source| ShopifyError::Bind {
            addr: config.addr,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        // Shopify's delivery timeouts (§1.3); redirects are not followed (a 3xx fails).
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let control = Control::new(config.clock.clone());
        let shared = Arc::new(Shared::new(
            config,
            control.clone(),
            http,
            format!("http://{addr}"),
        ));
        let api = Router::new()
            .route("/admin/{*rest}", any(rest::admin))
            .fallback(|| async { fault_body(axum::http::StatusCode::NOT_FOUND) })
            .with_state(shared.clone());
        let app = instrument(api, &control, fault_body).merge(switches::router(shared.clone()));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to each
        // keep-alive request (the head and the body go out as two small writes).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "Could not set TCP_NODELAY.");
            }
        });
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "Shopify emulator stopped with an error.");
            }
        });
        let outbox = tokio::spawn(dispatch::run(shared.clone(), cancel.clone()));
        tracing::info!(%addr, "Shopify emulator listening.");
        Ok(Self {
            shared,
            addr,
            cancel,
            tasks: Mutex::new(vec![server, outbox]),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shop's URL equivalent, e.g. `http://127.0.0.1:41234`; the API lives under
    /// `/admin/api/{version}/...` below it, as on `https://{shop}.myshopify.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{base_url}/admin/api/{version}/{path}`, e.g. `api_url("2026-01", "customers.json")`.
    pub fn api_url(&self, version: &str, path: &str) -> String {
        format!("{}/admin/api/{version}/{path}", self.base_url())
    }

    /// The shop domain deliveries name.
    pub fn shop_domain(&self) -> &str {
        &self.shared.config.shop_domain
    }

    /// The sandbox clock (advance it, scale it).
    pub fn clock(&self) -> &Clock {
        self.shared.clock()
    }

    /// Faults, outages, request log and counters of the API.
    pub fn control(&self) -> &Control {
        &self.shared.control
    }

    /// Stable versions served now, oldest first (the oldest is where others fall forward).
    pub fn api_versions(&self) -> Vec<String> {
        match &self.shared.config.api_versions {
            Some(list) if !list.is_empty() => {
                let mut list = list.clone();
                list.sort();
                list
            }
            _ => stable_versions(self.clock().now()),
        }
    }

    /// All customers, by ID.
    pub fn customers(&self) -> Vec<Customer> {
        self.shared.lock().customers.values().cloned().collect()
    }

    /// One customer by ID.
    pub fn customer(&self, id: u64) -> Option<Customer> {
        self.shared.lock().customers.get(&id).cloned()
    }

    /// The customer with this email (case-insensitive).
    pub fn customer_by_email(&self, email: &str) -> Option<Customer> {
        self.shared.lock().customer_by_email(email).cloned()
    }

    /// All orders, by ID (nested customers as stored at the last write).
    pub fn orders(&self) -> Vec<Order> {
        self.shared.lock().orders.values().cloned().collect()
    }

    /// Live webhook subscriptions, by ID.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.shared.lock().subscriptions.values().cloned().collect()
    }

    /// Subscribes `address` (loopback) to `topic`, as `POST /webhooks.json` with the newest
    /// stable version would.
    pub fn subscribe(&self, topic: &str, address: &str) -> Result<Subscription, ShopifyError> {
        let new = subscriptions::NewSubscription {
            topic: topic.to_owned(),
            address: address.to_owned(),
            format: "json".to_owned(),
            fields: Vec::new(),
        };
        let version = self.shared.newest_version();
        subscriptions::create(&self.shared, new, &version).map_err(|e| e.into_shopify_error())
    }

    /// Deletes a subscription (its queued webhooks are dropped).
    pub fn unsubscribe(&self, id: u64) -> Result<(), ShopifyError> {
        subscriptions::delete(&self.shared, id).map_err(|e| e.into_shopify_error())
    }

    /// Updates the customer with `change.email`, or creates one, and fires
    /// `customers/update` or `customers/create` (returned with the customer).
    pub fn trigger_customer_change(
        &self,
        change: &CustomerChange,
    ) -> Result<(Customer, &'static str), ShopifyError> {
        customers::trigger(&self.shared, change).map_err(|e| e.into_shopify_error())
    }

    /// Every delivery attempt so far, in the order they were made.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.shared.deliveries()
    }

    /// Waits (real time, at most `timeout`) until at least `n` attempts are logged, and
    /// returns the log as it is then.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<DeliveryAttempt> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let log = self.deliveries();
            if log.len() >= n || tokio::time::Instant::now() >= until {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Webhooks queued, waiting for a retry, or held by the out-of-order switch.
    pub fn pending_deliveries(&self) -> usize {
        self.shared.lock().outbox.pending()
    }

    /// Subscriptions deleted because a webhook exhausted its retries.
    pub fn removed_subscriptions(&self) -> Vec<RemovedSubscription> {
        self.shared.removed_subscriptions()
    }

    /// Sends every webhook's first attempt twice from now on (same IDs, same bytes).
    pub fn set_duplicates(&self, on: bool) {
        self.shared.set_duplicates(on);
    }

    /// Swaps consecutive webhooks of each subscription from now on; off releases any held.
    pub fn set_out_of_order(&self, on: bool) {
        self.shared.set_out_of_order(on);
    }

    /// Adds a schema switch (refused if it names no or several changes).
    pub fn add_schema_switch(&self, switch: SchemaSwitch) -> Result<(), ShopifyError> {
        self.shared
            .add_schema_switch(switch)
            .map_err(ShopifyError::InvalidConfig)
    }

    /// Removes every schema switch.
    pub fn clear_schema_switches(&self) {
        self.shared.clear_schema_switches();
    }

    /// The switches as they are.
    pub fn switches(&self) -> Switches {
        self.shared.switches()
    }

    /// Marbles in the REST bucket now.
    pub fn bucket_used(&self) -> u32 {
        let now = self.clock().now();
        self.shared.lock().bucket.used(now)
    }

    /// Stops the server and the webhook task and waits for both. Idempotent.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "Shopify emulator task ended abnormally.");
            }
        }
    }
}

impl Drop for ShopifySandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
