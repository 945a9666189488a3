//! One poll cycle of a generic REST connection (`type: http`, `poll`): each entity walked
//! from its cursor, page after page (`Link: rel="next"` or the API's next cursor).
//!
//! - `updated_since`: the cursor is the newest change time published plus the IDs published
//!   at exactly that time ([`crate::since`]); a walk asks from that time (the API must treat
//!   it as inclusive). An arbitrary API need not sort by change time, so the cursor is
//!   committed once the whole walk was published and acknowledged; a walk cut short
//!   (shutdown, crash, error) commits nothing and is repeated: at-least-once.
//! - `page_cursor`: the cursor is the API's own; after each page's events were acknowledged
//!   the page's next cursor is committed. At the end of the feed (no next cursor) the cursor
//!   that read the last page is kept with the event IDs published from it, so the next poll
//!   reads that page again for additions and republishes nothing.
//!
//! Event IDs follow the version (record ID and change time) when a change time is
//! configured, else the record's content (a SHA-256 of the JSON), so a page read twice
//! gives the same IDs.

use std::sync::Arc;
use std::time::Duration;

use crate::generic::api::{GenericClient, Page, format_since, record_changed_at, record_id};
use crate::generic::poll::{GenericPoll, PollEntity, PollMode};
use futures::future::try_join_all;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_core::error::ClassifiedError;
use switchboard_core::raw::{RawPublisher, now_millis};
use tokio_util::sync::CancellationToken;

use crate::Call;
use crate::poll::since::SinceCursor;
use crate::poll::telemetry;
use crate::poll::{Cursors, Poll};

/// What a poller needs for one generic connection.
pub(crate) struct GenericPoller {
    pub name: String,
    pub settings: GenericPoll,
    pub client: GenericClient,
    pub publisher: RawPublisher,
    pub cursors: Arc<dyn Cursors>,
}

impl Poll for GenericPoller {
    fn name(&self) -> &str {
        &self.name
    }

    fn every(&self) -> Duration {
        Duration::from_secs(self.settings.every_secs)
    }

    fn cycle<'a>(&'a self, shutdown: &'a CancellationToken) -> Call<'a, usize> {
        Box::pin(self.poll_once(shutdown))
    }
}

impl GenericPoller {
    /// Walks every entity once; returns the number of events published.
    async fn poll_once(&self, shutdown: &CancellationToken) -> Result<usize, ClassifiedError> {
        let mut published = 0;
        for (name, entity) in &self.settings.entities {
            let key = format!("{}/{name}", self.name);
            published += match entity.mode {
                PollMode::UpdatedSince => self.since_walk(name, entity, &key, shutdown).await?,
                PollMode::PageCursor => self.cursor_walk(name, entity, &key, shutdown).await?,
            };
        }
        Ok(published)
    }

    async fn since_walk(
        &self,
        name: &str,
        entity: &PollEntity,
        key: &str,
        shutdown: &CancellationToken,
    ) -> Result<usize, ClassifiedError> {
        let start = SinceCursor::resume(self.cursors.get(key), 0);
        let mut cursor = start.clone();
        let since = format_since(entity.time_format, start.at);
        let base = [(entity.since_param.clone().unwrap_or_default(), since)];
        let mut page = self.client.first_page(entity, &base).await?;
        let mut published = 0;
        let mut last_token = None;
        loop {
            let mut events = Vec::new();
            for record in &page.records {
                let event = self.event(name, entity, record)?;
                let at = event.source_timestamp.unwrap_or_default();
                // Checked against the walk's start: the same record may come twice in one
                // walk (changed meanwhile), and each version is published.
                if start.is_new(&event.record_id, at) {
                    cursor.advance(&event.record_id, at);
                    events.push(event);
                }
            }
            published += self.publish(key, &page, &events).await?;
            telemetry::lag(&self.name, key, Some(cursor.at).filter(|at| *at > 0));
            if page.next_link.is_none() && page.next_cursor.is_some() {
                if page.next_cursor == last_token {
                    break; // the API repeats its cursor: the walk is over
                }
                last_token = page.next_cursor.clone();
            }
            match self.next(entity, &page, &base, shutdown).await? {
                Some(next) => page = next,
                None if shutdown.is_cancelled() => return Ok(published),
                None => break,
            }
        }
        if cursor != start {
            self.cursors.commit(key, &cursor.to_cursor()).await?;
        }
        Ok(published)
    }

