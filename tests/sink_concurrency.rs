//! Concurrency within one target connection, on the real broker and the Pipedrive sandbox:
//! with `sink.concurrency: 4` the target sees calls overlap, never more than four at once,
//! while each person's updates still arrive in the order they were written, each person is
//! created once, and the group commits past every record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "concurrency-crm-token";
const PEOPLE: u64 = 30;
const VERSIONS: u64 = 4;

/// The rig, with every Pipedrive call taking 30 ms (one lane alone would never have two in
/// flight) and the sink at concurrency 4.
struct Rig(PipedriveSinkRig);

impl std::ops::Deref for Rig {
    type Target = PipedriveSinkRig;
    fn deref(&self) -> &PipedriveSinkRig {
        &self.0
    }
}

impl Rig {
    async fn new(test: &str) -> Self {
        let rig = PipedriveSinkRig::new(test, TOKEN, "concurrency: 4").await;
        rig.pipedrive.control().add_fault(FaultRule {
            endpoint: "*".into(),
            error_rate: 0.0,
            status: 0,
            latency_ms: 30,
            count: None,
        });
        Self(rig)
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

    assert_each_update_once_in_order(pipedrive, &seen, PEOPLE, VERSIONS, |n| {
        format!("c{n}@example.com")
    })
    .await;
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
