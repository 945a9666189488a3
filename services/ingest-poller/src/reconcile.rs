//! Shopify reconciliation: webhooks get lost (Shopify deletes a subscription after repeated
//! failures), so a slow poll lists what changed since the last one and publishes every
//! version no webhook brought. A version is a record and its `updated_at`; ingest marks
//! each version it published in `<prefix>.ingest.dedupe`, and this poll skips those. Each
//! version it does publish is a missed webhook, counted in
//! `switchboard_reconciliation_catches_total`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::Value;
use switchboard_connectors::shopify::ShopifyConnection;
use switchboard_connectors::shopify::api::ShopifyClient;
use switchboard_connectors::webhook::{id_string, rfc3339_millis};
use switchboard_core::config::KafkaConfig;
use switchboard_core::envelope::{ChangeEvent, Operation, version_key};
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::kafka::{self, read_table};
use switchboard_core::raw::{RawPublisher, now_millis};
use switchboard_core::topics::Topics;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::cursors::{Cursor, Cursors};

/// Reconciliation of one Shopify connection.
pub(crate) struct ShopifyReconciler {
    pub name: String,
    pub connection: ShopifyConnection,
    pub client: ShopifyClient,
    pub publisher: RawPublisher,
    pub cursors: Arc<Cursors>,
    pub kafka: KafkaConfig,
    pub topics: Topics,
}

impl ShopifyReconciler {
    /// Lists every configured entity once; returns the versions it had to publish.
    pub(crate) async fn cycle(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<usize, ClassifiedError> {
        let Some(reconcile) = &self.connection.reconcile else {
            return Ok(0);
        };
        let (kafka, topic) = (self.kafka.clone(), self.topics.ingest_dedupe());
        let seen = tokio::task::spawn_blocking(move || {
            read_table(&kafka, &topic, Duration::from_secs(60))
        })
        .await
        .map_err(|e| ClassifiedError::new(ErrorClass::Transient, e.to_string()))??;
        let mut caught = 0;
        for entity in &reconcile.entities {
            let key = format!("{}/reconcile/{entity}", self.name);
            let mut cursor = self.cursors.get(&key).unwrap_or(Cursor {
                position: 0,
                changed_at: Some(
                    now_millis() - i64::try_from(reconcile.first_lookback_secs * 1000).unwrap_or(0),
                ),
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
                for item in &page.items {
                    if self.publish_if_missed(entity, item, &seen).await? {
                        caught += 1;
                    }
                }
                let newest = page.items.iter().filter_map(updated_at).max();
                if let Some(newest) = newest.filter(|n| Some(*n) > cursor.changed_at) {
                    cursor.changed_at = Some(newest);
                    self.cursors.commit(&key, cursor).await?;
                }
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

    /// Publishes `item` unless its version is known; returns whether it was a catch.
    async fn publish_if_missed(
        &self,
        entity: &str,
        item: &Value,
        seen: &std::collections::HashMap<String, Vec<u8>>,
    ) -> Result<bool, ClassifiedError> {
        let id = id_string(item.get("id")).ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("{entity} without id"))
        })?;
        let Some(changed) = updated_at(item) else {
            return Ok(false);
        };
        let version = version_key(&self.name, entity, &id, changed);
        if seen.contains_key(&version) {
            return Ok(false);
        }
        let event = ChangeEvent {
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
        };
        self.publisher.publish(&event).await?;
        let marker = now_millis().to_string();
        self.publisher
            .producer()
            .send(
                FutureRecord::to(&self.topics.ingest_dedupe())
                    .key(&version)
                    .payload(&marker),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map_err(|(e, _)| kafka::kafka_error("mark reconciled version", &e))?;
        metrics::counter!("switchboard_reconciliation_catches_total", "connection" => self.name.clone(), "entity" => entity.to_owned())
            .increment(1);
        tracing::warn!(connection = %self.name, entity, record_id = %event.record_id, "reconciliation caught a change no webhook delivered");
        Ok(true)
    }
}

fn updated_at(item: &Value) -> Option<i64> {
    item.get("updated_at")
        .and_then(Value::as_str)
        .and_then(rfc3339_millis)
}
