//! Per-key order under failure, on the real broker and the Pipedrive sandbox: a key whose
//! updates keep failing moves through the retry tiers to the DLQ, its later records wait
//! behind it (parked, in order) while other keys keep flowing, and after a redrive the key's
//! records reach the target in their original order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "parking-crm-token";

fn contact(n: u64, email: &str, first_name: &str) -> Contact {
    shop_contact(n, email, first_name, "Parked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_key_waits_in_order_while_others_flow_and_a_redrive_keeps_its_order() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("parking");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
        .await
        .unwrap();
    let stuck = pipedrive.seed_person("Kay Seeded", &["kay@example.com"]);
    // Every update of this one person fails with 500 until the fault is cleared.
    pipedrive.control().add_fault(FaultRule {
        endpoint: format!("PATCH /api/v2/persons/{}", stuck.id),
        error_rate: 1.0,
        status: 500,
        latency_ms: 0,
        count: None,
    });

    // Pipedrive reports each change of the person: the order the target saw them in.
    let names = watch_person_names(&pipedrive, TOKEN, "change").await;
    let changes = || names_of(&names, stuck.id);

    let yaml = pipedrive_sink_yaml(
        &prefix,
        dir.path(),
        &pipedrive.base_url(),
        TOKEN,
        UNPACED_PIPEDRIVE,
        // Four lanes: the blocked key holds up only its own records, whatever lane it shares.
        "in_place_attempts: 2, max_backoff_ms: 100, retry_tiers_secs: [1, 1], concurrency: 4",
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();

    let writer = ContactWriter::new(&prefix);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    let send = |c: Contact| {
        let writer = writer.clone();
        async move { writer.send(&c, 1).await }
    };
    // The stuck person's three updates, with other people's records before and between.
    send(contact(1, "kay@example.com", "One")).await;
    for n in 10..15 {
        send(contact(n, &format!("p{n}@example.com"), "Other")).await;
    }
    send(contact(1, "kay@example.com", "Two")).await;
    send(contact(1, "kay@example.com", "Three")).await;
    for n in 15..20 {
        send(contact(n, &format!("p{n}@example.com"), "Other")).await;
    }

    // Other keys flow while the stuck key's records end in the DLQ: the failed one after
    // both tiers, the two later ones parked behind it.
    let dlq = format!("{prefix}.dlq.crm");
    let parked = read_topic(
        &kafka_bootstrap(),
        &dlq,
        3,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(parked.len(), 3, "the failed record and its two followers");
    assert!(
        eventually(Duration::from_secs(30), || pipedrive.persons().len() == 11).await,
        "the ten other people were delivered while the key was blocked"
    );
    let flag = |m: &rdkafka::message::OwnedMessage, name: &str| {
        m.headers()
            .and_then(|h| h.iter().filter(|h| h.key == name).last())
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let mut in_dlq = parked.clone();
    in_dlq.sort_by_key(|m| m.offset());
    assert_eq!(
        flag(&in_dlq[0], "sb.error.class").as_deref(),
        Some("transient")
    );
    assert_eq!(flag(&in_dlq[0], "sb.parked"), None);
    assert_eq!(flag(&in_dlq[1], "sb.parked").as_deref(), Some("true"));
    assert_eq!(flag(&in_dlq[2], "sb.parked").as_deref(), Some("true"));
    assert_eq!(
        pipedrive.person(stuck.id).unwrap().first_name.as_deref(),
        Some("Kay")
    );
    assert!(changes().is_empty());

    // The target is fixed; an operator redrives the key: its DLQ records, in order, go to
    // the first tier marked as a redrive.
    pipedrive.control().clear_faults();
    for m in &in_dlq {
        let headers = m
            .headers()
            .cloned()
            .unwrap_or_else(OwnedHeaders::new)
            .insert(Header {
                key: "sb.redrive.action",
                value: Some("redrive"),
            })
            .insert(Header {
                key: "sb.retry.due",
                value: Some("0"),
            });
        producer
            .send(
                FutureRecord::to(&format!("{prefix}.retry.crm.0"))
                    .key(m.key().unwrap())
                    .payload(m.payload().unwrap())
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || changes().len() >= 3).await,
        "the three updates arrived"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(changes(), ["One", "Two", "Three"]);
    assert_eq!(
        pipedrive.person(stuck.id).unwrap().first_name.as_deref(),
        Some("Three")
    );
    assert_eq!(pipedrive.total_creates(), 10, "no one was created twice");
    // The key is released: a new record of it goes straight through.
    send(contact(1, "kay@example.com", "Four")).await;
    assert!(
        eventually(Duration::from_secs(30), || changes().len() == 4).await,
        "the released key flows again"
    );
}
