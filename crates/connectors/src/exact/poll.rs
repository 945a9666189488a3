//! One poll cycle of an Exact Online connection: every configured sync entity, then
//! `sync/Deleted`, each from its stored cursor, page by page.
//!
//! Per page: publish every row as a change event, wait until Kafka acknowledged all of
//! them, then commit the cursor to the page's highest `Timestamp`. The sync API returns rows
//! in rising `Timestamp` order (a rowversion: every insert or update gets a higher one), so a
//! restart resumes after the last committed page and neither skips nor, beyond that one page,
//! repeats a change.

use std::sync::Arc;
use std::time::Duration;

use crate::exact::api::ExactClient;
use crate::exact::model::{Page, odata_date_millis, row_timestamp};
use crate::exact::{ExactConnection, SYNC_ENTITIES, SyncEntity, sync_entity};
use futures::future::try_join_all;
use serde_json::Value;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_core::error::{ClassifiedError, ErrorClass};
use switchboard_core::raw::{RawPublisher, now_millis};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::Call;
use crate::poll::telemetry;
use crate::poll::{Cursor, Cursors, Poll};

/// Exact's documented first cursor: `Timestamp gt 1`.
const FIRST_TIMESTAMP: i64 = 1;

/// What a poller needs for one Exact connection.
pub(crate) struct ExactPoller {
    pub name: String,
    pub connection: ExactConnection,
    /// Opened on the first cycle (its token chain is read from Kafka).
    pub client: OnceCell<ExactClient>,
    pub publisher: RawPublisher,
    pub cursors: Arc<dyn Cursors>,
}

impl Poll for ExactPoller {
    fn name(&self) -> &str {
        &self.name
    }

    fn every(&self) -> Duration {
        Duration::from_secs(self.connection.poll.as_ref().map_or(60, |p| p.every_secs))
    }

    fn cycle<'a>(&'a self, shutdown: &'a CancellationToken) -> Call<'a, usize> {
        Box::pin(self.poll_once(shutdown))
    }
}

impl ExactPoller {
    /// Polls every entity and the deletions once. Returns the number of events published.
    async fn poll_once(&self, shutdown: &CancellationToken) -> Result<usize, ClassifiedError> {
        let client = self
            .client
            .get_or_try_init(|| super::open_client(&self.name, &self.connection))
            .await?;
        let entities: Vec<&SyncEntity> = self
            .connection
            .poll
            .iter()
            .flat_map(|p| p.entities.iter())
            .filter_map(|e| sync_entity(e))
            .collect();
        let mut published = 0;
        for entity in &entities {
            let key = format!("{}/{}", self.name, entity.name);
            published += self
                .walk(
                    client,
                    &key,
                    shutdown,
                    |after| client.sync_page(entity, after),
                    |row| self.change(entity, row),
                )
                .await?;
        }
        let key = format!("{}/_deleted", self.name);
        published += self
            .walk(
                client,
                &key,
                shutdown,
                |after| client.deleted_page(after),
                |row| self.deletion(&entities, row),
            )
            .await?;
        Ok(published)
    }

    /// Follows one cursor to the end of its pages.
    async fn walk<F, Fut>(
        &self,
        client: &ExactClient,
        key: &str,
        shutdown: &CancellationToken,
        first_page: F,
        to_event: impl Fn(&Value) -> Result<Option<ChangeEvent>, ClassifiedError>,
    ) -> Result<usize, ClassifiedError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<Page, ClassifiedError>>,
    {
        let start = self.cursors.get(key);
        let mut cursor = start.unwrap_or(Cursor {
            position: FIRST_TIMESTAMP,
            ..Cursor::default()
        });
        let mut page = first_page(cursor.position).await?;
        let mut published = 0;
        loop {
            let events = page
                .results
                .iter()
                .map(&to_event)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            try_join_all(events.iter().map(|e| self.publisher.publish(e))).await?;
            published += events.len();
            let highest = page.results.iter().filter_map(row_timestamp).max();
            if let Some(highest) = highest.filter(|h| *h > cursor.position) {
                let changed_at = events
                    .iter()
                    .filter_map(|e| e.source_timestamp)
                    .max()
                    .or(cursor.changed_at);
                cursor = Cursor {
                    position: highest,
                    changed_at,
                    ..Cursor::default()
                };
                self.cursors.commit(key, &cursor).await?;
            }
            telemetry::page_done(&self.name, key, page.results.len(), events.len());
            telemetry::lag(&self.name, key, cursor.changed_at);
            match page.next.take() {
                Some(next) if !shutdown.is_cancelled() => page = client.next_page(&next).await?,
                _ => break,
            }
        }
        Ok(published)
    }

    fn change(
        &self,
        entity: &SyncEntity,
        row: &Value,
    ) -> Result<Option<ChangeEvent>, ClassifiedError> {
        let id = row.get("ID").and_then(Value::as_str).ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("{} row without ID", entity.name))
        })?;
        let timestamp = row_timestamp(row);
        Ok(Some(self.event(
            entity.name,
            id,
            Operation::Update,
            row.get("Modified").and_then(odata_date_millis),
            timestamp,
            row,
        )))
    }

    fn deletion(
        &self,
        polled: &[&SyncEntity],
        row: &Value,
    ) -> Result<Option<ChangeEvent>, ClassifiedError> {
        let kind = row.get("EntityType").and_then(Value::as_i64);
        // Deletions of entities this connection does not poll still move the cursor.
        let Some(entity) = SYNC_ENTITIES
            .iter()
            .find(|e| Some(e.deleted_type) == kind && polled.iter().any(|p| p.name == e.name))
        else {
            return Ok(None);
        };
        let id = row
            .get("EntityKey")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ClassifiedError::new(ErrorClass::Data, "deleted row without EntityKey")
            })?;
        Ok(Some(self.event(
            entity.name,
            id,
            Operation::Delete,
            None,
            row_timestamp(row),
            row,
        )))
    }

    fn event(
        &self,
        entity: &str,
        id: &str,
        operation: Operation,
        changed_at: Option<i64>,
        rowversion: Option<i64>,
        row: &Value,
    ) -> ChangeEvent {
        // The rowversion identifies this exact change, so a repeated page yields the same
        // event ID (and downstream dedupes it).
        let delivery = rowversion.map(|t| format!("ts-{t}"));
        ChangeEvent {
            event_id: ChangeEvent::derive_event_id(
                &self.name,
                entity,
                id,
                delivery.as_deref(),
                changed_at,
            ),
            connection: self.name.clone(),
            system: "exact".to_owned(),
            entity: entity.to_owned(),
            record_id: id.to_owned(),
            operation,
            source_timestamp: changed_at,
            received_at: now_millis(),
            api_version: Some("v1".to_owned()),
            delivery_id: delivery,
            payload: row.to_string(),
        }
    }
}
