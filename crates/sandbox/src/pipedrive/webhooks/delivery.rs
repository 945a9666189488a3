//! Webhook v2 deliveries: payloads, HTTP Basic auth, the retry schedule, the ban system,
//! removal of failing webhooks, and the delivery log tests read.
//!
//! Contract facts followed (saas-contracts.md §2.1, §2.3, §2.4; "Guide for Webhooks v2",
//! "Webhooks for apps"):
//! - A delivery is a JSON POST of `{"meta":..,"data":..,"previous":..}` with `meta` fields
//!   `action, entity, entity_id` (string)`, id` (event UUID)`, correlation_id, company_id,
//!   user_id, webhook_id, webhook_owner_id` (strings)`, is_bulk_edit, timestamp` (ISO with
//!   milliseconds)`, type` (`general`)`, version` (`"2.0"`)`, change_source, attempt`
//!   (1–4)`, host, permitted_user_ids` (strings).
//! - Auth is HTTP Basic with the subscription's `http_auth_user`/`http_auth_password`, on
//!   every request; there is no signature.
//! - Success is any 2xx; the timeout is 10 s. After a failed first attempt there are 3 more
//!   attempts, after 3, 30 and 150 s. The subscription URL must not redirect, so a 3xx is
//!   a failure.
//! - Ban system: each failed *first* attempt adds 1 to a counter (failed retries do not);
//!   at 10 the webhook is banned for 30 min and events during the ban are lost; the counter
//!   then restarts at 0. A webhook with no successful delivery for 3 days is deleted.
//!
//! Emulator choices (the reference is silent): each delay is waited after the previous
//! attempt failed; a success does not reset the ban counter (stricter); retries that fall
//! due during a ban are lost too (stricter); the timeout is real time (it bounds real I/O)
//! while every schedule runs on the sandbox clock. Each webhook has its own queue, so first
//! attempts leave in event order unless the out-of-order switch is on; with the duplicate
//! switch, every first attempt is sent twice (same body, same `meta.id`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{MAX_WEBHOOKS_PER_USER, NewWebhook, Webhook, WebhookState};
use crate::clock::Clock;
use crate::pipedrive::common::{Rejection, format_time_millis};
use crate::pipedrive::events::Event;
use crate::pipedrive::schema::SchemaSwitch;

use super::payload::{
    Attempt, DeliveryRecord, HubSettings, Job, Sent, payload, push_log, with_attempt,
};

/// Waits before attempts 2, 3 and 4 (§2.4).
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(30),
    Duration::from_secs(150),
];
/// Failed first attempts that start a ban.
pub const BAN_THRESHOLD: u32 = 10;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(30 * 60);
/// A webhook without a successful delivery for this long is deleted.
pub const REMOVE_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// With the out-of-order switch on, how long (virtual) an event waits for a later one to
/// overtake it.
pub const OUT_OF_ORDER_HOLD: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Sub {
    webhook: Webhook,
    failed_first_attempts: u32,
    banned_until: Option<OffsetDateTime>,
    failing_since: Option<OffsetDateTime>,
    queue: mpsc::UnboundedSender<Job>,
}

impl Sub {
    fn state(&self) -> WebhookState {
        let rfc = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        WebhookState {
            webhook: self.webhook.clone(),
            failed_first_attempts: self.failed_first_attempts,
            banned_until: self.banned_until.map(rfc),
            failing_since: self.failing_since.map(rfc),
        }
    }
}

#[derive(Debug, Default)]
struct HubState {
    subs: BTreeMap<u64, Sub>,
    removed: Vec<WebhookState>,
    next_id: u64,
    log: VecDeque<DeliveryRecord>,
    duplicates: bool,
    out_of_order: bool,
}

#[derive(Debug)]
struct HubInner {
    clock: Clock,
    client: reqwest::Client,
    settings: HubSettings,
    runtime: Handle,
    cancel: CancellationToken,
    state: Mutex<HubState>,
}

/// Subscriptions and their delivery workers; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct WebhookHub(Arc<HubInner>);

/// Where and how one attempt is sent.
struct Target {
    url: String,
    auth: Option<(String, String)>,
}

impl WebhookHub {
    /// A hub on `clock`; must be created inside a tokio runtime (its workers run there).
    pub fn new(clock: Clock, settings: HubSettings) -> Result<Self, String> {
        let runtime = Handle::try_current().map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self(Arc::new(HubInner {
            clock,
            client,
            settings,
            runtime,
            cancel: CancellationToken::new(),
            state: Mutex::new(HubState {
                next_id: 1,
                ..HubState::default()
            }),
        })))
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops every worker and pending retry.
    pub fn shutdown(&self) {
        self.0.cancel.cancel();
    }

