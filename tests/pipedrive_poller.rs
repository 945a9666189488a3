//! The Pipedrive fallback poller against the Pipedrive sandbox and the real broker: 3,000
//! persons (most sharing one `update_time` second, so page and cursor boundaries fall
//! inside a second) listed by `update_time` while persons change and new ones appear, the
//! poller restarted in the middle of a walk. Every person's current version in the sandbox
//! must be on the topic (none skipped), the restarted poller must resume from its committed
//! cursor, and once caught up the poller must not keep republishing the boundary second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_sandbox::pipedrive::{Entity, Trigger};
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "pd-poll-token";

fn millis(rfc3339: &str) -> i64 {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn rename(crm: &PipedriveSandbox, id: u64, name: &str) {
    crm.trigger(Trigger::change(
        Entity::Person,
        id,
        serde_json::json!({ "name": name }),
    ))
    .unwrap();
}

async fn decode_all(codec: &AvroCodec, topic: &str) -> Vec<ChangeEvent> {
    let bootstrap = kafka_bootstrap();
    let size = usize::try_from(topic_size(&bootstrap, topic)).unwrap();
    let records = read_topic(
        &bootstrap,
        topic,
        size,
        Duration::from_secs(30),
        Duration::ZERO,
    );
    let mut events = Vec::new();
    for r in &records {
        events.push(
            codec
                .decode(rdkafka::Message::payload(r).unwrap())
                .await
                .unwrap(),
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipedrive_poller_skips_no_change_across_pages_a_restart_and_a_busy_second() {
    init_logging();
    ensure_stack();
    let crm = PipedriveSandbox::start(PipedriveConfig::new(TOKEN))
        .await
        .unwrap();
    for i in 0..3000 {
        crm.seed_person(&format!("Person {i}"), &[&format!("p{i}@example.com")]);
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("pdpoll");
    // Two requests per 2-second window: a walk of 3,000 persons takes several seconds, so
    // changes land between its pages and the restart falls in the middle of one.
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  crm:
    type: pipedrive
    base_url: "{base}"
    api_token: "{token}"
    burst_limit: 2
    poll: {{entities: [persons], every_secs: 1}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        base = crm.base_url(),
        token = secret_ref(dir.path(), "token", TOKEN),
    );
    let topic = format!("{prefix}.raw.crm.persons");
    let bootstrap = kafka_bootstrap();

    let first = CancellationToken::new();
    let poller = switchboard_ingest_poller::start(load(&yaml), first.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(90), || topic_size(&bootstrap, &topic)
            >= 1000)
        .await,
        "the first pages arrived"
    );

    // Between pages: persons already published change, persons not yet listed change, and
    // new persons appear.
    crm.clock().advance(Duration::from_secs(2));
    for id in 1..=200 {
        rename(&crm, id, &format!("Renamed early {id}"));
    }
    for id in 2901..=3000 {
        rename(&crm, id, &format!("Renamed late {id}"));
    }
    for i in 0..50 {
        crm.trigger(Trigger::create(
            Entity::Person,
            serde_json::json!({"name": format!("New {i}")}),
        ))
        .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(90), || topic_size(&bootstrap, &topic)
            >= 2000)
        .await,
        "the walk went on"
    );
    first.cancel();
    poller.task.await.unwrap().unwrap();
    assert!(
        topic_size(&bootstrap, &topic) < 3350,
        "the restart fell in the middle of the walk (3,050 persons, 300 of them changed)"
    );
    let requests_before_restart = crm.requests().len();
    let cursors = switchboard_core::kafka::read_table(
        &load(&yaml).kafka,
        &format!("{prefix}.cursors"),
        Duration::from_secs(30),
    )
    .unwrap();
    let cursor: serde_json::Value = serde_json::from_slice(&cursors["crm/persons"]).unwrap();
    let cursor_at = cursor["changed_at"].as_i64().unwrap();
    assert!(cursor_at > 0, "a cursor was committed before the restart");
    assert!(
        !cursor["seen"].as_array().unwrap().is_empty(),
        "the cursor names the persons published at its second"
    );

    // More changes while the poller is down and after it is back, each in a later second.
    crm.clock().advance(Duration::from_secs(2));
    for id in 1..=50 {
        rename(&crm, id, &format!("Renamed again {id}"));
    }
    let second = CancellationToken::new();
    let _stop = second.clone().drop_guard();
    switchboard_ingest_poller::start(load(&yaml), second.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    crm.clock().advance(Duration::from_secs(2));
    for id in 1000..=1010 {
        rename(&crm, id, &format!("Renamed while resumed {id}"));
    }
    for i in 0..20 {
        crm.trigger(Trigger::create(
            Entity::Person,
            serde_json::json!({"name": format!("Newer {i}")}),
        ))
        .unwrap();
    }

    // Done when every person's current version (ID, update_time, name) is on the topic.
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let current: Vec<(String, i64, String)> = crm
        .persons()
        .iter()
        .map(|p| (p.id.to_string(), millis(&p.update_time), p.name.clone()))
        .collect();
    assert_eq!(current.len(), 3070);
    let mut missing = current.len();
    let mut events = Vec::new();
    for _ in 0..90 {
        events = decode_all(&codec, &topic).await;
        let published: HashSet<(String, i64, String)> = events
            .iter()
            .map(|e| {
                let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
                (
                    e.record_id.clone(),
                    e.source_timestamp.unwrap(),
                    payload["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        missing = current.iter().filter(|v| !published.contains(v)).count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(missing, 0, "every person's current version was published");

    // Same derivation as the webhook path: the version names the event.
    for e in &events {
        assert_eq!(
            e.event_id,
            ChangeEvent::derive_event_id("crm", "persons", &e.record_id, None, e.source_timestamp)
        );
    }
    let seeded = events.iter().find(|e| e.record_id == "2500").unwrap();
    assert_eq!(
        seeded.operation,
        Operation::Create,
        "never changed: a create"
    );
    let changed = events
        .iter()
        .filter(|e| e.record_id == "1")
        .max_by_key(|e| e.source_timestamp)
        .unwrap();
    assert_eq!(changed.operation, Operation::Update);

    // The restarted poller resumed from the committed cursor (one second before its second).
    let resumed = crm.requests()[requests_before_restart..]
        .iter()
        .find(|r| r.path_and_query.starts_with("/api/v2/persons?"))
        .map(|r| r.path_and_query.clone())
        .unwrap();
    let expected_since = OffsetDateTime::from_unix_timestamp(cursor_at / 1000 - 1)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
        .replace(':', "%3A");
    assert!(
        resumed.contains(&format!("updated_since={expected_since}")),
        "{resumed} resumes from {expected_since}"
    );
    assert!(resumed.contains("sort_by=update_time") && resumed.contains("sort_direction=asc"));

    // Caught up: further cycles list the boundary second again but publish nothing.
    let settled = topic_size(&bootstrap, &topic);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        topic_size(&bootstrap, &topic),
        settled,
        "the boundary second is not republished"
    );
    assert_eq!(crm.throttled_count(), 0, "the burst limit was never hit");
}