    async fn cursor_walk(
        &self,
        name: &str,
        entity: &PollEntity,
        key: &str,
        shutdown: &CancellationToken,
    ) -> Result<usize, ClassifiedError> {
        // `token` is the cursor that reads the current page (none: the feed's start) and
        // `seen` the event IDs already published from that page.
        let mut stored = self.cursors.get(key).unwrap_or_default();
        let param = entity.cursor_param.clone().unwrap_or_default();
        let first: Vec<(String, String)> = stored
            .token
            .iter()
            .map(|t| (param.clone(), t.clone()))
            .collect();
        let mut page = self.client.first_page(entity, &first).await?;
        let mut published = 0;
        loop {
            let events = page
                .records
                .iter()
                .map(|r| self.event(name, entity, r))
                .filter(|e| {
                    e.as_ref()
                        .map_or(true, |e| !stored.seen.contains(&e.event_id))
                })
                .collect::<Result<Vec<_>, _>>()?;
            published += self.publish(key, &page, &events).await?;
            if let Some(changed_at) = events.iter().filter_map(|e| e.source_timestamp).max() {
                stored.changed_at = Some(changed_at.max(stored.changed_at.unwrap_or(0)));
            }
            telemetry::lag(&self.name, key, stored.changed_at);
            match page
                .next_cursor
                .clone()
                .filter(|t| Some(t) != stored.token.as_ref())
            {
                Some(token) => {
                    stored.token = Some(token);
                    stored.seen.clear();
                    self.cursors.commit(key, &stored).await?;
                }
                None => {
                    // The end of the feed: remember what this page gave, so the next
                    // poll re-reads it for additions without republishing.
                    if !events.is_empty() {
                        stored.seen.extend(events.into_iter().map(|e| e.event_id));
                        self.cursors.commit(key, &stored).await?;
                    }
                    break;
                }
            }
            page = match self.next(entity, &page, &[], shutdown).await? {
                Some(next) => next,
                None => break,
            };
        }
        Ok(published)
    }

    /// Publishes a page's events and waits for every acknowledgement.
    async fn publish(
        &self,
        key: &str,
        page: &Page,
        events: &[ChangeEvent],
    ) -> Result<usize, ClassifiedError> {
        try_join_all(events.iter().map(|e| self.publisher.publish(e))).await?;
        telemetry::page_done(&self.name, key, page.records.len(), events.len());
        Ok(events.len())
    }

    /// The next page of a walk: the `Link` URL if there is one, else the API's next cursor
    /// sent as `cursor_param` next to the walk's own `base` query, else none (also once
    /// shutdown began).
    async fn next(
        &self,
        entity: &PollEntity,
        page: &Page,
        base: &[(String, String)],
        shutdown: &CancellationToken,
    ) -> Result<Option<Page>, ClassifiedError> {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        if let Some(link) = &page.next_link {
            return self.client.linked_page(entity, link).await.map(Some);
        }
        match (&entity.cursor_param, &page.next_cursor) {
            (Some(param), Some(next)) => {
                let mut query = base.to_vec();
                query.push((param.clone(), next.clone()));
                self.client.first_page(entity, &query).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    fn event(
        &self,
        name: &str,
        entity: &PollEntity,
        record: &Value,
    ) -> Result<ChangeEvent, ClassifiedError> {
        let id = record_id(entity, record)?;
        let changed_at = record_changed_at(entity, record);
        let content = changed_at
            .is_none()
            .then(|| format!("sha256-{:x}", Sha256::digest(record.to_string().as_bytes())));
        Ok(ChangeEvent {
            event_id: ChangeEvent::derive_event_id(
                &self.name,
                name,
                &id,
                content.as_deref(),
                changed_at,
            ),
            connection: self.name.clone(),
            system: "http".to_owned(),
            entity: name.to_owned(),
            record_id: id,
            operation: Operation::Update,
            source_timestamp: changed_at,
            received_at: now_millis(),
            api_version: None,
            delivery_id: None,
            payload: record.to_string(),
        })
    }
}
