//! Exactly once from raw to canonical, as a read-committed consumer sees it:
//! - the transformer process is killed with SIGKILL several times during a 100,000-event
//!   run, and every event still appears exactly once on the canonical topic;
//! - extra transformer replicas are started beside a running one, then stopped again (one
//!   with SIGTERM, one with SIGKILL): every event published before, during and after appears
//!   exactly once, and the first replica is left working and ready. Before each process had
//!   a transactional ID of its own, the replicas shared one and fenced each other, and the
//!   one left running never committed again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::Headers;
use switchboard_tests::*;

const EVENTS: u64 = 100_000;
const RECORDS: u64 = 1_000;
const KILLS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_appears_once_on_the_canonical_topic_across_sigkills() {
    init_logging();
    ensure_stack();
    let prefix = unique_prefix("txn-kill");
    let yaml = shop_contacts_transformer_yaml(&prefix);
    let config = load(&yaml);
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("transformer.yaml");
    std::fs::write(&config_file, &yaml).unwrap();
    let binary = service_binary("switchboard-transformer", "switchboard-transformer");
    let spawn = || {
        std::process::Command::new(&binary)
            .arg("--config")
            .arg(&config_file)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };

    // The first process creates the topics; the events go in while it runs.
    let mut transformer = spawn();
    let canonical = format!("{prefix}.canonical.contact");
    let producing = {
        let config = config.clone();
        tokio::spawn(async move {
            publish_raw_events(
                &config,
                (0..EVENTS).map(|i| numbered_customer_event(i, RECORDS)),
            )
            .await
        })
    };

    // Kill it whenever it has written another slice of the run, mid-transaction or not.
    let step = (EVENTS as i64) / (KILLS as i64 + 1);
    for kill in 1..=KILLS {
        let progressed = eventually(Duration::from_secs(300), || {
            topic_size(&kafka_bootstrap(), &canonical) >= step * kill as i64
        })
        .await;
        assert!(
            progressed,
            "the transformer made progress before kill {kill}"
        );
        transformer.kill().unwrap(); // SIGKILL: no drain, the open transaction is left behind
        transformer.wait().unwrap();
        transformer = spawn();
    }
    assert_eq!(producing.await.unwrap(), EVENTS as usize);

    let records = read_topic(
        &kafka_bootstrap(),
        &canonical,
        EVENTS as usize,
        Duration::from_secs(600),
        Duration::from_secs(3),
    );
    transformer.kill().unwrap();
    transformer.wait().unwrap();

    let seen = events_once(&records);
    let expected: HashSet<String> = (0..EVENTS)
        .map(|i| numbered_customer_event(i, RECORDS).event_id)
        .collect();
    assert_eq!(
        records.len(),
        EVENTS as usize,
        "no event lost, none doubled"
    );
    assert_eq!(seen, expected);
}

const PHASE: u64 = 8_000;
const REPLICA_RECORDS: u64 = 400;

struct Replica {
    child: Child,
    admin: u16,
}

fn spawn(binary: &std::path::Path, config: &std::path::Path) -> Replica {
    let admin = free_port();
    let child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .env(
            "SB__TRANSFORMER__ADMIN_LISTEN",
            format!("127.0.0.1:{admin}"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Replica { child, admin }
}

async fn readyz(port: u16) -> Option<u16> {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_and_stopped_beside_a_running_one_lose_and_double_nothing() {
    init_logging();
    ensure_stack();
    let prefix = unique_prefix("txn-replicas");
    let yaml = shop_contacts_transformer_yaml(&prefix);
    let config = load(&yaml);
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("transformer.yaml");
    std::fs::write(&config_file, &yaml).unwrap();
    let binary = service_binary("switchboard-transformer", "switchboard-transformer");
    let canonical = format!("{prefix}.canonical.contact");
    let events = |phase: u64| {
        (phase * PHASE..(phase + 1) * PHASE).map(|i| numbered_customer_event(i, REPLICA_RECORDS))
    };

    let mut first = spawn(&binary, &config_file);
    assert_eq!(publish_raw_events(&config, events(0)).await, PHASE as usize);
    assert!(
        eventually(Duration::from_secs(300), || topic_size(
            &kafka_bootstrap(),
            &canonical
        ) >= PHASE as i64)
        .await,
        "the first replica transformed the events published before"
    );

    let mut second = spawn(&binary, &config_file);
    let mut third = spawn(&binary, &config_file);
    assert_eq!(publish_raw_events(&config, events(1)).await, PHASE as usize);
    assert!(
        eventually(Duration::from_secs(300), || topic_size(
            &kafka_bootstrap(),
            &canonical
        ) >= 2 * PHASE as i64)
        .await,
        "three replicas transformed the events published while they ran"
    );
    // One leaves its group politely, the other dies with its transaction open.
    let stopped = Command::new("kill")
        .arg("-TERM")
        .arg(second.child.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    second.child.wait().unwrap();
    third.child.kill().unwrap();
    third.child.wait().unwrap();

    assert_eq!(publish_raw_events(&config, events(2)).await, PHASE as usize);
    let total = 3 * PHASE as usize;
    let records = read_topic(
        &kafka_bootstrap(),
        &canonical,
        total,
        Duration::from_secs(300),
        Duration::from_secs(3),
    );
    let ready = readyz(first.admin).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let seen = events_once(&records);
    let expected: HashSet<String> = (0..3).flat_map(events).map(|e| e.event_id).collect();
    assert_eq!(records.len(), total, "no event lost, none doubled");
    assert_eq!(seen, expected);
    assert_eq!(ready, Some(200), "the replica left running is ready");
}

/// The events the canonical `records` were made from, asserting that none appears twice.
fn events_once(records: &[rdkafka::message::OwnedMessage]) -> HashSet<String> {
    let mut seen = HashSet::with_capacity(records.len());
    for record in records {
        let event = record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "sb.event.id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("every canonical record names its event");
        assert!(seen.insert(event), "an event appeared twice");
    }
    seen
}