    /// Adds a subscription and starts its worker.
    pub fn add(&self, new: NewWebhook) -> Result<Webhook, Rejection> {
        let user_id = new.user_id.unwrap_or(self.0.settings.user_id);
        let mut state = self.state();
        let owned = state
            .subs
            .values()
            .filter(|s| s.webhook.user_id == user_id)
            .count();
        if owned >= MAX_WEBHOOKS_PER_USER {
            return Err(Rejection::bad_request(format!(
                "You have reached the maximum number of webhooks ({MAX_WEBHOOKS_PER_USER}) for this user"
            )));
        }
        let id = state.next_id;
        state.next_id += 1;
        let webhook = Webhook {
            id,
            company_id: self.0.settings.company_id,
            owner_id: self.0.settings.user_id,
            user_id,
            event_action: new.event_action,
            event_object: new.event_object,
            subscription_url: new.subscription_url,
            version: "2.0".to_owned(),
            is_active: 1,
            add_time: format_time_millis(self.0.clock.now()),
            remove_time: None,
            kind: "general".to_owned(),
            http_auth_user: new.http_auth_user,
            http_auth_password: new.http_auth_password,
            remove_reason: None,
            last_delivery_time: None,
            last_http_status: None,
            admin_id: self.0.settings.user_id,
            name: new.name,
        };
        let (queue, rx) = mpsc::unbounded_channel();
        state.subs.insert(
            id,
            Sub {
                webhook: webhook.clone(),
                failed_first_attempts: 0,
                banned_until: None,
                failing_since: None,
                queue,
            },
        );
        let hub = self.clone();
        self.0
            .runtime
            .spawn(async move { hub.run_worker(id, rx).await });
        Ok(webhook)
    }

    /// The live subscriptions.
    pub fn list(&self) -> Vec<Webhook> {
        self.state()
            .subs
            .values()
            .map(|s| s.webhook.clone())
            .collect()
    }

    /// Live and removed subscriptions with their delivery bookkeeping.
    pub fn states(&self) -> Vec<WebhookState> {
        let state = self.state();
        let mut all: Vec<WebhookState> = state.subs.values().map(Sub::state).collect();
        all.extend(state.removed.iter().cloned());
        all
    }

    /// Removes a subscription (its queued events are dropped); false if it did not exist.
    pub fn remove(&self, id: u64, reason: &str) -> bool {
        let now = self.0.clock.now();
        let mut state = self.state();
        let Some(sub) = state.subs.remove(&id) else {
            return false;
        };
        let mut record = sub.state();
        record.webhook.is_active = 0;
        record.webhook.remove_time = Some(format_time_millis(now));
        record.webhook.remove_reason = Some(reason.to_owned());
        state.removed.push(record);
        true
    }

