//! The background task that sends queued webhooks, one at a time, on the sandbox clock.
//!
//! Contract facts followed (saas-contracts.md §1.1–§1.3): each attempt is an HTTP POST of
//! the raw body with the headers of `webhooks.rs` (HMAC-SHA256 of the raw bytes with the
//! app secret, base64); 1 s to connect and 5 s in total, after which the attempt failed.
//! The 5 s is enforced on the sandbox clock as well as in real time, so a scaled clock
//! keeps the timeout in proportion with the retry schedule; but a receiver always gets at
//! least [`REAL_TIME_FLOOR`] of real time, so a clock running thousands of times faster
//! than real time cannot time out a healthy loopback receiver mid-answer. Redirects are
//! not followed: a 3xx is not a 2xx.
//!
//! Why one at a time: deliveries then leave in a deterministic order (due time, then
//! trigger order), so out-of-order arrival happens only when a test asks for it. A receiver
//! that hangs delays the others by at most the 5 s timeout.

use std::sync::Arc;

use axum::http::StatusCode;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::outbox::{DeliveryAttempt, Job, RemovedSubscription, retry_due};
use super::state::Shared;
use super::webhooks::{Delivery, TOTAL_TIMEOUT, delivery_headers, sign};

/// Least real time an attempt gets before the virtual 5 s timeout may fire.
pub(crate) const REAL_TIME_FLOOR: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs until `cancel` fires.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let now = shared.clock().now();
        let (job, wake) = {
            let mut state = shared.lock();
            (state.outbox.take_due(now), state.outbox.next_wake())
        };
        if let Some(job) = job {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = attempt(&shared, job) => {}
            }
            continue;
        }
        // A permit stored by `notify_one` before this point is not lost: `notified()`
        // completes at once when one is waiting.
        tokio::select! {
            () = cancel.cancelled() => return,
            () = shared.wake.notified() => {}
            () = sleep_until(&shared, wake) => {}
        }
    }
}

async fn sleep_until(shared: &Shared, wake: Option<OffsetDateTime>) {
    match wake {
        Some(at) => shared.clock().sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn attempt(shared: &Shared, mut job: Job) {
    if !shared
        .lock()
        .subscriptions
        .contains_key(&job.subscription_id)
    {
        // Deleted since it was queued: nothing is sent (see outbox.rs).
        return;
    }
    let delivered = send_and_log(shared, &job, false).await;
    if job.send_twice && job.attempts == 0 {
        send_and_log(shared, &job, true).await;
    }
    if delivered {
        return;
    }
    job.attempts += 1;
    job.send_twice = false;
    let mut state = shared.lock();
    match retry_due(&shared.config.retry_delays, job.first_due, job.attempts) {
        Some(due) => {
            // A due time already past is simply taken at once; keeping the scheduled
            // value makes the log show Shopify's schedule, not the loop's lateness.
            job.due = due;
            state.outbox.requeue(job);
        }
        None => {
            let Some(sub) = state.subscriptions.remove(&job.subscription_id) else {
                return;
            };
            let dropped = state.outbox.drop_subscription(sub.id);
            tracing::info!(
                subscription_id = sub.id,
                topic = %sub.topic,
                "Shopify emulator removed a webhook subscription after its retries ran out."
            );
            state.outbox.record_removal(RemovedSubscription {
                id: sub.id,
                topic: sub.topic,
                address: sub.address,
                at: shared.clock().now(),
                dropped_webhooks: dropped,
            });
        }
    }
}

/// Sends one attempt and logs it; true for a 2xx.
async fn send_and_log(shared: &Shared, job: &Job, duplicate: bool) -> bool {
    let at = shared.clock().now();
    let outcome = post(shared, job).await;
    let (status, error) = match outcome {
        Ok(status) => (Some(status.as_u16()), None),
        Err(error) => (None, Some(error)),
    };
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    shared.lock().outbox.record(DeliveryAttempt {
        webhook_id: job.webhook_id.clone(),
        event_id: job.event_id.clone(),
        topic: job.topic.clone(),
        subscription_id: job.subscription_id,
        address: job.address.clone(),
        api_version: job.api_version.clone(),
        attempt: job.attempts,
        duplicate,
        due: job.due,
        at,
        status,
        error,
        delivered,
    });
    delivered
}

async fn post(shared: &Shared, job: &Job) -> Result<StatusCode, String> {
    let delivery = Delivery {
        topic: job.topic.clone(),
        body: job.body.clone(),
        webhook_id: job.webhook_id.clone(),
        event_id: job.event_id.clone(),
        triggered_at: job.triggered_at,
    };
    let signature = sign(shared.config.api_secret.as_bytes(), &job.body);
    let headers = delivery_headers(
        &shared.config.shop_domain,
        &job.api_version,
        &delivery,
        &signature,
    )
    .map_err(|e| e.to_string())?;
    let send = shared
        .http
        .post(&job.address)
        .headers(headers)
        .body(job.body.clone())
        .send();
    let started = tokio::time::Instant::now();
    let virtual_timeout = async {
        shared.clock().sleep(TOTAL_TIMEOUT).await;
        tokio::time::sleep_until(started + REAL_TIME_FLOOR).await;
    };
    tokio::select! {
        result = send => result.map(|r| r.status()).map_err(|e| {
            if e.is_timeout() { "timed out after 5 s".to_owned() } else { e.to_string() }
        }),
        () = virtual_timeout => Err("timed out after 5 s".to_owned()),
    }
}
