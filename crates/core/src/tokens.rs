//! OAuth access tokens that refresh themselves, with rotating refresh tokens kept durably.
//!
//! Some APIs (Exact Online) issue a new refresh token on every refresh and kill the old one
//! at once. Losing the newest one means a human must authorize again, so the token set is
//! written to the compacted topic `<prefix>.tokens` (encrypted with AES-256-GCM under
//! `secrets_key`) and acknowledged by Kafka *before* the new access token is used. A restart
//! reads it back and goes on with the stored access token while it lasts; the configured
//! refresh token is only the first one.
//!
//! Refreshes happen when the access token is about to expire, never earlier: Exact refuses
//! a refresh within 570 s of the previous one.

use std::future::Future;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::Secret;
use crate::config::KafkaConfig;
use crate::error::{ClassifiedError, ErrorClass};
use crate::kafka::{self, Cleanup, TopicSpec};

/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(20);

/// A token endpoint's answer.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The bearer token.
    pub access_token: Secret,
    /// The refresh token to use next time (the same one if the API does not rotate).
    pub refresh_token: Secret,
    /// Lifetime of the access token.
    pub expires_in: Duration,
}

/// What is kept per connection: the newest refresh token and the access token that came
/// with it. Keeping the access token matters too: after a restart Exact refuses a new
/// refresh for 570 s, so the restarted service must go on with the token it had.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredTokens {
    refresh_token: String,
    access_token: String,
    /// Unix seconds.
    expires_at: i64,
}

/// The system-specific part: exchanging a refresh token for a new token set.
pub trait TokenEndpoint: Send + Sync {
    /// Calls the token endpoint with `refresh_token`.
    fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> impl Future<Output = Result<TokenSet, ClassifiedError>> + Send;
}

/// Where rotated refresh tokens are kept: `<prefix>.tokens`, encrypted, keyed by connection.
#[derive(Clone)]
pub struct TokenStore {
    kafka: KafkaConfig,
    topic: String,
    producer: FutureProducer,
    cipher: Aes256Gcm,
}

impl TokenStore {
    /// A store under `kafka.topic_prefix`, encrypting with `key` (32 bytes, base64).
    pub fn new(kafka: &KafkaConfig, key: &Secret) -> Result<Self, ClassifiedError> {
        let bytes = STANDARD
            .decode(key.expose().trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Data,
                    "secrets_key must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)",
                )
            })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
            ClassifiedError::new(ErrorClass::Data, "secrets_key is not a valid AES-256 key")
        })?;
        Ok(Self {
            kafka: kafka.clone(),
            topic: format!("{}.tokens", kafka.topic_prefix),
            producer: kafka::producer(kafka, Duration::from_secs(30))
                .map_err(|e| kafka::kafka_error("token producer", &e))?,
            cipher,
        })
    }

    /// The topic, compacted (the newest token per connection is all that matters).
    pub fn topic_spec(&self) -> TopicSpec {
        TopicSpec::new(self.topic.clone(), Cleanup::Compact)
    }

    /// Writes the tokens of `connection` and waits for Kafka's acknowledgement.
    pub async fn save(
        &self,
        connection: &str,
        tokens: &StoredTokens,
    ) -> Result<(), ClassifiedError> {
        let plain = serde_json::to_vec(tokens)
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("token encoding: {e}")))?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| ClassifiedError::new(ErrorClass::Data, "token encryption failed"))?;
        let value = [nonce.as_slice(), &sealed].concat();
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(connection)
                    .payload(&value),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map_err(|(e, _)| kafka::kafka_error("save refresh token", &e))?;
        Ok(())
    }

    /// The newest token saved for `connection`, if any.
    pub async fn load(&self, connection: &str) -> Result<Option<StoredTokens>, ClassifiedError> {
        let this = self.clone();
        let connection = connection.to_owned();
        tokio::task::spawn_blocking(move || this.load_blocking(&connection))
            .await
            .map_err(|e| {
                ClassifiedError::new(ErrorClass::Transient, format!("token load task: {e}"))
            })?
    }

    fn load_blocking(&self, connection: &str) -> Result<Option<StoredTokens>, ClassifiedError> {
        let newest = kafka::read_table(&self.kafka, &self.topic, Duration::from_secs(30))?
            .remove(connection);
        let Some(value) = newest else { return Ok(None) };
        if value.len() < 12 {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                "stored token is truncated",
            ));
        }
        let (nonce, sealed) = value.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                ClassifiedError::new(
                    ErrorClass::Auth,
                    "stored token does not decrypt: was secrets_key changed?",
                )
            })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| ClassifiedError::new(ErrorClass::Data, "stored tokens are not readable"))
    }
}

