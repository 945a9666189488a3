//! Reconciliation: webhooks get lost (Shopify deletes a subscription after repeated
//! failures, Pipedrive bans a failing one for 30 minutes and drops its events), so a slow
//! poll lists what changed since the last one and publishes every version no webhook
//! brought. A version is a record and its source timestamp; ingest marks each version it
//! published in `<prefix>.ingest.dedupe` ([`version_key`]), and the [`Ledger`] lets a poll
//! skip those. Each version a poll does publish is a missed webhook, marked too (so the
//! next poll skips it) and counted in `switchboard_reconciliation_catches_total`.
//!
//! The ledger is read at the start of a cycle; a webhook that lands during the cycle may
//! be published by both paths, under the same event ID (both derive it from the version).
//! This module also holds the Shopify reconciler; Pipedrive's is the Pipedrive poller in its
//! reconcile role.

use std::collections::HashMap;
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
use crate::telemetry;

/// The versions ingest (and earlier polls) published, for one reconciliation cycle.
pub(crate) struct Ledger {
    publisher: RawPublisher,
    kafka: KafkaConfig,
    topic: String,
}

/// The known versions, as read at the start of a cycle.
pub(crate) struct Known(HashMap<String, Vec<u8>>);

impl Known {
    /// Whether this version of the event's record was published before.
    pub(crate) fn contains(&self, event: &ChangeEvent) -> bool {
        event.source_timestamp.is_some_and(|ts| {
            self.0.contains_key(&version_key(
                &event.connection,
                &event.entity,
                &event.record_id,
                ts,
            ))
        })
    }
}

impl Ledger {
    pub(crate) fn new(publisher: RawPublisher, kafka: KafkaConfig, topics: &Topics) -> Self {
        Self {
            publisher,
            kafka,
            topic: topics.ingest_dedupe(),
        }
    }

    /// Reads every marked version.
    pub(crate) async fn load(&self) -> Result<Known, ClassifiedError> {
        let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
        let table = tokio::task::spawn_blocking(move || {
            read_table(&kafka, &topic, Duration::from_secs(60))
        })
        .await
        .map_err(|e| ClassifiedError::new(ErrorClass::Transient, e.to_string()))??;
        Ok(Known(table))
    }

    /// Records that `event` (already acknowledged on its raw topic) was a catch: marks its
    /// version and counts it.
    pub(crate) async fn caught(&self, event: &ChangeEvent) -> Result<(), ClassifiedError> {
        if let Some(ts) = event.source_timestamp {
            let version = version_key(&event.connection, &event.entity, &event.record_id, ts);
            let marker = now_millis().to_string();
            self.publisher
                .producer()
                .send(
                    FutureRecord::to(&self.topic).key(&version).payload(&marker),
                    Timeout::After(Duration::from_secs(30)),
                )
                .await
                .map_err(|(e, _)| kafka::kafka_error("mark reconciled version", &e))?;
        }
        telemetry::caught(&event.connection, &event.entity, &event.record_id);
        Ok(())
    }
}

/// Reconciliation of one Shopify connection.
pub(crate) struct ShopifyReconciler {
    pub name: String,
    pub connection: ShopifyConnection,
    pub client: ShopifyClient,
    pub publisher: RawPublisher,
    pub cursors: Arc<Cursors>,
    pub ledger: Ledger,
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

fn updated_at(item: &Value) -> Option<i64> {
    item.get("updated_at")
        .and_then(Value::as_str)
        .and_then(rfc3339_millis)
}
