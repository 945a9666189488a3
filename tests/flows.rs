//! Flows end to end beyond the first one, each from the source's own event (a webhook, or a
//! change the poller finds) to the target's record, through creates, updates and deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use serde_json::json;
use switchboard_sandbox::{ExactConfig, ExactSandbox, PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

/// Exact Online accounts, polled through the sync API, become Pipedrive organizations (at
/// Pipedrive's documented limits): three created, one renamed in Exact (the organization
/// follows, nothing created), one deleted in Exact (its `sync/Deleted` entry deletes the
/// organization).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_accounts_become_pipedrive_organizations_through_creates_updates_and_deletes() {
    init_logging();
    ensure_stack();
    let exact = ExactSandbox::start(ExactConfig::new(
        "switchboard-app",
        "app-secret",
        "http://127.0.0.1/callback",
    ))
    .await
    .unwrap();
    let accounts: Vec<_> = (0..3)
        .map(|i| {
            exact
                .upsert_account(json!({"Name": format!("Flow {i} BV"), "VATNumber": format!("NL00000000{i}B01"), "City": "Utrecht", "Country": "NL"}))
                .unwrap()
        })
        .collect();
    let tokens = exact.issue_tokens();
    exact.clock().advance(Duration::from_secs(601));
    let crm = PipedriveSandbox::start(PipedriveConfig::new("flow-crm-token"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("flow-books");
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
secrets_key: "{key_ref}"
connections:
  books:
    type: exact
    base_url: "{base}"
    division: {division}
    oauth: {{client_id: switchboard-app, client_secret: "{secret_ref}", refresh_token: "{refresh_ref}"}}
    poll: {{entities: [accounts], every_secs: 1}}
  crm: {{type: pipedrive, base_url: "{crm_url}", api_token: "{crm_ref}"}}
flows:
  - name: books-accounts-to-crm
    from: books.accounts
    mapping: exact/account-to-organization.v1
    to: organization
    sinks: [{{target: crm.organizations}}]
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{root}/mappings", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 2000}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        key_ref = secret_ref(dir.path(), "key", &key),
        base = exact.base_url(),
        division = exact.current_division(),
        secret_ref = secret_ref(dir.path(), "secret", "app-secret"),
        refresh_ref = secret_ref(dir.path(), "refresh", &tokens.refresh_token),
        crm_url = crm.base_url(),
        crm_ref = secret_ref(dir.path(), "crm", "flow-crm-token"),
        root = workspace_root().display(),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_transformer::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();

    let names = || {
        let mut names: Vec<String> = crm.organizations().into_iter().map(|o| o.name).collect();
        names.sort();
        names
    };
    assert!(
        eventually(Duration::from_secs(90), || names().len() == 3).await,
        "three organizations created: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 BV", "Flow 2 BV"]);

    exact
        .upsert_account(json!({"ID": accounts[1].to_string(), "Name": "Flow 1 Renamed BV"}))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || names()
            .contains(&"Flow 1 Renamed BV".to_owned()))
        .await,
        "the rename reached Pipedrive: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 Renamed BV", "Flow 2 BV"]);

    assert!(exact.delete_account(accounts[2]));
    assert!(
        eventually(Duration::from_secs(60), || names().len() == 2).await,
        "the deletion reached Pipedrive: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 Renamed BV"]);
    for i in 0..3 {
        let name = format!("Flow {i} BV");
        assert_eq!(crm.creates_for_organization(&name), 1, "{name} created once");
    }
    assert_eq!(
        crm.creates_for_organization("Flow 1 Renamed BV"),
        0,
        "the rename updated the organization"
    );
}
