//! The `demo` and `serve` runs behind the `switchboard-sandbox` binary.
//!
//! `serve` runs the Pipedrive emulator until shutdown. `demo` also sends a steady stream of
//! signed Shopify customer webhooks to a loopback URL: `customers/create` for new
//! customers, `customers/update` for existing ones, and now and then a re-delivery of an
//! earlier webhook byte for byte (same webhook ID, event ID and trigger time), as Shopify
//! does when it retries (saas-contracts.md §1.1, §1.3). Each sent webhook is one log line;
//! a summary is logged every `summary_every`.
//!
//! Secrets never come from the command line: they are read from environment variables
//! whose *names* are configurable ([`secret_from_env`]), and are never logged.

use std::fmt;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::pipedrive::{PipedriveConfig, PipedriveError, PipedriveSandbox};
use crate::shopify::{Delivery, ShopifyWebhooks, WebhookError};

mod generator;
use generator::{Generator, Step};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A secret's environment variable is unset or empty.
    #[error(
        "environment variable {var} is not set; it must hold the {what} (secrets are never passed as flags)"
    )]
    MissingSecret {
        /// The variable's name.
        var: String,
        /// What the secret is for.
        what: &'static str,
    },
    /// The webhook rate is not a positive number of at most 1000 per second.
    #[error("--rate must be greater than 0 and at most 1000 webhooks per second, got {0}")]
    InvalidRate(f64),
    /// The Pipedrive emulator did not start.
    #[error(transparent)]
    Pipedrive(#[from] PipedriveError),
    /// The webhook sender could not be built.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// Reads a secret from the environment variable `var`; `what` names it in the error.
pub fn secret_from_env(var: &str, what: &'static str) -> Result<String, DemoError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(DemoError::MissingSecret {
            var: var.to_owned(),
            what,
        }),
    }
}

/// Everything a demo run needs.
#[derive(Clone)]
pub struct DemoOptions {
    /// The Pipedrive emulator to serve; `None` when another process serves it.
    pub pipedrive: Option<PipedriveConfig>,
    /// Where webhooks go (loopback only).
    pub webhook_url: String,
    /// Webhooks per second.
    pub rate_per_sec: f64,
    /// `X-Shopify-Shop-Domain`.
    pub shop_domain: String,
    /// `X-Shopify-API-Version`.
    pub api_version: String,
    /// The webhook signing secret. Never logged.
    pub shopify_secret: String,
    /// Seed for the customer generator; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// How often to log a summary.
    pub summary_every: Duration,
    /// Stop after this many webhooks (`None`: until shutdown).
    pub max_webhooks: Option<u64>,
}

impl fmt::Debug for DemoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoOptions")
            .field("pipedrive", &self.pipedrive)
            .field("webhook_url", &self.webhook_url)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("shop_domain", &self.shop_domain)
            .field("api_version", &self.api_version)
            .field("shopify_secret", &"***")
            .field("seed", &self.seed)
            .field("summary_every", &self.summary_every)
            .field("max_webhooks", &self.max_webhooks)
            .finish()
    }
}

/// What a demo run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoStats {
    /// Deliveries attempted (creates + updates + re-deliveries).
    pub sent: u64,
    /// `customers/create` deliveries.
    pub creates: u64,
    /// `customers/update` deliveries.
    pub updates: u64,
    /// Re-deliveries of an earlier webhook.
    pub redeliveries: u64,
    /// Answers that were not 2xx.
    pub non_2xx: u64,
    /// Deliveries that got no answer (refused, timed out).
    pub failed: u64,
}

/// Serves the Pipedrive emulator until `shutdown` is cancelled.
pub async fn run_serve(
    config: PipedriveConfig,
    shutdown: CancellationToken,
) -> Result<(), DemoError> {
    let pipedrive = PipedriveSandbox::start(config).await?;
    shutdown.cancelled().await;
    tracing::info!(
        persons = pipedrive.persons().len(),
        requests = pipedrive.request_count(),
        throttled = pipedrive.throttled_count(),
        "Pipedrive emulator stopping."
    );
    pipedrive.shutdown().await;
    Ok(())
}

