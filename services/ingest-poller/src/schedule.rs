//! The schedule: each connection's poll job runs every `every` while this replica holds
//! the connection's lease ([`crate::leases`]), with backoff after errors (auth errors are
//! logged as needing attention). Reports `switchboard_poll_last_success_timestamp_seconds`
//! and `switchboard_poll_errors_total` per connection, and writes every API call a cycle
//! makes to `<prefix>.audit`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_connectors::audit::Scope;
use switchboard_connectors::poll::Poll;
use switchboard_core::ErrorClass;
use switchboard_core::audit::AuditLog;
use switchboard_core::progress::Progress;
use tokio_util::sync::CancellationToken;

use crate::leases::Leases;

/// Polls one connection on its schedule while this replica holds its lease. Every API call
/// of a cycle (pages, token refreshes) goes to `audit`.
pub(crate) async fn poll_loop(
    poller: Box<dyn Poll>,
    leases: Arc<Leases>,
    audit: AuditLog,
    progress: Arc<Progress>,
    shutdown: CancellationToken,
) {
    let every = poller.every().max(Duration::from_secs(1));
    let mut backoff = Duration::from_secs(1);
    // Since when this connection's cycles fail in a row: a due poll that does not happen.
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        let mut wait = every;
        if let Some(_lease) = leases.acquire(poller.name()).await {
            let scope = Scope::logging_to(&audit, "poller", poller.name());
            match scope.run(poller.cycle(&shutdown)).await {
                Ok(published) => {
                    backoff = Duration::from_secs(1);
                    failing_since = None;
                    progress.progressed();
                    progress.set_waiting(None);
                    metrics::gauge!("switchboard_poll_last_success_timestamp_seconds", "connection" => poller.name().to_owned())
                        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
                    tracing::info!(connection = %poller.name(), published, "poll cycle done");
                }
                Err(e) => {
                    metrics::counter!("switchboard_poll_errors_total", "connection" => poller.name().to_owned(), "error_class" => e.class.as_str()).increment(1);
                    if e.class == ErrorClass::Auth {
                        tracing::error!(connection = %poller.name(), error = %e, "poll refused: credentials need attention");
                    } else {
                        tracing::warn!(connection = %poller.name(), error = %e, "poll cycle failed; retrying");
                    }
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    progress.set_waiting(Some(since.elapsed()));
                    wait = backoff.min(every);
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        } else {
            // Not ours (now): look again soon, a rebalance may hand it over. Out of the
            // lease group, no replica may be polling it: that waits (and stalls).
            failing_since = None;
            progress.set_waiting(leases.out_of_group_for());
            wait = Duration::from_secs(1).min(every);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
