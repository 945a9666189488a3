//! Concurrency within one target connection, on the real broker and the Pipedrive sandbox:
//! with `sink.concurrency: 4` the target sees calls overlap, never more than four at once,
//! while each person's updates still arrive in the order they were written, each person is
//! created once, and the group commits past every record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "concurrency-crm-token";
const PEOPLE: u64 = 30;
const VERSIONS: u64 = 4;

/// A Pipedrive sandbox whose every call takes 30 ms (one lane alone would never have two
/// in flight), a sink configuration at concurrency 4, and the canonical topic, created.
struct Rig {
    _dir: tempfile::TempDir,
    pipedrive: PipedriveSandbox,
    writer: ContactWriter,
    config: switchboard_core::Config,
    prefix: String,
}

impl Rig {
    async fn new(test: &str) -> Self {
        init_logging();
        ensure_stack();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix(test);
        let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
            .await
            .unwrap();
        pipedrive.control().add_fault(FaultRule {
            endpoint: "*".into(),
            error_rate: 0.0,
            status: 0,
            latency_ms: 30,
            count: None,
        });
        let yaml = pipedrive_sink_yaml(
            &prefix,
            dir.path(),
            &pipedrive.base_url(),
            TOKEN,
            "concurrency: 4",
        );
        let config = load(&yaml);
        let writer = ContactWriter::new(&prefix);
        switchboard_core::kafka::ensure_topics(
            &config.kafka,
            &[switchboard_core::kafka::TopicSpec::new(
                writer.topic.clone(),
                switchboard_core::kafka::Cleanup::Compact,
            )],
        )
        .await
        .unwrap();
        Self {
            _dir: dir,
            pipedrive,
            writer,
            config,
            prefix,
        }
    }

    /// Whether, within `wait`, the sink's group committed past all `n` records on the topic.
    async fn committed_past(&self, n: usize, wait: Duration) -> bool {
        let records = read_topic(
            &kafka_bootstrap(),
            &self.writer.topic,
            n,
            Duration::from_secs(30),
            Duration::ZERO,
        );
        assert_eq!(records.len(), n, "every record is on the topic");
        let group = format!("{}.sink.crm", self.prefix);
        eventually(wait, || {
            group_caught_up(&kafka_bootstrap(), &group, &records)
        })
        .await
    }

    /// Starts the sink; it stops when the returned guard is dropped.
    async fn start_sink(&self) -> tokio_util::sync::DropGuard {
        let shutdown = CancellationToken::new();
        switchboard_sink::start(self.config.clone(), shutdown.clone())
            .await
            .unwrap();
        shutdown.drop_guard()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_lanes_overlap_calls_and_keep_each_persons_updates_in_order() {
    let rig = Rig::new("concurrency").await;
    let pipedrive = &rig.pipedrive;
    let seen = watch_person_names(pipedrive, TOKEN, "*").await;

    // Every version of every person on the topic before the sink starts, interleaved:
    // V1 of everyone, then V2 of everyone, and so on.
    let contacts: Vec<Contact> = (1..=VERSIONS)
        .flat_map(|v| {
            (0..PEOPLE).map(move |n| {
                shop_contact(n, &format!("c{n}@example.com"), &format!("V{v}"), "Lane")
            })
        })
        .collect();
    rig.writer.send_all(&contacts, 1).await;
    let _sink = rig.start_sink().await;

    let expected: Vec<String> = (1..=VERSIONS).map(|v| format!("V{v}")).collect();
    let all_reported = || {
        let seen = seen.lock().unwrap();
        seen.len() as u64 == PEOPLE && seen.values().all(|names| names.len() >= expected.len())
    };
    assert!(
        eventually(Duration::from_secs(120), all_reported).await,
        "every version of every person reached Pipedrive: {:?}",
        seen.lock().unwrap()
    );
    // Late or duplicate reports would show up here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (id, names) in seen.lock().unwrap().iter() {
        assert_eq!(
            names, &expected,
            "person {id}'s updates in the order written"
        );
    }
    for n in 0..PEOPLE {
        assert_eq!(
            pipedrive.creates_for_email(&format!("c{n}@example.com")),
            1,
            "c{n} created once"
        );
    }
    let peak = pipedrive.control().counters().peak_in_flight;
    assert!(
        (2..=4).contains(&peak),
        "calls overlapped, at most four at once: peak {peak}"
    );

    assert!(
        rig.committed_past(contacts.len(), Duration::from_secs(30))
            .await,
        "the sink committed past every record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_one_email_in_different_lanes_create_one_person() {
    let rig = Rig::new("concurrency-claims").await;
    // Twelve e-mails, each on three canonical records (three source customers) written
    // side by side: different keys, so different lanes at the same moment, matched by
    // Pipedrive on one e-mail.
    const EMAILS: u64 = 12;
    let contacts: Vec<Contact> = (0..EMAILS)
        .flat_map(|n| {
            (0..3).map(move |copy| {
                shop_contact(
                    100 * copy + n,
                    &format!("shared{n}@example.com"),
                    &format!("Copy{copy}"),
                    "Claim",
                )
            })
        })
        .collect();
    rig.writer.send_all(&contacts, 1).await;
    let _sink = rig.start_sink().await;

    assert!(
        rig.committed_past(contacts.len(), Duration::from_secs(120))
            .await,
        "every record was delivered"
    );
    assert_eq!(rig.pipedrive.persons().len() as u64, EMAILS);
    for n in 0..EMAILS {
        assert_eq!(
            rig.pipedrive
                .creates_for_email(&format!("shared{n}@example.com")),
            1,
            "shared{n} created once"
        );
    }
    assert!(rig.pipedrive.control().counters().peak_in_flight >= 2);
}
