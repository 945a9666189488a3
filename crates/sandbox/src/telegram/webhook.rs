//! Outbound webhook delivery: POSTs each queued Update to the webhook URL and retries
//! failures on the sandbox clock.
//!
//! Contract facts followed (saas-contracts.md §4.5, §4.6; schedule and wording from the
//! open-source Bot API server, tdlib/telegram-bot-api `WebhookActor.cpp`):
//! - A delivery is `POST <url>` with `Content-Type: application/json`, the Update as the
//!   body (`update_id` first), and `X-Telegram-Bot-Api-Secret-Token: <secret_token>` when
//!   one was set. There is no signature; comparing the header is the receiver's job.
//! - Any non-2xx answer, or no answer, is a failure and the update is retried; the real
//!   retry count is unpublished. The emulator follows the server's schedule: the first
//!   retry at once, then after 2, 4, 8, 16 and 32 s, then every 60 s
//!   (`webhook_retry_cap`; the server randomises this cap within 60–120 s, the sandbox
//!   fixes it so tests are deterministic). A `Retry-After` header on the receiver's answer
//!   replaces the step (clamped to 3600 s). An update that would still be undelivered 24 h
//!   after it arrived (`update_retention`) is dropped.
//! - Updates of one chat are delivered in order — the next waits until the previous one
//!   was accepted or dropped — while different chats proceed in parallel, up to
//!   `max_connections` deliveries at once.
//! - `getWebhookInfo.last_error_message` is `Wrong response from the webhook: <code>
//!   <reason>` for a non-2xx answer (server wording); connection failures read
//!   `Connection refused`, `Timeout expired` or `Webhook connection closed` (the
//!   emulator's wording).
//!
//! Test switches (see `TelegramSandbox`): pause delivery, deliver every accepted update N
//! extra times (duplicates), and deliver newest-first one at a time (out of order).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::state::{DeliveryRecord, Shared, update_text};

/// The header carrying `secret_token`.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Longest `Retry-After` honoured, seconds (server constant).
const MAX_RETRY_AFTER: u64 = 3600;

/// Starts the delivery task.
pub(crate) fn spawn(shared: Arc<Shared>, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let next_due = start_due(&shared);
            let wait = async {
                match next_due {
                    Some(at) => {
                        let left = (at - shared.now()).max(0.0);
                        shared.clock.sleep(Duration::from_secs_f64(left)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = shared.wake.notified() => {}
                () = wait => {}
            }
        }
    })
}

#[derive(Hash, PartialEq, Eq)]
enum Lane {
    Chat(i64),
    Own(i64),
}

/// Starts every delivery that is due; returns when the next one falls due, if any (a
/// finished delivery wakes the task too).
fn start_due(shared: &Arc<Shared>) -> Option<f64> {
    let now = shared.now();
    let mut inner = shared.lock();
    inner.updates.expire(now, shared.retention);
    let hook = inner.webhook.clone()?;
    if inner.switches.paused {
        return None;
    }
    let in_flight = inner.updates.pending.iter().filter(|u| u.in_flight).count();
    let mut picks = Vec::new();
    let mut next_due: Option<f64> = None;
    let mut later = |at: f64| next_due = Some(next_due.map_or(at, |n: f64| n.min(at)));
    if inner.switches.out_of_order {
        if in_flight == 0 {
            let ready = inner
                .updates
                .pending
                .iter()
                .filter(|u| u.next_attempt <= now);
            if let Some(u) = ready.max_by_key(|u| u.id) {
                picks.push(u.id);
            } else if let Some(at) = inner
                .updates
                .pending
                .iter()
                .map(|u| u.next_attempt)
                .reduce(f64::min)
            {
                later(at);
            }
        }
    } else {
        let budget = usize::try_from(hook.max_connections)
            .unwrap_or(1)
            .saturating_sub(in_flight);
        let mut lanes = HashSet::new();
        for u in &inner.updates.pending {
            let lane = u.chat_id.map_or(Lane::Own(u.id), Lane::Chat);
            // Only the oldest update of each chat may go.
            if !lanes.insert(lane) || u.in_flight {
                continue;
            }
            if u.next_attempt > now {
                later(u.next_attempt);
            } else if picks.len() < budget {
                picks.push(u.id);
            }
        }
    }
    for id in picks {
        let Some(update) = inner.updates.get_mut(id) else {
            continue;
        };
        update.in_flight = true;
        let attempt = update.fail_count + 1;
        let body = update.body.clone();
        let text = update_text(&shared.outbound(&inner, id, &body));
        let shared = Arc::clone(shared);
        let (url, secret) = (hook.url.clone(), hook.secret_token.clone());
        tokio::spawn(
            async move { deliver(&shared, &url, secret.as_deref(), id, attempt, text).await },
        );
    }
    next_due
}

