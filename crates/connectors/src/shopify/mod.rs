//! Shopify: webhooks in (customers, orders, products).
//!
//! Contract facts (shared/reference/saas-contracts.md §1): deliveries are signed with
//! base64 HMAC-SHA256 of the raw body under the app's client secret in
//! `X-Shopify-Hmac-Sha256`; `X-Shopify-Webhook-Id` identifies one delivery; IDs exceed 2^53.

pub mod api;
mod model;
mod poll;
pub mod target;
pub mod webhook;
pub mod write;

use serde::Deserialize;
use switchboard_core::config::ConfigError;
use switchboard_core::error::ClassifiedError;
use switchboard_core::{Config, Secret};

use crate::poll::{Poll, PollContext};
use crate::target::{Entity, Writer};
use crate::webhook::{Received, WebhookError};

/// Entities whose webhooks ingest accepts and publishes to `sb.raw.<connection>.<entity>`.
pub const WEBHOOK_ENTITIES: &[&str] = &["customers", "orders", "products"];

/// Settings of a Shopify connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConnection {
    /// `<shop>.myshopify.com`; deliveries from another shop are refused.
    pub shop_domain: String,
    /// Pinned Admin API version, e.g. `2025-01`.
    pub api_version: String,
    /// The app's client secret, which signs webhooks.
    pub webhook_secret: Secret,
    /// The previous secret, accepted too while a rotation settles (Shopify may take up to
    /// an hour to sign with a new secret).
    #[serde(default)]
    pub previous_webhook_secret: Option<Secret>,
    /// Admin API access token (for reconciliation polls and Shopify as a target).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// API address; default `https://<shop_domain>` (set it to try the sandbox).
    #[serde(default)]
    pub base_url: Option<String>,
    /// A slow poll that catches changes whose webhooks were lost.
    #[serde(default)]
    pub reconcile: Option<Reconcile>,
}

/// Reconciliation: list what changed since the last poll and publish what no webhook
/// brought.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Entities to list (`customers`, `orders`).
    pub entities: Vec<String>,
    /// Seconds between two polls.
    #[serde(default = "default_reconcile_every_secs")]
    pub every_secs: u64,
    /// How far back the first poll looks, in seconds.
    #[serde(default = "default_lookback_secs")]
    pub first_lookback_secs: u64,
}

fn default_reconcile_every_secs() -> u64 {
    300
}

fn default_lookback_secs() -> u64 {
    24 * 3600
}

impl crate::System for ShopifyConnection {
    fn system(&self) -> &'static str {
        "shopify"
    }

    fn validate(&self, name: &str, _config: &Config) -> Result<(), ConfigError> {
        let Some(reconcile) = &self.reconcile else {
            return Ok(());
        };
        if self.access_token.is_none() {
            return Err(ConfigError::invalid(
                format!("connections.{name}.access_token"),
                "reconciliation reads the Admin API: set access_token",
            ));
        }
        for (i, entity) in reconcile.entities.iter().enumerate() {
            if !["customers", "orders"].contains(&entity.as_str()) {
                return Err(ConfigError::invalid(
                    format!("connections.{name}.reconcile.entities[{i}]"),
                    "reconciliation reads `customers` or `orders`",
                ));
            }
        }
        Ok(())
    }

    fn webhook_entities(&self) -> Vec<String> {
        crate::webhook::entity_names(WEBHOOK_ENTITIES)
    }

    fn receive_webhook(
        &self,
        headers: &::http::HeaderMap,
        body: &[u8],
        _now_secs: i64,
    ) -> Result<Received, WebhookError> {
        webhook::receive(self, headers, body)
    }

    fn polled_entities(&self) -> Vec<String> {
        self.reconcile
            .as_ref()
            .map(|r| r.entities.clone())
            .unwrap_or_default()
    }

    fn reconciles(&self, entity: &str) -> bool {
        self.reconcile
            .as_ref()
            .is_some_and(|r| r.entities.iter().any(|e| e == entity))
    }

    fn pollers(
        &self,
        name: &str,
        context: &PollContext,
    ) -> Result<Vec<Box<dyn Poll>>, ClassifiedError> {
        if self.reconcile.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Box::new(poll::ShopifyReconciler {
            client: api::ShopifyClient::new(self)?,
            name: name.to_owned(),
            connection: self.clone(),
            publisher: context.publisher.clone(),
            cursors: context.cursors.clone(),
            ledger: context.ledger.clone(),
        })])
    }

    fn target_entities(&self) -> Option<&'static [Entity]> {
        Some(target::ENTITIES)
    }

    fn target_needs(&self, name: &str, _config: &Config, _entity: &str) -> Result<(), String> {
        match self.access_token {
            Some(_) => Ok(()),
            None => Err(format!(
                "connection `{name}`: writing to Shopify needs access_token"
            )),
        }
    }

    fn writer(&self, _name: &str) -> anyhow::Result<Box<dyn Writer>> {
        Ok(Box::new(target::ShopifyTarget::new(self)?))
    }
}

/// How Shopify Admin REST answers read: `Retry-After`, else the call-limit header (§1.5).
pub struct Answers;

impl crate::http::Answers for Answers {
    fn retry_after(
        &self,
        headers: &::http::HeaderMap,
        _body: &str,
        _now_ms: i64,
    ) -> Option<std::time::Duration> {
        use crate::http::{header_number, shopify_call_limit, wait_secs};
        header_number(headers, "retry-after")
            .map(wait_secs)
            .or_else(|| {
                let (used, size) = shopify_call_limit(headers)?;
                // One marble leaks every half second on the Standard plan.
                Some(wait_secs(
                    f64::from((used + 1).saturating_sub(size)).max(1.0) * 0.5,
                ))
            })
    }
}
