//! Two poller replicas never poll the same connection at once, and when the owner stops,
//! the other one takes over. Seen from the Exact sandbox: every poll cycle opens with one
//! `sync/CRM/Accounts` call, so with one owner polling every second those calls are at
//! least a second apart; two owners would interleave theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use switchboard_sandbox::{ExactConfig, ExactSandbox};
use switchboard_tests::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

fn cycle_starts(exact: &ExactSandbox) -> Vec<OffsetDateTime> {
    exact
        .control()
        .requests()
        .iter()
        .filter(|r| r.path.contains("sync/CRM/Accounts") && !r.path.contains("skiptoken"))
        .filter_map(|r| OffsetDateTime::parse(&r.at, &Rfc3339).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_replica_polls_a_connection_and_the_other_takes_over_when_it_stops() {
    init_logging();
    ensure_stack();
    let exact = ExactSandbox::start(ExactConfig::new("app", "app-secret", "http://127.0.0.1/cb"))
        .await
        .unwrap();
    exact.generate_accounts(10);
    let tokens = exact.issue_tokens();
    exact.clock().advance(Duration::from_secs(601));
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("leases");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
secrets_key: "{key}"
connections:
  books:
    type: exact
    base_url: "{base}"
    division: {division}
    oauth: {{client_id: app, client_secret: "{secret}", refresh_token: "{refresh}"}}
    poll: {{entities: [accounts], every_secs: 1}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        key = secret_ref(
            dir.path(),
            "key",
            &base64::engine::general_purpose::STANDARD.encode([9u8; 32])
        ),
        base = exact.base_url(),
        division = exact.current_division(),
        secret = secret_ref(dir.path(), "secret", "app-secret"),
        refresh = secret_ref(dir.path(), "refresh", &tokens.refresh_token),
    );

    let first = CancellationToken::new();
    let second = CancellationToken::new();
    let _stop = second.clone().drop_guard();
    let a = switchboard_ingest_poller::start(load(&yaml), first.clone())
        .await
        .unwrap();
    switchboard_ingest_poller::start(load(&yaml), second.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || cycle_starts(&exact).len() >= 6).await,
        "polling runs"
    );

    let starts = cycle_starts(&exact);
    let closest = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        closest >= time::Duration::milliseconds(900),
        "cycles overlap: two starts {closest} apart"
    );

    // The owner stops (whichever it is, stopping one of them must not stop the polling).
    first.cancel();
    a.task.await.unwrap().unwrap();
    let before = cycle_starts(&exact).len();
    assert!(
        eventually(Duration::from_secs(60), || cycle_starts(&exact).len()
            >= before + 3)
        .await,
        "the remaining replica polls on"
    );
    let starts = cycle_starts(&exact);
    let closest = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        closest >= time::Duration::milliseconds(900),
        "no overlap across the hand-over: {closest}"
    );
}