struct Current {
    access_token: Secret,
    expires_at: OffsetDateTime,
}

/// A connection's access token, refreshed on demand, its refresh token rotated durably.
pub struct TokenManager<E> {
    connection: String,
    endpoint: E,
    store: TokenStore,
    state: Mutex<(Option<Current>, Secret)>,
    refused: std::sync::Mutex<Option<Secret>>,
}

impl<E: TokenEndpoint> TokenManager<E> {
    /// Starts from the newest stored refresh token, else from `initial` (the configured one).
    pub async fn new(
        connection: &str,
        endpoint: E,
        store: TokenStore,
        initial: Secret,
    ) -> Result<Self, ClassifiedError> {
        let state = match store.load(connection).await? {
            Some(stored) => {
                let current = OffsetDateTime::from_unix_timestamp(stored.expires_at)
                    .ok()
                    .map(|expires_at| Current {
                        access_token: Secret::from_value(stored.access_token),
                        expires_at,
                    });
                (current, Secret::from_value(stored.refresh_token))
            }
            None => (None, initial),
        };
        Ok(Self {
            connection: connection.to_owned(),
            endpoint,
            store,
            state: Mutex::new(state),
            refused: std::sync::Mutex::new(None),
        })
    }

    /// A valid access token, refreshing (and rotating) first if the current one is about
    /// to expire. Concurrent callers wait for one refresh.
    pub async fn access_token(&self) -> Result<Secret, ClassifiedError> {
        let mut state = self.state.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(current) = &state.0
            && now + REFRESH_MARGIN < current.expires_at
        {
            return Ok(current.access_token.clone());
        }
        // Another replica may have refreshed (and rotated) since we last looked: its tokens
        // are in the store, and our refresh token may be dead already.
        if let Some(stored) = self.store.load(&self.connection).await? {
            let fresh = OffsetDateTime::from_unix_timestamp(stored.expires_at)
                .ok()
                .filter(|expires_at| now + REFRESH_MARGIN < *expires_at && !self.stale(&stored));
            state.1 = Secret::from_value(stored.refresh_token.clone());
            if let Some(expires_at) = fresh {
                let token = Secret::from_value(stored.access_token);
                state.0 = Some(Current {
                    access_token: token.clone(),
                    expires_at,
                });
                return Ok(token);
            }
        }
        let set = self.endpoint.refresh(&state.1).await?;
        // Durable before use: if this write fails, the rotated token must not be relied on.
        let expires_at = now + set.expires_in;
        let stored = StoredTokens {
            refresh_token: set.refresh_token.expose().to_owned(),
            access_token: set.access_token.expose().to_owned(),
            expires_at: expires_at.unix_timestamp(),
        };
        self.store.save(&self.connection, &stored).await?;
        if set.refresh_token != state.1 {
            metrics::counter!("switchboard_token_rotations_total", "connection" => self.connection.clone()).increment(1);
        }
        tracing::info!(connection = %self.connection, expires_in_s = set.expires_in.as_secs(), "access token refreshed");
        let token = set.access_token.clone();
        *state = (
            Some(Current {
                access_token: set.access_token,
                expires_at,
            }),
            set.refresh_token,
        );
        Ok(token)
    }

    /// The target refused `token`: if it is still the current access token, forget it (and
    /// remember it was refused, so the same token is not taken back from the store), so the
    /// next call refreshes. A token another caller has already replaced is left alone:
    /// calls in flight together are refused together, and throwing away the fresh token
    /// would make a second refresh, which Exact refuses as too early.
    pub async fn invalidate(&self, token: &Secret) {
        let mut state = self.state.lock().await;
        if state.0.as_ref().is_some_and(|c| c.access_token == *token)
            && let Some(current) = state.0.take()
        {
            *self
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.access_token);
        }
    }

    /// Whether `stored` holds the access token the target refused last.
    fn stale(&self, stored: &StoredTokens) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|refused| refused.expose() == stored.access_token)
    }
}
