//! Poller: APIs without webhooks → `sb.raw.<connection>.<entity>`.
//!
//! Guarantee: at-least-once, never a skipped change. A page's events are acknowledged by
//! Kafka before its cursor is committed to `<prefix>.cursors`; a restart resumes from the
//! committed cursor. Two replicas never poll the same connection at once (see [`leases`]).
//! Polling is paced under the source's limits, and rotating refresh tokens are kept durably
//! (`<prefix>.tokens`) so a restart never loses the newest one.

mod cursors;
mod exact;
pub mod leases;
mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_connectors::Connection;
use switchboard_connectors::exact::api::ExactClient;
use switchboard_connectors::exact::oauth::ExactTokenEndpoint;
use switchboard_connectors::shopify::api::ShopifyClient;
use switchboard_core::avro::AvroCodec;
use switchboard_core::kafka::{Cleanup, TopicSpec};
use switchboard_core::raw::RawPublisher;
use switchboard_core::telemetry::{self, Health};
use switchboard_core::tokens::{TokenManager, TokenStore};
use switchboard_core::topics::Topics;
use switchboard_core::{Config, ErrorClass};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cursors::Cursors;
use crate::exact::ExactPoller;
use crate::leases::Leases;
use crate::reconcile::ShopifyReconciler;

/// A started poller.
pub struct Started {
    /// Completes when every poll loop has stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the poller until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.task.await?
}

/// Prepares topics, cursors and leases, then polls every connection that has a schedule.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let connections = switchboard_connectors::connections(&config)?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let codec = AvroCodec::new(&config.registry)?;
    let publisher = RawPublisher::new(&config, codec.clone(), Duration::from_secs(30))?;
    let cursors = Arc::new(Cursors::new(&config.kafka, publisher.producer().clone()));

    let mut specs = vec![
        cursors.topic_spec(),
        Leases::topic_spec(&config.kafka.topic_prefix),
    ];
    let mut polled = Vec::new();
    let mut reconciled = Vec::new();
    for (name, connection) in &connections {
        if let Connection::Shopify(shop) = connection
            && let Some(reconcile) = &shop.reconcile
        {
            specs.push(TopicSpec::new(
                topics.ingest_dedupe(),
                Cleanup::CompactDelete(Duration::from_secs(config.ingest.dedupe_window_secs)),
            ));
            for entity in &reconcile.entities {
                specs.push(TopicSpec::new(
                    topics.raw(name, entity),
                    Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
                ));
            }
            reconciled.push((name.clone(), shop.clone()));
        }
        let Connection::Exact(exact) = connection else {
            continue;
        };
        if exact.poll.is_none() {
            continue;
        }
        let key = config.secrets_key.as_ref().ok_or_else(|| {
            switchboard_core::config::ConfigError::invalid(
                "secrets_key",
                format!("connection `{name}` rotates refresh tokens, which are stored encrypted: set secrets_key (e.g. ${{env:SB_SECRETS_KEY}} with `openssl rand -base64 32`)"),
            )
        })?;
        let store = TokenStore::new(&config.kafka, key)?;
        specs.push(store.topic_spec());
        for entity in connection.polled_entities() {
            specs.push(TopicSpec::new(
                topics.raw(name, &entity),
                Cleanup::Delete(Duration::from_secs(7 * 24 * 3600)),
            ));
        }
        polled.push((name.clone(), exact.clone(), store));
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs.dedup_by(|a, b| a.name == b.name);

    let (listener, _) = telemetry::bind(config.poller.admin_listen)
        .await
        .with_context(|| format!("bind poller.admin_listen {}", config.poller.admin_listen))?;
    let health = Arc::new(Health::default());
    let admin = tokio::spawn(telemetry::serve(
        listener,
        telemetry::admin_router(health.clone()),
        shutdown.clone(),
    ));

    let task = tokio::spawn(async move {
        let result = async {
            if !switchboard_core::service::prepare(&config.kafka, &specs, &codec, &shutdown).await {
                return Ok(());
            }
            cursors.load(&config.kafka).await?;
            let (leases, membership) = Leases::join(&config.kafka, shutdown.clone())?;
            let mut loops = Vec::new();
            for (name, exact, store) in polled {
                let endpoint = ExactTokenEndpoint::new(&exact.base_url, exact.oauth.clone())?;
                let tokens = Arc::new(
                    TokenManager::new(&name, endpoint, store, exact.oauth.refresh_token.clone())
                        .await?,
                );
                let poller = ExactPoller {
                    client: ExactClient::new(&exact, tokens)?,
                    name,
                    connection: exact,
                    publisher: publisher.clone(),
                    cursors: cursors.clone(),
                };
                loops.push(tokio::spawn(poll_loop(
                    Job::Exact(Box::new(poller)),
                    leases.clone(),
                    shutdown.clone(),
                )));
            }
            for (name, shop) in reconciled {
                let job = ShopifyReconciler {
                    client: ShopifyClient::new(&shop)?,
                    name,
                    connection: shop,
                    publisher: publisher.clone(),
                    cursors: cursors.clone(),
                    kafka: config.kafka.clone(),
                    topics: topics.clone(),
                };
                loops.push(tokio::spawn(poll_loop(
                    Job::Reconcile(Box::new(job)),
                    leases.clone(),
                    shutdown.clone(),
                )));
            }
            health.set_ready(true);
            tracing::info!(connections = loops.len(), "poller ready");
            for l in loops {
                l.await?;
            }
            membership.await?;
            anyhow::Ok(())
        }
        .await;
        health.set_ready(false);
        shutdown.cancel();
        publisher.flush(Duration::from_secs(10));
        admin.await??;
        tracing::info!("poller stopped");
        result
    });
    Ok(Started { task })
}

