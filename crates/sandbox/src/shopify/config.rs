//! The Shopify emulator's configuration: defaults from the real contract (Standard-plan
//! bucket, Shopify's retry schedule, the sample shop's offset and currency), every field
//! public for overrides.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use time::UtcOffset;

use super::errors::ShopifyError;
use super::outbox::DEFAULT_RETRY_DELAYS;
use crate::clock::Clock;

/// A REST rate-limit plan (§1.5: bucket size and leak rate per app and store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestPlan {
    /// Basic/Standard: 40 marbles, 2 per second.
    Standard,
    /// Advanced: 80, 4 per second (from a staff forum reply only, §5).
    Advanced,
    /// Plus: 400, 20 per second.
    Plus,
}

impl RestPlan {
    /// `(bucket size, leak per second)`.
    pub fn bucket(self) -> (u32, f64) {
        match self {
            Self::Standard => (40, 2.0),
            Self::Advanced => (80, 4.0),
            Self::Plus => (400, 20.0),
        }
    }
}

/// How the emulator behaves. Build with [`ShopifyConfig::new`] and override fields:
/// `ShopifyConfig { clock, ..ShopifyConfig::new("shpat_test") }`.
#[derive(Clone)]
pub struct ShopifyConfig {
    /// The access token accepted in `X-Shopify-Access-Token`. Never logged.
    pub access_token: String,
    /// The app's client secret (API secret key) that signs webhooks. Never logged.
    pub api_secret: String,
    /// `X-Shopify-Shop-Domain` of deliveries.
    pub shop_domain: String,
    /// The shop's UTC offset, used in every timestamp (the sample shop's `-05:00`).
    pub shop_utc_offset: UtcOffset,
    /// The shop's currency.
    pub currency: String,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The sandbox clock every rule reads.
    pub clock: Clock,
    /// Bucket size (Standard plan: 40).
    pub bucket_size: u32,
    /// Leak rate per virtual second (Standard plan: 2).
    pub leak_rate: f64,
    /// Supported stable versions; `None` derives them from the clock's date (§1.7).
    pub api_versions: Option<Vec<String>>,
    /// Delays before each retry (default: 8 retries over 4 hours, see `outbox`).
    pub retry_delays: Vec<Duration>,
}

impl ShopifyConfig {
    /// Standard-plan defaults on `127.0.0.1:0` with a real-time clock.
    pub fn new(access_token: impl Into<String>) -> Self {
        let (bucket_size, leak_rate) = RestPlan::Standard.bucket();
        Self {
            access_token: access_token.into(),
            api_secret: "shpss_sandbox_app_secret".to_owned(),
            shop_domain: "acme.myshopify.com".to_owned(),
            shop_utc_offset: UtcOffset::from_hms(-5, 0, 0).unwrap_or(UtcOffset::UTC),
            currency: "USD".to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Clock::real(),
            bucket_size,
            leak_rate,
            api_versions: None,
            retry_delays: DEFAULT_RETRY_DELAYS.to_vec(),
        }
    }

    /// The bucket of another plan.
    pub fn with_plan(mut self, plan: RestPlan) -> Self {
        (self.bucket_size, self.leak_rate) = plan.bucket();
        self
    }
}

impl fmt::Debug for ShopifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyConfig")
            .field("access_token", &"***")
            .field("api_secret", &"***")
            .field("shop_domain", &self.shop_domain)
            .field("shop_utc_offset", &self.shop_utc_offset)
            .field("currency", &self.currency)
            .field("addr", &self.addr)
            .field("clock", &self.clock)
            .field("bucket_size", &self.bucket_size)
            .field("leak_rate", &self.leak_rate)
            .field("api_versions", &self.api_versions)
            .field("retry_delays", &self.retry_delays)
            .finish()
    }
}

impl ShopifyConfig {
    /// Refuses settings that cannot work.
    pub(crate) fn check(&self) -> Result<(), ShopifyError> {
        let config = self;
        if !crate::net::is_loopback_addr(&config.addr) {
            return Err(ShopifyError::NotLoopback(config.addr));
        }
        if config.access_token.is_empty() || config.api_secret.is_empty() {
            return Err(ShopifyError::InvalidConfig(
                "access_token and api_secret must not be empty",
            ));
        }
        if config.bucket_size == 0 || !(config.leak_rate.is_finite() && config.leak_rate > 0.0) {
            return Err(ShopifyError::InvalidConfig(
                "bucket_size and leak_rate must be greater than zero",
            ));
        }
        Ok(())
    }
}
