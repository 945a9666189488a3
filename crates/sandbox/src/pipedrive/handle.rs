//! [`PipedriveSandbox`]: the running emulator as tests and the binary hold it — start and
//! stop, what happened (records, creates, requests, deliveries), and the switches.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::deal_model::Deal;
use super::faults::FaultPlan;
use super::model::{ContactValue, Person, split_name};
use super::org_model::Organization;
use super::schema::SchemaSwitch;
use super::state::{Shared, Stored};
use super::switches::{Trigger, run_trigger};
use super::webhooks::{DeliveryRecord, HubSettings, WebhookHub, WebhookState};
use super::{
    PipedriveConfig, PipedriveError, deals, gate, oauth, organizations, persons, schema, switches,
    webhooks,
};
use crate::clock::Clock;
use crate::control::Control;

/// One request the emulator answered, for tests that inspect traffic. Secrets are never
/// recorded: no headers, no bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: Method,
    /// Path and query string.
    pub path_and_query: String,
    /// Status the emulator answered.
    pub status: StatusCode,
    /// Virtual time it arrived, RFC 3339.
    pub at: String,
}

/// A running Pipedrive emulator. Dropping it stops the server; [`shutdown`] also waits.
///
/// [`shutdown`]: PipedriveSandbox::shutdown
#[derive(Debug)]
pub struct PipedriveSandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    faults: Mutex<FaultPlan>,
}

