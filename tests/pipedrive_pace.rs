//! Pipedrive with its documented limits on (the sandbox's defaults: 40 calls per rolling
//! 2 s for the API token, 10 per 2 s for search, saas-contracts.md §2.7). New contacts cost
//! a search and a create each, so the search window binds: the sink must pace its calls
//! before Pipedrive refuses them. Every person is created once, updates arrive, and at most
//! 0.5% of the calls are answered 429, counted from the sandbox's own request log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "pace-crm-token";
const NEW: u64 = 150;
const UPDATED: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_and_updated_contacts_reach_a_rate_limited_pipedrive_with_almost_no_429s() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("pd-pace");
    let pipedrive = PipedriveSandbox::start(PipedriveConfig::new(TOKEN))
        .await
        .unwrap();
    let yaml = pipedrive_sink_yaml(
        &prefix,
        dir.path(),
        &pipedrive.base_url(),
        TOKEN,
        "",
        "concurrency: 8",
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let writer = ContactWriter::new(&prefix);
    let email = |n: u64| format!("pace{n}@example.com");
    for n in 0..NEW {
        writer
            .send(&shop_contact(n, &email(n), "Pace", &format!("N{n}")), 1)
            .await;
    }
    assert!(
        eventually(Duration::from_secs(300), || pipedrive.persons().len()
            == NEW as usize)
        .await,
        "every new contact reached Pipedrive: {}",
        pipedrive.persons().len()
    );
    for n in 0..UPDATED {
        writer
            .send(&shop_contact(n, &email(n), "Paced", &format!("N{n}")), 1)
            .await;
    }
    assert!(
        eventually(Duration::from_secs(300), || (0..UPDATED).all(|n| pipedrive
            .person_by_email(&email(n))
            .is_some_and(|p| p.name.starts_with("Paced"))))
        .await,
        "every update reached Pipedrive"
    );
    for n in 0..NEW {
        assert_eq!(
            pipedrive.creates_for_email(&email(n)),
            1,
            "{} once",
            email(n)
        );
    }
    let calls = pipedrive.request_count();
    let throttled = pipedrive.throttled_count();
    let requests = pipedrive.requests();
    let count = |method: &str, search: bool| {
        requests
            .iter()
            .filter(|r| {
                r.method.as_str() == method && r.path_and_query.contains("/search") == search
            })
            .count()
    };
    eprintln!(
        "pipedrive: {calls} calls ({} searches, {} creates, {} updates), {throttled} answered 429",
        count("GET", true),
        count("POST", false),
        count("PATCH", false)
    );
    assert_eq!(
        count("GET", true) + count("POST", false) + count("PATCH", false),
        2 * NEW as usize + UPDATED as usize + throttled,
        "a search and a create per new person, an update per change, and one call more only for each refused with 429"
    );
    assert!(
        throttled * 200 <= calls,
        "at most 0.5% of the calls were refused: {throttled} of {calls}"
    );
}
