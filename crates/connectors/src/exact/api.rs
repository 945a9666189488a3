//! Calls to Exact's REST and sync API, paced to stay under its limits.
//!
//! Pacing: a local token bucket (governor) at `calls_per_minute` with no burst, so calls are
//! spread and a minute never holds more than the limit; corrected live from the
//! `X-RateLimit-Minutely-*` and daily headers (resets in epoch ms): at zero remaining, no call
//! goes out before the reset. A 429 waits for the reset and retries, never counted as a
//! failure. A 401 drops the access token and retries once with a fresh one.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::tokens::TokenManager;
use tokio::sync::Mutex;

use super::model::{Envelope, Page};
use super::oauth::ExactTokenEndpoint;
use super::{ExactConnection, SyncEntity};
use crate::http::{check, network_error, send};

/// Longest wait for a rate-limit reset before giving up the call as transient.
const MAX_RESET_WAIT: Duration = Duration::from_secs(65);

/// A client for one Exact division.
pub struct ExactClient {
    http: reqwest::Client,
    base: String,
    division: u64,
    tokens: Arc<TokenManager<ExactTokenEndpoint>>,
    limiter: DefaultDirectRateLimiter,
    not_before: Mutex<Option<tokio::time::Instant>>,
    /// The server's minute windows mapped onto local time.
    pub(super) windows: crate::pace::WindowClock,
}

impl ExactClient {
    /// A client paced at the connection's `calls_per_minute`.
    pub fn new(
        connection: &ExactConnection,
        tokens: Arc<TokenManager<ExactTokenEndpoint>>,
    ) -> Result<Self, ClassifiedError> {
        let per_minute =
            NonZeroU32::new(connection.calls_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(NonZeroU32::MIN);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(connection.timeout_ms))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            base: connection.base_url.trim_end_matches('/').to_owned(),
            division: connection.division,
            tokens,
            limiter: RateLimiter::direct(quota),
            not_before: Mutex::new(None),
            windows: crate::pace::WindowClock::default(),
        })
    }

    pub(super) fn tokens(&self) -> &TokenManager<ExactTokenEndpoint> {
        &self.tokens
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    pub(super) fn division(&self) -> u64 {
        self.division
    }

    /// New and changed rows of `entity` with `Timestamp` above `after`.
    pub async fn sync_page(
        &self,
        entity: &SyncEntity,
        after: i64,
    ) -> Result<Page, ClassifiedError> {
        let url = format!(
            "{}/api/v1/{}/{}?$filter=Timestamp gt {after}L&$select={}",
            self.base, self.division, entity.path, entity.select
        );
        self.get(&url).await
    }

    /// Deletions with `Timestamp` above `after`.
    pub async fn deleted_page(&self, after: i64) -> Result<Page, ClassifiedError> {
        let url = format!(
            "{}/api/v1/{}/sync/Deleted?$filter=Timestamp gt {after}L&$select=EntityKey,EntityType,Timestamp",
            self.base, self.division
        );
        self.get(&url).await
    }

    /// The page at a `__next` URL, which must point at this connection's API.
    pub async fn next_page(&self, url: &str) -> Result<Page, ClassifiedError> {
        if !url.starts_with(&format!("{}/api/v1/{}/", self.base, self.division)) {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                "__next points outside the connection's API",
            ));
        }
        self.get(url).await
    }

    async fn get(&self, url: &str) -> Result<Page, ClassifiedError> {
        let mut refreshed = false;
        let mut throttled = 0;
        loop {
            self.pace().await;
            let token = self.tokens.access_token().await?;
            let answer = send(
                self.http
                    .get(url)
                    .bearer_auth(token.expose())
                    .header("accept", "application/json"),
            )
            .await
            .map_err(|e| network_error("exact GET", &e))?;
            self.note_limits(&answer.headers, answer.status.as_u16() == 429)
                .await;
            match answer.status.as_u16() {
                429 if throttled < 3 => {
                    throttled += 1;
                    metrics::counter!("switchboard_poll_throttled_total", "system" => "exact")
                        .increment(1);
                    continue;
                }
                401 if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate(&token).await;
                    continue;
                }
                _ => {}
            }
            let envelope: Envelope = check("exact GET", answer)?.json("exact GET")?;
            return Ok(envelope.d);
        }
    }

    pub(super) async fn pace(&self) {
        self.limiter.until_ready().await;
        let wait = *self.not_before.lock().await;
        if let Some(at) = wait {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Reads the rate-limit headers; at zero remaining (or on a 429) holds calls until the
    /// reset they announce.
    pub(super) async fn note_limits(&self, headers: &HeaderMap, throttled: bool) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let exhausted = |prefix: &str| {
            throttled || number(&format!("{prefix}-Remaining")).is_some_and(|r| r <= 0)
        };
        if let Some(reset_ms) = number("X-RateLimit-Minutely-Reset") {
            self.windows.observe(reset_ms);
        }
        let mut reset_at = None;
        for prefix in ["X-RateLimit-Minutely", "X-RateLimit"] {
            if exhausted(prefix)
                && let Some(reset_ms) = number(&format!("{prefix}-Reset"))
            {
                // Through the learned server clock: resets are the server's epoch ms,
                // and its clock may be skewed or (the sandbox's) scaled.
                let wait = self
                    .windows
                    .until(reset_ms, crate::http::now_millis())
                    .min(MAX_RESET_WAIT);
                reset_at = Some(tokio::time::Instant::now() + wait);
            }
        }
        *self.not_before.lock().await = reset_at;
    }
}
