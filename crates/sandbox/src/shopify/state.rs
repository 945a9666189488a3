//! The Shopify emulator's shared state: shop data, subscriptions, bucket, switches and the
//! webhook outbox, plus the two things every change goes through — rendering (schema
//! switches applied) and emitting webhooks.
//!
//! One `std::sync::Mutex` guards the data; it is only held in short synchronous blocks and
//! never across an `.await`. A poisoned lock is recovered: the state is plain data.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use super::ShopifyConfig;
use super::bucket::LeakyBucket;
use super::json::Json;
use super::model::{Customer, CustomerIds, SAMPLE_CUSTOMER_ID};
use super::order::{
    FIRST_ORDER_NUMBER, Order, OrderCustomer, SAMPLE_LINE_ITEM_ID, SAMPLE_ORDER_ID,
};
use super::outbox::{Job, Outbox};
use super::schema::{Resource, SchemaSwitch};
use super::subscriptions::{SAMPLE_WEBHOOK_ID, Subscription};
use super::version;
use crate::clock::Clock;
use crate::control::Control;

/// The emulator's switches, as `GET /_sandbox/shopify/switches` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Switches {
    /// Every webhook's first attempt is sent twice.
    pub duplicates: bool,
    /// Consecutive webhooks of a subscription are swapped.
    pub out_of_order: bool,
    /// Schema switches, applied in order.
    pub schema: Vec<SchemaSwitch>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub customers: BTreeMap<u64, Customer>,
    pub orders: BTreeMap<u64, Order>,
    pub subscriptions: BTreeMap<u64, Subscription>,
    pub customer_ids: CustomerIds,
    pub order_ids: CustomerIds,
    pub line_item_ids: CustomerIds,
    pub webhook_ids: CustomerIds,
    pub next_order_number: u64,
    pub bucket: LeakyBucket,
    pub switches: Switches,
    pub outbox: Outbox,
}

impl State {
    /// Applies the schema switches that match to a rendered resource.
    pub fn render(&self, resource: Resource, mut doc: Json, webhook: bool) -> Json {
        for switch in self
            .switches
            .schema
            .iter()
            .filter(|s| s.applies(resource, webhook))
        {
            switch.apply(&mut doc);
        }
        doc
    }

    pub fn customer_doc(customer: &Customer) -> Json {
        Json::of(customer)
    }

    /// An order with its nested customer as the customer is now.
    pub fn order_doc(&self, order: &Order) -> Json {
        let mut order = order.clone();
        order.customer = order
            .customer
            .as_ref()
            .and_then(|c| self.customers.get(&c.id))
            .map(OrderCustomer::from);
        Json::of(&order)
    }

    /// The live customer with this email, compared case-insensitively.
    pub fn customer_by_email(&self, email: &str) -> Option<&Customer> {
        self.customers
            .values()
            .find(|c| !c.email.is_empty() && c.email.eq_ignore_ascii_case(email))
    }
}

/// Everything the server, the outbox loop and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ShopifyConfig,
    pub control: Control,
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>`, for `Link` URLs.
    pub base_url: String,
    /// Wakes the outbox loop when a webhook is queued or a switch changes.
    pub wake: Notify,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(
        config: ShopifyConfig,
        control: Control,
        http: reqwest::Client,
        base_url: String,
    ) -> Self {
        let state = State {
            customers: BTreeMap::new(),
            orders: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            customer_ids: CustomerIds::starting_at(SAMPLE_CUSTOMER_ID),
            order_ids: CustomerIds::starting_at(SAMPLE_ORDER_ID),
            line_item_ids: CustomerIds::starting_at(SAMPLE_LINE_ITEM_ID),
            webhook_ids: CustomerIds::starting_at(SAMPLE_WEBHOOK_ID),
            next_order_number: FIRST_ORDER_NUMBER,
            bucket: LeakyBucket::new(config.bucket_size, config.leak_rate),
            switches: Switches::default(),
            outbox: Outbox::default(),
        };
        Self {
            config,
            control,
            http,
            base_url,
            wake: Notify::new(),
            state: Mutex::new(state),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn clock(&self) -> &Clock {
        &self.config.clock
    }

    /// Virtual now in the shop's offset, whole seconds (what payloads show is what list
    /// filters compare).
    pub fn shop_now(&self) -> OffsetDateTime {
        let now = self.clock().now().to_offset(self.config.shop_utc_offset);
        now.replace_nanosecond(0).unwrap_or(now)
    }

    /// The version that serves a request for `requested` (see `version.rs`).
    pub fn resolve_version(&self, requested: Option<&str>) -> Option<String> {
        version::resolve(
            requested,
            self.clock().now(),
            self.config.api_versions.as_deref(),
        )
    }

    /// The newest stable version now (what in-process subscriptions pin).
    pub fn newest_version(&self) -> String {
        match self.config.api_versions.as_deref() {
            Some(list) if !list.is_empty() => list.iter().max().cloned().unwrap_or_default(),
            _ => version::stable_versions(self.clock().now())
                .pop()
                .unwrap_or_else(|| "unstable".to_owned()),
        }
    }

    /// Queues `topic` for every subscription to it: one event ID for all, one webhook ID
    /// per subscription, the body rendered per subscription (switches, `fields`).
    pub fn emit(&self, state: &mut State, topic: &str, resource: Resource, doc: &Json) {
        let subs: Vec<Subscription> = state
            .subscriptions
            .values()
            .filter(|s| s.topic == topic)
            .cloned()
            .collect();
        if subs.is_empty() {
            return;
        }
        let now = self.clock().now();
        let event_id = Uuid::new_v4().to_string();
        for sub in subs {
            let mut body = state.render(resource, doc.clone(), true);
            if !sub.fields.is_empty() {
                body.retain_keys(&sub.fields);
            }
            let api_version = self
                .resolve_version(Some(&sub.api_version))
                .unwrap_or_else(|| sub.api_version.clone());
            let job = Job {
                seq: 0,
                webhook_id: Uuid::new_v4().to_string(),
                event_id: event_id.clone(),
                topic: topic.to_owned(),
                subscription_id: sub.id,
                address: sub.address.clone(),
                api_version,
                body: body.to_bytes(),
                triggered_at: now,
                attempts: 0,
                first_due: now,
                due: now,
                send_twice: state.switches.duplicates,
            };
            let out_of_order = state.switches.out_of_order;
            state.outbox.enqueue_new(job, now, out_of_order);
        }
        self.wake.notify_one();
    }
}
