//! One poll cycle of a Pipedrive connection: every configured entity listed from its
//! cursor with `updated_since`, `sort_by=update_time`, `sort_direction=asc`, page by page.
//!
//! Two roles, one lister. As the **fallback poller** (`poll`, no webhooks) every version
//! past the cursor is published. As **reconciliation** (`reconcile`, next to webhooks) only
//! versions no webhook brought are published, each counted as a catch (see
//! [`crate::reconcile`]). Events carry the same record ID, entity, source timestamp
//! (`update_time`) and event ID as the webhook path derives ([`model::version`]), so a
//! version seen both ways is one event ID and one dedupe key. The payload is the v2 list
//! item verbatim (`api_version: v2`), where a webhook's is the whole v2 webhook body
//! (`api_version: 2.0`, the record under `data`).
//!
//! Per page: publish, wait for every acknowledgement, then commit the cursor (newest
//! `update_time` + IDs published at it, see [`crate::since`]). Each poll asks from one second
//! before the cursor's second, so it holds whether `updated_since` is inclusive or not; the
//! IDs at the boundary keep it from republishing. Deletions are not polled: v2 lists return
//! live records only, so deletes reach Kafka only through `delete` webhooks.

use std::sync::Arc;
use std::time::Duration;

use crate::pipedrive::PipedrivePoll;
use crate::pipedrive::api::PipedriveClient;
use crate::pipedrive::model;
use futures::future::try_join_all;
use serde_json::Value;
use switchboard_core::envelope::ChangeEvent;
use switchboard_core::error::ClassifiedError;
use switchboard_core::raw::{RawPublisher, now_millis};
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::Call;
use crate::poll::since::SinceCursor;
use crate::poll::telemetry;
use crate::poll::{Cursors, Ledger, Poll};

/// A reconciliation poll's first look back when no cursor is stored: a day.
const RECONCILE_LOOKBACK_SECS: u64 = 24 * 3600;

/// What a poller needs for one Pipedrive connection.
pub(crate) struct PipedrivePoller {
    pub name: String,
    pub client: PipedriveClient,
    pub settings: PipedrivePoll,
    pub publisher: RawPublisher,
    pub cursors: Arc<dyn Cursors>,
    /// `Some` in the reconcile role.
    pub ledger: Option<Arc<dyn Ledger>>,
}

impl Poll for PipedrivePoller {
    fn name(&self) -> &str {
        &self.name
    }

    /// 60 s as the fallback poller, 300 s as reconciliation, unless configured.
    fn every(&self) -> Duration {
        let default = if self.ledger.is_some() { 300 } else { 60 };
        Duration::from_secs(self.settings.every_secs.unwrap_or(default))
    }

    fn cycle<'a>(&'a self, shutdown: &'a CancellationToken) -> Call<'a, usize> {
        Box::pin(self.poll_once(shutdown))
    }
}

impl PipedrivePoller {
    /// Lists every entity once; returns the number of events published.
    async fn poll_once(&self, shutdown: &CancellationToken) -> Result<usize, ClassifiedError> {
        let known = match &self.ledger {
            Some(ledger) => Some(ledger.load().await?),
            None => None,
        };
        let mut published = 0;
        for entity in &self.settings.entities {
            let key = match self.ledger {
                Some(_) => format!("{}/reconcile/{entity}", self.name),
                None => format!("{}/{entity}", self.name),
            };
            let lookback = self
                .settings
                .first_lookback_secs
                .or(self.ledger.as_ref().map(|_| RECONCILE_LOOKBACK_SECS));
            let start = lookback.map_or(0, |secs| {
                (now_millis() - i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)).max(0)
            });
            let mut cursor = SinceCursor::resume(self.cursors.get(&key), start);
            let since = since_param(cursor.at);
            let mut page = self.client.list_updated_since(entity, &since, None).await?;
            loop {
                let before = cursor.clone();
                let mut events = Vec::new();
                for item in &page.items {
                    let Some(event) = self.event(entity, item) else {
                        tracing::warn!(connection = %self.name, entity, "listed record without id or update_time skipped");
                        continue;
                    };
                    let at = event.source_timestamp.unwrap_or_default();
                    if !cursor.is_new(&event.record_id, at) {
                        continue;
                    }
                    if known.as_ref().is_some_and(|k| k.contains(&event)) {
                        cursor.advance(&event.record_id, at);
                        continue;
                    }
                    events.push(event);
                }
                try_join_all(events.iter().map(|e| self.publisher.publish(e))).await?;
                if let Some(ledger) = &self.ledger {
                    for event in &events {
                        ledger.caught(event).await?;
                    }
                }
                for event in &events {
                    cursor.advance(&event.record_id, event.source_timestamp.unwrap_or_default());
                }
                if cursor != before {
                    self.cursors.commit(&key, &cursor.to_cursor()).await?;
                }
                published += events.len();
                telemetry::page_done(&self.name, &key, page.items.len(), events.len());
                telemetry::lag(&self.name, &key, Some(cursor.at).filter(|at| *at > 0));
                match page.next_cursor.take() {
                    Some(next) if !shutdown.is_cancelled() => {
                        page = self
                            .client
                            .list_updated_since(entity, &since, Some(&next))
                            .await?;
                    }
                    _ => break,
                }
            }
        }
        Ok(published)
    }

    /// The event of one listed record, derived exactly as the webhook path derives it.
    fn event(&self, entity: &str, item: &Value) -> Option<ChangeEvent> {
        let version = model::version(item)?;
        Some(ChangeEvent {
            event_id: ChangeEvent::derive_event_id(
                &self.name,
                entity,
                &version.record_id,
                None,
                Some(version.changed_at),
            ),
            connection: self.name.clone(),
            system: "pipedrive".to_owned(),
            entity: entity.to_owned(),
            record_id: version.record_id,
            operation: version.operation,
            source_timestamp: Some(version.changed_at),
            received_at: now_millis(),
            api_version: Some("v2".to_owned()),
            delivery_id: None,
            payload: item.to_string(),
        })
    }
}

/// `updated_since` one second before the cursor's second (never before the epoch).
fn since_param(at_millis: i64) -> String {
    let secs = (at_millis.div_euclid(1000) - 1).max(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_from_one_second_before_the_cursor() {
        assert_eq!(since_param(1_735_689_601_000), "2025-01-01T00:00:00Z");
        assert_eq!(since_param(0), "1970-01-01T00:00:00Z");
    }
}
