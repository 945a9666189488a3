//! The connection's target writer, and the pause while the target refuses its credentials.
//!
//! All lanes of a connection share one writer. When credentials are refused for good (also
//! after a refresh), the first lane to see it pauses the whole connection: no lane calls the
//! target until the configured secrets change, which is checked every second. Then the
//! writer is built anew and every lane resumes. Lanes that were refused at the same moment
//! find the new writer and do not pause a second time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use switchboard_core::config::ConnectionConfig;
use switchboard_core::{Config, Secret};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::status::{State, Status};
use crate::upsert::Target;

/// One connection's target writer and the credentials it was built with.
pub(crate) struct Writer {
    connection: String,
    config: Config,
    target: RwLock<Target>,
    /// Bumped each time the writer is rebuilt with new credentials.
    generation: AtomicU64,
    /// A digest of the credentials in use; held while the connection waits for new ones.
    fingerprint: Mutex<Option<[u8; 32]>>,
    paused: watch::Sender<bool>,
}

impl Writer {
    pub(crate) fn new(config: &Config, connection: &str, target: Target) -> anyhow::Result<Self> {
        let raw = config
            .connections
            .get(connection)
            .ok_or_else(|| anyhow::anyhow!("connection `{connection}` is not defined"))?;
        Ok(Self {
            connection: connection.to_owned(),
            config: config.clone(),
            target: RwLock::new(target),
            generation: AtomicU64::new(0),
            fingerprint: Mutex::new(fingerprint(raw)),
            paused: watch::Sender::new(false),
        })
    }

    /// The writer to use now, and its generation (to hand back to [`Self::pause`]).
    pub(crate) fn current(&self) -> (Target, u64) {
        let target = self
            .target
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (target, self.generation.load(Ordering::SeqCst))
    }

    /// Whether the connection is paused for refused credentials.
    pub(crate) fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Waits while the connection is paused; `false` on shutdown.
    pub(crate) async fn until_resumed(&self, stop: &CancellationToken) -> bool {
        let mut paused = self.paused.subscribe();
        tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            resumed = paused.wait_for(|p| !*p) => resumed.is_ok(),
        }
    }

    /// The writer of `generation` had its credentials refused for good: pauses the
    /// connection (marked in `status`) until they change, unless another lane already saw
    /// them change. Returns `false` on shutdown.
    pub(crate) async fn pause(
        &self,
        generation: u64,
        reason: &str,
        status: &Mutex<Status>,
        stop: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let mut in_use = self.fingerprint.lock().await;
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(true);
        }
        self.paused.send_replace(true);
        let resumed = match status.lock().await.set(State::PausedAuth, reason).await {
            Ok(()) => self.wait_for_new_credentials(&mut in_use, stop).await,
            Err(e) => Err(e.into()),
        };
        self.paused.send_replace(false);
        resumed
    }

    /// Checks every second whether the configured credentials changed, and if so builds
    /// the target anew. Returns `false` on shutdown.
    async fn wait_for_new_credentials(
        &self,
        in_use: &mut Option<[u8; 32]>,
        stop: &CancellationToken,
    ) -> anyhow::Result<bool> {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let now = self
                .config
                .connections
                .get(&self.connection)
                .and_then(fingerprint);
            if now.is_some() && now != *in_use {
                // Typed the way start-up types it (with what connections need from the rest
                // of the configuration, such as an Exact token store).
                let connections = switchboard_connectors::connections(&self.config)?;
                let connection = connections.get(&self.connection).ok_or_else(|| {
                    anyhow::anyhow!("connection `{}` is not defined", self.connection)
                })?;
                let target = crate::upsert::target(&self.connection, connection)?;
                *self.target.write().unwrap_or_else(PoisonError::into_inner) = target;
                self.generation.fetch_add(1, Ordering::SeqCst);
                *in_use = now;
                tracing::info!(connection = %self.connection, "credentials changed; resuming");
                return Ok(true);
            }
        }
    }
}

/// A digest of the connection's resolved secrets, to notice new credentials.
fn fingerprint(raw: &ConnectionConfig) -> Option<[u8; 32]> {
    fn walk(value: &serde_json::Value, hasher: &mut Sha256) -> Option<()> {
        match value {
            serde_json::Value::String(s) if s.starts_with("${") => {
                hasher.update(Secret::resolve(s).ok()?.expose().as_bytes());
                hasher.update([0]);
            }
            serde_json::Value::Object(map) => {
                for v in map.values() {
                    walk(v, hasher)?;
                }
            }
            serde_json::Value::Array(list) => {
                for v in list {
                    walk(v, hasher)?;
                }
            }
            _ => {}
        }
        Some(())
    }
    let mut hasher = Sha256::new();
    for value in raw.settings.values() {
        walk(value, &mut hasher)?;
    }
    Some(hasher.finalize().into())
}