/// One connection's scheduled work.
enum Job {
    Exact(Box<ExactPoller>),
    Reconcile(Box<ShopifyReconciler>),
}

impl Job {
    fn name(&self) -> &str {
        match self {
            Self::Exact(p) => &p.name,
            Self::Reconcile(r) => &r.name,
        }
    }

    fn every(&self) -> Duration {
        let secs = match self {
            Self::Exact(p) => p.connection.poll.as_ref().map_or(60, |p| p.every_secs),
            Self::Reconcile(r) => r
                .connection
                .reconcile
                .as_ref()
                .map_or(300, |r| r.every_secs),
        };
        Duration::from_secs(secs.max(1))
    }

    async fn cycle(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<usize, switchboard_core::error::ClassifiedError> {
        match self {
            Self::Exact(p) => p.cycle(shutdown).await,
            Self::Reconcile(r) => r.cycle(shutdown).await,
        }
    }
}

/// Polls one connection on its schedule while this replica holds its lease.
async fn poll_loop(poller: Job, leases: Arc<Leases>, shutdown: CancellationToken) {
    let every = poller.every();
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut wait = every;
        if let Some(_lease) = leases.acquire(poller.name()).await {
            match poller.cycle(&shutdown).await {
                Ok(published) => {
                    backoff = Duration::from_secs(1);
                    metrics::gauge!("switchboard_poll_last_success_timestamp_seconds", "connection" => poller.name().to_owned())
                        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
                    tracing::info!(connection = %poller.name(), published, "poll cycle done");
                }
                Err(e) => {
                    metrics::counter!("switchboard_poll_errors_total", "connection" => poller.name().to_owned(), "error_class" => e.class.as_str()).increment(1);
                    if e.class == ErrorClass::Auth {
                        tracing::error!(connection = %poller.name(), error = %e, "poll refused: credentials need attention");
                    } else {
                        tracing::warn!(connection = %poller.name(), error = %e, "poll cycle failed; retrying");
                    }
                    wait = backoff.min(every);
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        } else {
            // Not ours (now): look again soon, a rebalance may hand it over.
            wait = Duration::from_secs(1).min(every);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