impl PipedriveSandbox {
    /// Binds `config.addr` (loopback only) and serves in a tokio task.
    pub async fn start(config: PipedriveConfig) -> Result<Self, PipedriveError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| PipedriveError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| PipedriveError::Bind {
                addr: config.addr,
                source,
            })?;
        let hub = WebhookHub::new(
            config.clock.clone(),
            HubSettings {
                company_id: config.company_id,
                user_id: config.user_id,
                host: format!("{}.pipedrive.com", config.company_domain),
                timeout: config.webhook_timeout,
            },
        )
        .map_err(PipedriveError::Webhooks)?;
        let control = Control::new(config.clock.clone());
        let shared = Arc::new(Shared::new(
            config,
            control.clone(),
            format!("http://{addr}"),
            hub,
        ));
        let app = app(&shared, &control);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "Pipedrive emulator stopped with an error.");
            }
        });
        tracing::info!(%addr, "Pipedrive emulator listening.");
        Ok(Self {
            shared,
            addr,
            cancel,
            task: Mutex::new(Some(task)),
            faults: Mutex::default(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The company-domain equivalent, e.g. `http://127.0.0.1:41234`; the API lives under
    /// `/api/v2/...` and `/v1/...` below it, OAuth under `/oauth/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared control layer: faults, outages, request log, counters.
    pub fn control(&self) -> &Control {
        &self.shared.control
    }

    /// The emulator's clock (advance or scale it to run time-based rules faster).
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// All live (not deleted) persons, by ID.
    pub fn persons(&self) -> Vec<Person> {
        self.shared.lock().live_persons().cloned().collect()
    }

    /// One person by ID, deleted or not.
    pub fn person(&self, id: u64) -> Option<Person> {
        self.shared.lock().persons.get(&id).map(|s| s.item.clone())
    }

    /// The live person with this email (ASCII case-insensitive), lowest ID first.
    pub fn person_by_email(&self, email: &str) -> Option<Person> {
        self.shared
            .lock()
            .live_persons()
            .find(|p| p.has_email(email))
            .cloned()
    }

    /// All live organizations, by ID.
    pub fn organizations(&self) -> Vec<Organization> {
        self.shared.lock().live_organizations().cloned().collect()
    }

    /// One organization by ID, deleted or not.
    pub fn organization(&self, id: u64) -> Option<Organization> {
        self.shared
            .lock()
            .organizations
            .get(&id)
            .map(|s| s.item.clone())
    }

    /// All live deals, by ID.
    pub fn deals(&self) -> Vec<Deal> {
        self.shared.lock().live_deals().cloned().collect()
    }

    /// One deal by ID, deleted or not.
    pub fn deal(&self, id: u64) -> Option<Deal> {
        self.shared.lock().deals.get(&id).map(|s| s.item.clone())
    }

    /// How many successful creates made a person carrying this email (case-insensitive),
    /// including persons deleted since: the "creates per record" count that proves
    /// exactly-once delivery. Read from [`Control::creates_for`].
    pub fn creates_for_email(&self, email: &str) -> usize {
        self.shared.control.creates_for(&email.to_ascii_lowercase())
    }

    /// How many organizations were created with this name (case-insensitive).
    pub fn creates_for_organization(&self, name: &str) -> usize {
        self.shared
            .control
            .creates_for(&organizations::create_key(name))
    }

    /// How many deals were created with this title.
    pub fn creates_for_deal(&self, title: &str) -> usize {
        self.shared.control.creates_for(&deals::create_key(title))
    }

    /// Persons created through the API (seeded persons excluded).
    pub fn total_creates(&self) -> usize {
        self.shared.lock().total_creates
    }

    /// Every HTTP request received, whatever the answer (the control API's own excluded).
    pub fn request_count(&self) -> usize {
        self.shared.control.counters().requests
    }

    /// How many 429 answers the rate limits served (burst and daily budget).
    pub fn throttled_count(&self) -> usize {
        self.shared.lock().throttled_count
    }

    /// The logged requests, oldest first. No headers or bodies.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .control
            .requests()
            .into_iter()
            .map(|r| RequestRecord {
                method: Method::from_bytes(r.method.as_bytes()).unwrap_or(Method::GET),
                path_and_query: r.path,
                status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
                at: r.at,
            })
            .collect()
    }

    /// Tokens left in today's budget (today on the sandbox clock).
    pub fn daily_budget_remaining(&self) -> u64 {
        let today = self.shared.now().date();
        self.shared.lock().budget.remaining(today)
    }

    /// Makes the next `n` API calls answer `status`, after any failures already queued
    /// here. 500 gets Pipedrive's JSON body, 502–504 an HTML edge page, others the v2
    /// envelope. Built on [`Control`] fault rules, which count every call they see; the
    /// queue boundary is exact for sequential calls.
    pub fn fail_next(&self, n: u32, status: StatusCode) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fail_next(&self.shared.control, n, status);
    }

    /// Delays every later API call by `latency` (replacing an earlier `set_latency`).
    /// [`Control`] cannot remove a single rule, so lowering the latency clears every
    /// fault rule, including ones added directly on the control.
    pub fn set_latency(&self, latency: Duration) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_latency(&self.shared.control, latency);
    }

    /// Stores a person directly, as if it had existed before the test: not counted as a
    /// create, no webhook, searchable at once.
    pub fn seed_person(&self, name: &str, emails: &[&str]) -> Person {
        let now = self.shared.now();
        let now_string = self.shared.now_string();
        let (first_name, last_name) = split_name(name);
        let mut inner = self.shared.lock();
        let person = Person {
            id: inner.allocate_person_id(),
            name: name.to_owned(),
            first_name,
            last_name,
            owner_id: self.shared.config.user_id,
            org_id: None,
            add_time: now_string.clone(),
            update_time: now_string,
            emails: emails
                .iter()
                .enumerate()
                .map(|(i, e)| ContactValue {
                    value: (*e).to_owned(),
                    primary: i == 0,
                    label: "work".to_owned(),
                })
                .collect(),
            phones: Vec::new(),
            is_deleted: false,
            visible_to: 3,
            label_ids: Vec::new(),
            picture_id: None,
            marketing_status: None,
            custom_fields: Default::default(),
        };
        let stored = Stored {
            item: person.clone(),
            searchable_from: now,
        };
        inner.persons.insert(person.id, stored);
        person
    }

    /// Stores an organization directly (not counted, no webhook, searchable at once).
    pub fn seed_organization(&self, name: &str) -> Organization {
        let now = self.shared.now();
        let now_string = self.shared.now_string();
        let mut inner = self.shared.lock();
        let org = Organization {
            id: inner.allocate_organization_id(),
            name: name.to_owned(),
            owner_id: self.shared.config.user_id,
            add_time: now_string.clone(),
            update_time: now_string,
            is_deleted: false,
            visible_to: 3,
            address: None,
            label_ids: Vec::new(),
            custom_fields: Default::default(),
        };
        let stored = Stored {
            item: org.clone(),
            searchable_from: now,
        };
        inner.organizations.insert(org.id, stored);
        org
    }

    /// An authorization code for `redirect_uri`, as if the user had just consented.
    pub fn authorization_code(&self, redirect_uri: &str) -> String {
        self.shared
            .oauth
            .issue_code(redirect_uri, None, self.shared.now())
    }

    /// Every access token issued so far expires now (the next API call with one is a 401).
    pub fn expire_access_tokens(&self) {
        self.shared.oauth.expire_access_tokens(self.shared.now());
    }

    /// Revokes one refresh token; false when it was not live.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        self.shared.oauth.revoke_refresh_token(refresh_token)
    }

    /// Revokes every refresh token.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.oauth.revoke_all_refresh_tokens();
    }

    /// Webhook subscriptions (live and removed) with their delivery bookkeeping.
    pub fn webhooks(&self) -> Vec<WebhookState> {
        self.shared.hub.states()
    }

    /// Every webhook delivery attempt, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared.hub.deliveries()
    }

    /// Sends every webhook first attempt twice (same body and `meta.id`) while on.
    pub fn set_duplicate_deliveries(&self, on: bool) {
        self.shared.hub.set_duplicates(on);
    }

    /// Lets each webhook event be overtaken by the next one while on.
    pub fn set_out_of_order_deliveries(&self, on: bool) {
        self.shared.hub.set_out_of_order(on);
    }

    /// Adds a schema switch (see [`SchemaSwitch`]).
    pub fn add_schema_switch(&self, switch: SchemaSwitch) -> Result<(), PipedriveError> {
        self.shared
            .schema
            .add(switch)
            .map_err(PipedriveError::InvalidSwitch)
    }

    /// Removes every schema switch.
    pub fn clear_schema_switches(&self) {
        self.shared.schema.clear();
    }

    /// Makes a change as a user in the web app would (`change_source: app`); webhooks fire.
    pub fn trigger(&self, trigger: Trigger) -> Result<Value, PipedriveError> {
        run_trigger(&self.shared, trigger).map_err(|r| PipedriveError::Refused {
            status: r.status,
            message: r.message,
        })
    }

    /// Stops accepting connections, lets in-flight requests finish, stops webhook
    /// deliveries, and waits for the server task. Calling it again is a no-op.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.shared.hub.shutdown();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "Pipedrive emulator task ended abnormally.");
        }
    }
}

impl Drop for PipedriveSandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.shared.hub.shutdown();
    }
}

/// The whole app: the gated API (with schema rewriting inside the gate), OAuth, the
/// shared control layer around both, and the Pipedrive switches beside it.
fn app(shared: &Arc<Shared>, control: &Control) -> Router {
    let api = Router::new()
        .merge(persons::routes())
        .merge(organizations::routes())
        .merge(deals::routes())
        .merge(webhooks::routes())
        .fallback(super::common::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            schema::api_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            gate::gate,
        ))
        .merge(oauth::routes())
        .with_state(shared.clone());
    crate::control::instrument(api, control, gate::fault_response)
        .merge(switches::routes(shared.clone()))
}
