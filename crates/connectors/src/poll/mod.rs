//! What a system's poll job gets from the poller, and what it gives back.
//!
//! A job lists a source's changes since its stored cursors and publishes each as a change
//! event. Guarantee, for every job: a page's events are acknowledged by Kafka before the
//! cursor that covers them is committed, so a restart resumes from the committed cursor and
//! never skips a change (it may repeat one page). The poller service owns the rest: the
//! cursor store on Kafka, the reconciliation ledger, the leases that keep two replicas off
//! one connection, and the schedule with its backoff and audit.

pub mod since;
pub mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_core::envelope::{ChangeEvent, version_key};
use switchboard_core::raw::RawPublisher;
use tokio_util::sync::CancellationToken;

use crate::target::Call;

/// A stored cursor, keyed `<connection>/<entity>` (or `<connection>/reconcile/<entity>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The source's own position (Exact: the highest `Timestamp` rowversion published).
    pub position: i64,
    /// When the newest published change happened at the source (epoch ms), for the lag;
    /// for changes-since pollers also the time the next poll starts from.
    pub changed_at: Option<i64>,
    /// Changes-since pollers: IDs of the records already published whose change time is
    /// exactly `changed_at`, so that boundary time is listed again but not republished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    /// Page-cursor pollers: the API's opaque cursor of the next page to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Where cursors are kept (the poller's compacted `<prefix>.cursors`).
pub trait Cursors: Send + Sync {
    /// The stored cursor under `key`.
    fn get(&self, key: &str) -> Option<Cursor>;

    /// Stores `cursor` under `key` and waits until it is durable.
    fn commit<'a>(&'a self, key: &'a str, cursor: &'a Cursor) -> Call<'a, ()>;
}

/// The record versions ingest (and earlier polls) published, as read at the start of a
/// reconciliation cycle, keyed by [`version_key`].
pub struct Known(HashMap<String, Vec<u8>>);

impl Known {
    /// The versions read from the ledger.
    pub fn new(versions: HashMap<String, Vec<u8>>) -> Self {
        Self(versions)
    }

    /// Whether this version of the event's record was published before.
    pub fn contains(&self, event: &ChangeEvent) -> bool {
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

/// The reconciliation ledger: which versions were published, and the catches.
pub trait Ledger: Send + Sync {
    /// Every version published so far.
    fn load(&self) -> Call<'_, Known>;

    /// Records that `event` (already acknowledged on its raw topic) was a catch, a version
    /// no webhook brought: marks its version and counts it.
    fn caught<'a>(&'a self, event: &'a ChangeEvent) -> Call<'a, ()>;
}

/// What the poller lends every job.
#[derive(Clone)]
pub struct PollContext {
    /// Publishes to `sb.raw.<connection>.<entity>`, acknowledged.
    pub publisher: RawPublisher,
    /// The cursor store.
    pub cursors: Arc<dyn Cursors>,
    /// The reconciliation ledger.
    pub ledger: Arc<dyn Ledger>,
}

/// One connection's scheduled poll work.
pub trait Poll: Send + Sync {
    /// The connection it polls (its lease is taken under this name).
    fn name(&self) -> &str;

    /// Time between two cycles.
    fn every(&self) -> Duration;

    /// One cycle: every entity from its cursor to the end of its pages, or until
    /// `shutdown`. Returns the number of events published.
    fn cycle<'a>(&'a self, shutdown: &'a CancellationToken) -> Call<'a, usize>;
}
