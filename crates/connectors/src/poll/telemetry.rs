//! The poller's metrics, defined once: every poller reports its pages, records and lag
//! through these, labelled by `connection` and `cursor` (`<connection>/<entity>`, or
//! `<connection>/reconcile/<entity>`). The last successful cycle and errors per connection
//! are reported by the schedule.

use switchboard_core::raw::now_millis;

/// One page was read and its events acknowledged: `records` listed, `published` of them
/// new (the rest were known versions).
pub fn page_done(connection: &str, cursor: &str, records: usize, published: usize) {
    let labels = [
        ("connection", connection.to_owned()),
        ("cursor", cursor.to_owned()),
    ];
    metrics::counter!("switchboard_poll_pages_total", &labels).increment(1);
    metrics::counter!("switchboard_poll_records_total", &labels).increment(records as u64);
    metrics::counter!("switchboard_poll_events_total", &labels).increment(published as u64);
}

/// Poll lag: now minus the source time of the newest change the cursor covers.
pub fn lag(connection: &str, cursor: &str, changed_at: Option<i64>) {
    if let Some(changed_at) = changed_at {
        metrics::gauge!("switchboard_poll_lag_seconds", "connection" => connection.to_owned(), "cursor" => cursor.to_owned())
            .set((now_millis() - changed_at).max(0) as f64 / 1000.0);
    }
}

/// A reconciliation poll published a version no webhook delivered.
pub fn caught(connection: &str, entity: &str, record_id: &str) {
    metrics::counter!("switchboard_reconciliation_catches_total", "connection" => connection.to_owned(), "entity" => entity.to_owned())
        .increment(1);
    tracing::warn!(
        connection,
        entity,
        record_id,
        "reconciliation caught a change no webhook delivered"
    );
}
