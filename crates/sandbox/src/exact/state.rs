//! The Exact emulator's shared state: configuration, clock, control layer, and one mutex
//! over tokens, data, rate counters and schema switches.
//!
//! The std mutex is only taken in short synchronous blocks and never across an `.await`;
//! a poisoned lock is recovered (the state is plain data, and a test that panicked while
//! holding it should not turn every later request into a second panic).

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::ExactConfig;
use super::oauth::{Rules, Tokens};
use super::rate_limit::RateLimits;
use super::schema::SchemaChange;
use super::store::Store;
use super::values::local_millis;
use crate::control::Control;

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub tokens: Tokens,
    pub store: Store,
    pub limits: RateLimits,
    pub schema: Vec<SchemaChange>,
    /// 429 answers served (minutely and daily).
    pub throttled: usize,
}

/// Shared by every route and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ExactConfig,
    pub control: Control,
    /// `http://127.0.0.1:<port>`, for `__metadata.uri` and `__next`.
    pub base_url: String,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(config: ExactConfig, control: Control, base_url: String) -> Self {
        let store = Store::new(&config.divisions, config.timestamp_base);
        Self {
            config,
            control,
            base_url,
            inner: Mutex::new(Inner {
                tokens: Tokens::default(),
                store,
                limits: RateLimits::default(),
                schema: Vec::new(),
                throttled: 0,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sandbox now, UTC epoch milliseconds (token lifetimes, rate windows).
    pub fn now_ms(&self) -> i64 {
        self.control.clock().now_millis()
    }

    /// Sandbox now as the API's wall-clock date value (`Created`, `Modified`).
    pub fn now_local_ms(&self) -> i64 {
        local_millis(self.control.clock().now())
    }

    /// The division `/api/v1/current/...` means.
    pub fn current_division(&self) -> i32 {
        self.config.divisions.first().copied().unwrap_or_default()
    }

    pub fn rules(&self) -> Rules {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Rules {
            access_ms: ms(self.config.access_token_lifetime),
            code_ms: ms(self.config.authorization_code_lifetime),
            refresh_idle_ms: ms(self.config.refresh_token_idle_lifetime),
            min_refresh_age_ms: ms(self.config.min_refresh_interval),
            revoke_access_on_refresh: self.config.revoke_access_on_refresh,
        }
    }

    /// `{base}/api/v1/{division}/{path}`: the canonical URL of an entity set.
    pub fn set_url(&self, division: i32, path: &str) -> String {
        format!("{}/api/v1/{division}/{path}", self.base_url)
    }
}