/// What one POST came to.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: u64,
}

async fn post(shared: &Shared, url: &str, secret: Option<&str>, text: &str) -> Outcome {
    let mut request = shared
        .http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(text.to_owned());
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Outcome {
            status: Some(response.status().as_u16()),
            error: None,
            retry_after: 0,
        },
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(MAX_RETRY_AFTER);
            Outcome {
                status: Some(status.as_u16()),
                error: Some(format!(
                    "Wrong response from the webhook: {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )),
                retry_after,
            }
        }
        Err(e) => Outcome {
            status: None,
            error: Some(
                if e.is_timeout() {
                    "Timeout expired"
                } else if e.is_connect() {
                    "Connection refused"
                } else {
                    "Webhook connection closed"
                }
                .to_owned(),
            ),
            retry_after: 0,
        },
    }
}

fn record(
    shared: &Shared,
    id: i64,
    attempt: u32,
    outcome: &Outcome,
    duplicate: bool,
) -> DeliveryRecord {
    let at = shared.clock.now();
    DeliveryRecord {
        update_id: id,
        attempt,
        at: at.format(&Rfc3339).unwrap_or_default(),
        at_millis: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        status: outcome.status,
        error: outcome.error.clone(),
        duplicate,
    }
}

async fn deliver(
    shared: &Shared,
    url: &str,
    secret: Option<&str>,
    id: i64,
    attempt: u32,
    text: String,
) {
    let started = record(
        shared,
        id,
        attempt,
        &Outcome {
            status: None,
            error: None,
            retry_after: 0,
        },
        false,
    );
    let outcome = post(shared, url, secret, &text).await;
    let duplicates = {
        let mut inner = shared.lock();
        shared.log_delivery(
            &mut inner,
            DeliveryRecord {
                status: outcome.status,
                error: outcome.error.clone(),
                ..started
            },
        );
        match &outcome.error {
            None => {
                inner.updates.remove(id);
                inner.switches.duplicates
            }
            Some(error) => {
                let date = shared.epoch();
                if let Some(hook) = inner.webhook.as_mut() {
                    hook.last_error = Some((date, error.clone()));
                }
                reschedule(shared, &mut inner.updates, id, outcome.retry_after);
                0
            }
        }
    };
    for _ in 0..duplicates {
        let copy = post(shared, url, secret, &text).await;
        let entry = record(shared, id, attempt, &copy, true);
        let mut inner = shared.lock();
        shared.log_delivery(&mut inner, entry);
    }
    shared.wake.notify_one();
}

/// The server's backoff: the first retry at once (or after `Retry-After`), then the step
/// doubles from 1 s up to the cap; drop the update once it would outlive the retention.
fn reschedule(shared: &Shared, updates: &mut super::updates::Updates, id: i64, retry_after: u64) {
    let now = shared.now();
    let Some(u) = updates.get_mut(id) else {
        return;
    };
    u.in_flight = false;
    let mut delay = u.delay;
    let mut wait = retry_after as f64;
    if retry_after == 0 && u.fail_count > 0 {
        delay = (delay * 2.0).min(shared.retry_cap);
        wait = delay;
    }
    if now + wait > u.created + shared.retention {
        updates.remove(id);
        return;
    }
    u.delay = delay;
    u.next_attempt = now + wait;
    u.fail_count += 1;
}
