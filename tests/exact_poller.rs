//! The Exact Online poller against the Exact sandbox and the real broker: 5,000 accounts
//! walked through the sync API while accounts change, get deleted and get added between
//! pages, the poller restarted in the middle, and the access token rotated mid-walk.
//! Every record's last change must reach Kafka (checked against the sandbox's own change
//! log), the cursor must resume where it was, and the 60-calls-a-minute limit must never be
//! hit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_sandbox::exact::ChangeKind;
use switchboard_sandbox::{ExactConfig, ExactSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_exact_poller_misses_no_change_across_pages_a_restart_and_a_token_rotation_and_audits_each_call()
 {
    init_logging();
    ensure_stack();
    let exact = ExactSandbox::start(ExactConfig::new(
        "switchboard-app",
        "app-secret",
        "http://127.0.0.1/callback",
    ))
    .await
    .unwrap();
    let ids = exact.generate_accounts(5000);
    let tokens = exact.issue_tokens();
    // The operator authorized more than ten minutes ago: the first refresh is allowed.
    exact.clock().advance(Duration::from_secs(601));

    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("exact-poll");
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
secrets_key: "{key_ref}"
connections:
  books:
    type: exact
    base_url: "{base}"
    division: {division}
    oauth: {{client_id: switchboard-app, client_secret: "{secret_ref}", refresh_token: "{refresh_ref}"}}
    poll: {{entities: [accounts], every_secs: 1}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        key_ref = secret_ref(dir.path(), "key", &key),
        base = exact.base_url(),
        division = exact.current_division(),
        secret_ref = secret_ref(dir.path(), "secret", "app-secret"),
        refresh_ref = secret_ref(dir.path(), "refresh", &tokens.refresh_token),
    );
    let topic = format!("{prefix}.raw.books.accounts");
    let bootstrap = kafka_bootstrap();

    let first = CancellationToken::new();
    let poller = switchboard_ingest_poller::start(load(&yaml), first.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || topic_size(&bootstrap, &topic)
            >= 1000)
        .await,
        "the first page arrived"
    );

    // Between pages: updates, deletions and new accounts, and the access token's end of life.
    for id in &ids[..100] {
        exact
            .upsert_account(
                serde_json::json!({"ID": id.to_string(), "Name": "Renamed while polling"}),
            )
            .unwrap();
    }
    for id in &ids[100..150] {
        assert!(exact.delete_account(*id));
    }
    exact.generate_accounts(20);
    exact.clock().advance(Duration::from_secs(601));

    assert!(
        eventually(Duration::from_secs(60), || topic_size(&bootstrap, &topic)
            >= 2500)
        .await,
        "the walk went on"
    );
    first.cancel();
    poller.task.await.unwrap().unwrap();
    let requests_before_restart = exact.control().requests().len();
    let cursors = switchboard_core::kafka::read_table(
        &load(&yaml).kafka,
        &format!("{prefix}.cursors"),
        Duration::from_secs(30),
    )
    .unwrap();
    let cursor: serde_json::Value = serde_json::from_slice(&cursors["books/accounts"]).unwrap();
    let position = cursor["position"].as_i64().unwrap();
    assert!(position > 1, "a cursor was committed before the restart");

    let second = CancellationToken::new();
    let _stop = second.clone().drop_guard();
    switchboard_ingest_poller::start(load(&yaml), second.clone())
        .await
        .unwrap();

    // Done when every record's last change in the sandbox's log is on the topic.
    let log = exact.change_log();
    let mut last: HashMap<String, (i64, ChangeKind)> = HashMap::new();
    for change in &log {
        let entry = last
            .entry(change.id.to_string())
            .or_insert((change.timestamp, change.kind));
        if change.timestamp >= entry.0 {
            *entry = (change.timestamp, change.kind);
        }
    }
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let mut published: HashSet<(String, Option<String>, bool)> = HashSet::new();
    let mut missing = usize::MAX;
    for _ in 0..60 {
        let size = usize::try_from(topic_size(&bootstrap, &topic)).unwrap();
        let records = read_topic(
            &bootstrap,
            &topic,
            size,
            Duration::from_secs(30),
            Duration::ZERO,
        );
        for r in &records {
            let event: ChangeEvent = codec
                .decode(rdkafka::Message::payload(r).unwrap())
                .await
                .unwrap();
            published.insert((
                event.record_id,
                event.delivery_id,
                event.operation == Operation::Delete,
            ));
        }
        missing = last
            .iter()
            .filter(|(id, (ts, kind))| {
                !published.contains(&(
                    (*id).clone(),
                    Some(format!("ts-{ts}")),
                    *kind == ChangeKind::Delete,
                ))
            })
            .count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        missing,
        0,
        "every record's last change was published ({} records)",
        last.len()
    );
    assert_eq!(last.len(), 5020);

    // The restarted poller resumed from the committed cursor, not from the beginning.
    let resumed = exact.control().requests()[requests_before_restart..]
        .iter()
        .find(|r| r.path.contains("sync/CRM/Accounts"))
        .map(|r| r.path.clone())
        .unwrap();
    assert!(
        resumed.contains(&format!("Timestamp%20gt%20{position}L"))
            || resumed.contains(&format!("Timestamp gt {position}L")),
        "{resumed}"
    );

    // Rotation went through: every refresh was accepted, at least the first and the one
    // after the access token expired, and the restarted poller used the rotated token.
    let refreshes: Vec<u16> = exact
        .control()
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/oauth2/token"))
        .map(|r| r.status)
        .collect();
    assert!(refreshes.len() >= 2, "{refreshes:?}");
    assert!(
        refreshes.iter().all(|s| *s == 200),
        "no refresh was refused: {refreshes:?}"
    );
    assert_eq!(
        exact.throttled_count(),
        0,
        "the 60-calls-a-minute limit was never hit"
    );

    // Every call the poller made is audited, pages and token refreshes alike, with no
    // secret in the clear.
    let audit_topic = format!("{prefix}.audit");
    let calls = topic_json(&audit_topic);
    let polled = |c: &&serde_json::Value| c["service"] == "poller" && c["connection"] == "books";
    let pages = calls
        .iter()
        .filter(polled)
        .filter(|c| c["url"].as_str().unwrap().contains("sync/CRM/Accounts"))
        .filter(|c| c["status"] == 200)
        .count();
    assert!(
        pages >= 6,
        "the pages before and after the restart: {pages}"
    );
    let token_calls: Vec<&serde_json::Value> = calls
        .iter()
        .filter(polled)
        .filter(|c| c["url"].as_str().unwrap().contains("/oauth2/token"))
        .collect();
    assert!(token_calls.len() >= refreshes.len(), "each refresh audited");
    for call in &token_calls {
        let answer: serde_json::Value =
            serde_json::from_str(call["response_body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["access_token"], "***", "{call}");
        assert_eq!(answer["refresh_token"], "***", "{call}");
    }
    let raw: String = read_topic(
        &bootstrap,
        &audit_topic,
        calls.len(),
        Duration::from_secs(5),
        Duration::ZERO,
    )
    .iter()
    .map(|m| String::from_utf8_lossy(rdkafka::Message::payload(m).unwrap()).into_owned())
    .collect();
    for secret in [tokens.refresh_token.as_str(), "app-secret"] {
        assert!(!raw.contains(secret), "a secret is in the audit topic");
    }
}