/// Serves the Pipedrive emulator and streams webhooks until `shutdown` is cancelled (or
/// `max_webhooks` were sent).
pub async fn run_demo(
    options: DemoOptions,
    shutdown: CancellationToken,
) -> Result<DemoStats, DemoError> {
    if !(options.rate_per_sec > 0.0 && options.rate_per_sec <= 1000.0) {
        return Err(DemoError::InvalidRate(options.rate_per_sec));
    }
    let sender = ShopifyWebhooks::new(
        options.webhook_url.clone(),
        options.shopify_secret.as_bytes(),
        options.shop_domain.clone(),
        options.api_version.clone(),
    )?;
    let pipedrive = match options.pipedrive.clone() {
        Some(config) => Some(PipedriveSandbox::start(config).await?),
        None => None,
    };
    tracing::info!(
        pipedrive = ?pipedrive.as_ref().map(PipedriveSandbox::base_url),
        webhook_url = %options.webhook_url,
        rate_per_sec = options.rate_per_sec,
        "Demo started."
    );

    let mut generator = Generator::new(options.seed);
    let mut stats = DemoStats::default();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate_per_sec));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let summary_every = options.summary_every.max(Duration::from_millis(100));
    let mut summaries = tokio::time::interval_at(Instant::now() + summary_every, summary_every);

    while options.max_webhooks.is_none_or(|max| stats.sent < max) {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = summaries.tick() => log_summary(&stats, pipedrive.as_ref()),
            _ = ticks.tick() => send_one(&sender, &mut generator, &mut stats).await,
        }
    }
    log_summary(&stats, pipedrive.as_ref());
    if let Some(pipedrive) = pipedrive {
        pipedrive.shutdown().await;
    }
    Ok(stats)
}

fn log_summary(stats: &DemoStats, pipedrive: Option<&PipedriveSandbox>) {
    tracing::info!(
        sent = stats.sent,
        creates = stats.creates,
        updates = stats.updates,
        redeliveries = stats.redeliveries,
        non_2xx = stats.non_2xx,
        failed = stats.failed,
        pipedrive_persons = pipedrive.map(|p| p.persons().len()),
        pipedrive_requests = pipedrive.map(PipedriveSandbox::request_count),
        pipedrive_throttled = pipedrive.map(PipedriveSandbox::throttled_count),
        "Demo summary."
    );
}

async fn send_one(sender: &ShopifyWebhooks, generator: &mut Generator, stats: &mut DemoStats) {
    let (delivery, kind) = match generator.next_step() {
        Step::Create(customer) => (
            sender.customer_delivery("customers/create", &customer),
            Kind::Create,
        ),
        Step::Update(customer) => (
            sender.customer_delivery("customers/update", &customer),
            Kind::Update,
        ),
        Step::Redeliver(delivery) => (delivery, Kind::Redelivery),
    };
    match kind {
        Kind::Create => stats.creates += 1,
        Kind::Update => stats.updates += 1,
        Kind::Redelivery => stats.redeliveries += 1,
    }
    stats.sent += 1;
    let started = Instant::now();
    let result = sender.deliver(&delivery).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let customer_id = customer_id_of(&delivery);
    let redelivery = kind == Kind::Redelivery;
    match result {
        Ok(status) => {
            if !status.is_success() {
                stats.non_2xx += 1;
            }
            tracing::info!(
                topic = %delivery.topic,
                webhook_id = %delivery.webhook_id,
                event_id = %delivery.event_id,
                customer_id,
                redelivery,
                status = status.as_u16(),
                elapsed_ms,
                "Webhook sent."
            );
        }
        Err(error) => {
            stats.failed += 1;
            tracing::warn!(
                topic = %delivery.topic,
                webhook_id = %delivery.webhook_id,
                event_id = %delivery.event_id,
                customer_id,
                redelivery,
                elapsed_ms,
                error = %match &error {
                    WebhookError::Http(e) => error_chain(e),
                    other => other.to_string(),
                },
                "Webhook delivery failed."
            );
        }
    }
    generator.remember(delivery);
}

/// The error and its sources on one line ("...: connection refused"), since reqwest's
/// own message stops at "error sending request".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn customer_id_of(delivery: &Delivery) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&delivery.body)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Redelivery,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_secret_names_the_variable() {
        let err = secret_from_env("SB_SANDBOX_TEST_SURELY_UNSET_VAR", "Shopify webhook secret")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("SB_SANDBOX_TEST_SURELY_UNSET_VAR")
                && text.contains("Shopify webhook secret")
        );
    }
}