    /// The delivery log, oldest first (up to 10,000 attempts).
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.state().log.iter().cloned().collect()
    }

    /// Sends every first attempt twice from now on (or stops doing so).
    pub fn set_duplicates(&self, on: bool) {
        self.state().duplicates = on;
    }

    /// Lets each event be overtaken by the next one from now on (or stops doing so).
    pub fn set_out_of_order(&self, on: bool) {
        self.state().out_of_order = on;
    }

    /// Queues `event` for every subscription whose action and object match.
    pub fn publish(&self, event: Event, switches: &[SchemaSwitch]) {
        let state = self.state();
        for sub in state.subs.values() {
            let w = &sub.webhook;
            let action_ok = w.event_action == "*" || w.event_action == event.action.as_str();
            let object_ok = w.event_object == "*" || w.event_object == event.entity.as_str();
            if action_ok && object_ok {
                let job = Job {
                    event_id: event.id.to_string(),
                    action: event.action.as_str().to_owned(),
                    entity: event.entity.as_str().to_owned(),
                    entity_id: event.entity_id.to_string(),
                    body: payload(&event, w, &self.0.settings, switches),
                };
                // A closed queue means the worker stopped (shutdown): nothing to deliver to.
                let _ = sub.queue.send(job);
            }
        }
    }

    async fn run_worker(self, id: u64, mut rx: mpsc::UnboundedReceiver<Job>) {
        let cancel = self.0.cancel.clone();
        loop {
            let job = tokio::select! {
                _ = cancel.cancelled() => return,
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            };
            let out_of_order = self.state().out_of_order;
            if out_of_order {
                // Hold this event until a later one arrives (or the hold ends); the later
                // one goes first.
                let later = tokio::select! {
                    _ = cancel.cancelled() => return,
                    later = rx.recv() => later,
                    _ = self.0.clock.sleep(OUT_OF_ORDER_HOLD) => None,
                };
                if let Some(later) = later {
                    self.first_attempt(id, later).await;
                }
            }
            self.first_attempt(id, job).await;
        }
    }

    /// The URL and credentials of a live, unbanned subscription; logs a lost attempt when
    /// it is banned.
    fn target(&self, id: u64, job: &Job, attempt: u8) -> Option<Target> {
        let now = self.0.clock.now();
        let mut state = self.state();
        let sub = state.subs.get(&id)?;
        if sub.banned_until.is_some_and(|until| now < until) {
            let entry = Attempt {
                webhook_id: id,
                job,
                attempt,
                duplicate: false,
                at: now,
            };
            let body = with_attempt(&job.body, attempt);
            push_log(&mut state.log, entry, Sent::Lost, body);
            return None;
        }
        let w = &sub.webhook;
        let auth = w
            .http_auth_user
            .clone()
            .map(|user| (user, w.http_auth_password.clone().unwrap_or_default()));
        Some(Target {
            url: w.subscription_url.clone(),
            auth,
        })
    }

    async fn first_attempt(&self, id: u64, job: Job) {
        let Some(target) = self.target(id, &job, 1) else {
            return;
        };
        let body = with_attempt(&job.body, 1);
        let sent = self.send(&target, &body).await;
        let ok = matches!(sent, Sent::Delivered(_));
        self.record(id, &job, 1, false, sent, body.clone());
        if self.state().duplicates {
            let again = self.send(&target, &body).await;
            self.record(id, &job, 1, true, again, body);
        }
        if ok {
            self.succeeded(id);
        } else if self.failed(id, true) {
            let hub = self.clone();
            self.0
                .runtime
                .spawn(async move { hub.retry(id, job).await });
        }
    }

    async fn retry(self, id: u64, job: Job) {
        for (delay, attempt) in RETRY_DELAYS.into_iter().zip(2u8..) {
            tokio::select! {
                _ = self.0.cancel.cancelled() => return,
                _ = self.0.clock.sleep(delay) => {}
            }
            let Some(target) = self.target(id, &job, attempt) else {
                return;
            };
            let body = with_attempt(&job.body, attempt);
            let sent = self.send(&target, &body).await;
            let ok = matches!(sent, Sent::Delivered(_));
            self.record(id, &job, attempt, false, sent, body);
            if ok {
                self.succeeded(id);
                return;
            }
            if !self.failed(id, false) {
                return;
            }
        }
    }

    async fn send(&self, target: &Target, body: &Value) -> Sent {
        let mut request = self.0.client.post(&target.url).json(body);
        if let Some((user, password)) = &target.auth {
            request = request.basic_auth(user, Some(password));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                Sent::Delivered(response.status().as_u16())
            }
            Ok(response) => {
                let status = response.status().as_u16();
                Sent::Failed(Some(status), format!("receiver answered {status}"))
            }
            Err(error) => Sent::Failed(None, error.to_string()),
        }
    }

    fn record(&self, id: u64, job: &Job, attempt: u8, duplicate: bool, sent: Sent, body: Value) {
        let now = self.0.clock.now();
        let mut state = self.state();
        if let Some(sub) = state.subs.get_mut(&id) {
            sub.webhook.last_delivery_time = Some(format_time_millis(now));
            sub.webhook.last_http_status = sent.status();
        }
        let entry = Attempt {
            webhook_id: id,
            job,
            attempt,
            duplicate,
            at: now,
        };
        push_log(&mut state.log, entry, sent, body);
    }

    fn succeeded(&self, id: u64) {
        if let Some(sub) = self.state().subs.get_mut(&id) {
            sub.failing_since = None;
        }
    }

    /// Counts a failure; returns false when the webhook is gone (removed now or before).
    fn failed(&self, id: u64, first: bool) -> bool {
        let now = self.0.clock.now();
        let remove = {
            let mut state = self.state();
            let Some(sub) = state.subs.get_mut(&id) else {
                return false;
            };
            if first {
                sub.failed_first_attempts += 1;
                if sub.failed_first_attempts >= BAN_THRESHOLD {
                    sub.banned_until = Some(now + BAN_DURATION);
                    sub.failed_first_attempts = 0;
                    tracing::info!(
                        webhook_id = id,
                        "Pipedrive emulator banned a webhook for 30 minutes."
                    );
                }
            }
            let since = *sub.failing_since.get_or_insert(now);
            now - since >= REMOVE_AFTER
        };
        if remove {
            self.remove(id, "No successful delivery for 3 days");
            return false;
        }
        true
    }
}
