//! Reconciliation of a Shopify connection: every configured entity listed with
//! `updated_at_min` from its cursor, page by page; a listed version that the ledger does not
//! know (no webhook brought it) is published and recorded as a catch.
//!
//! Per page: publish, then commit the cursor (the newest `updated_at` seen). The ledger is
//! read at the start of a cycle; a webhook that lands during the cycle may be published by
//! both paths, under the same event ID (both derive it from the version).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::raw::{RawPublisher, now_millis};
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::poll::{Cursor, Cursors, Ledger, Poll, telemetry};
use crate::shopify::ShopifyConnection;
use crate::shopify::api::ShopifyClient;
use crate::target::Call;
use crate::webhook::{id_string, rfc3339_millis};

/// Reconciliation of one Shopify connection.
pub(crate) struct ShopifyReconciler {
    pub name: String,
    pub connection: ShopifyConnection,
    pub client: ShopifyClient,
    pub publisher: RawPublisher,
    pub cursors: Arc<dyn Cursors>,
    pub ledger: Arc<dyn Ledger>,
}

impl ShopifyReconciler {
    /// Lists every configured entity once; returns the versions it had to publish.
    async fn poll_once(&self, shutdown: &CancellationToken) -> Result<usize, ClassifiedError> {
        let Some(reconcile) = &self.connection.reconcile else {
            return Ok(0);
        };
        let known = self.ledger.load().await?;
        let mut caught = 0;
        for entity in &reconcile.entities {
            let key = format!("{}/reconcile/{entity}", self.name);
            let mut cursor = self.cursors.get(&key).unwrap_or(Cursor {
                changed_at: Some(
                    now_millis() - i64::try_from(reconcile.first_lookback_secs * 1000).unwrap_or(0),
                ),
                ..Cursor::default()
            });
            // `updated_at_min` is inclusive and has second precision: start at the second of
            // the newest version seen; versions already published are skipped below.
            let since = cursor.changed_at.unwrap_or(0).div_euclid(1000);
            let since = time::OffsetDateTime::from_unix_timestamp(since)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
            let mut page = self.client.list_updated_since(entity, &since).await?;
            loop {
                let mut published = 0;
                for item in &page.items {
                    if let Some(event) = self.event(entity, item)?
                        && !known.contains(&event)
                    {
                        self.publisher.publish(&event).await?;
                        self.ledger.caught(&event).await?;
                        published += 1;
                    }
                }
                caught += published;
                let newest = page.items.iter().filter_map(updated_at).max();
                if let Some(newest) = newest.filter(|n| Some(*n) > cursor.changed_at) {
                    cursor.changed_at = Some(newest);
                    self.cursors.commit(&key, &cursor).await?;
                }
                telemetry::page_done(&self.name, &key, page.items.len(), published);
                telemetry::lag(&self.name, &key, cursor.changed_at);
                match page.next.take() {
                    Some(next) if !shutdown.is_cancelled() => {
                        page = self.client.next_page(&next).await?
                    }
                    _ => break,
                }
            }
        }
        Ok(caught)
    }

    /// The event of one listed resource, if it carries an `updated_at`.
    fn event(&self, entity: &str, item: &Value) -> Result<Option<ChangeEvent>, ClassifiedError> {
        let id = id_string(item.get("id")).ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("{entity} without id"))
        })?;
        let Some(changed) = updated_at(item) else {
            return Ok(None);
        };
        Ok(Some(ChangeEvent {
            event_id: ChangeEvent::derive_event_id(&self.name, entity, &id, None, Some(changed)),
            connection: self.name.clone(),
            system: "shopify".to_owned(),
            entity: entity.to_owned(),
            record_id: id,
            operation: Operation::Update,
            source_timestamp: Some(changed),
            received_at: now_millis(),
            api_version: Some(self.connection.api_version.clone()),
            delivery_id: None,
            payload: item.to_string(),
        }))
    }
}

impl Poll for ShopifyReconciler {
    fn name(&self) -> &str {
        &self.name
    }

    fn every(&self) -> Duration {
        Duration::from_secs(
            self.connection
                .reconcile
                .as_ref()
                .map_or(300, |r| r.every_secs),
        )
    }

    fn cycle<'a>(&'a self, shutdown: &'a CancellationToken) -> Call<'a, usize> {
        Box::pin(self.poll_once(shutdown))
    }
}

fn updated_at(item: &Value) -> Option<i64> {
    item.get("updated_at")
        .and_then(Value::as_str)
        .and_then(rfc3339_millis)
}
