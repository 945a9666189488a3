//! Exactly once from raw to canonical: the transformer process is killed with SIGKILL several
//! times during a 100,000-event run, and every event still appears exactly once on the
//! canonical topic as a read-committed consumer sees it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
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

    let mut seen = HashSet::with_capacity(EVENTS as usize);
    for record in &records {
        let event = record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "sb.event.id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("every canonical record names its event");
        assert!(seen.insert(event), "an event appeared twice");
    }
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
