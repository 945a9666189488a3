//! Exactly once at the target: the sink process is SIGKILLed ten times during a 10,000-record
//! run, canonical records are duplicated on the topic, and the sink dies between a create and
//! its xref link (a fault hook); every person still exists exactly once in Pipedrive. The
//! sink runs four lanes, so a kill also catches records finished out of order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_core::canonical::Contact;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_tests::*;

const TOKEN: &str = "eo-crm-token";

fn contact(n: u64) -> Contact {
    shop_contact(
        n,
        &format!("eo{n}@example.com"),
        "Exactly",
        &format!("Once{n}"),
    )
}

struct Rig {
    prefix: String,
    _dir: tempfile::TempDir,
    pipedrive: PipedriveSandbox,
    config_file: std::path::PathBuf,
    binary: std::path::PathBuf,
    canonical: String,
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
        let yaml = pipedrive_sink_yaml(
            &prefix,
            dir.path(),
            &pipedrive.base_url(),
            TOKEN,
            UNPACED_PIPEDRIVE,
            // Four records in flight: a kill leaves later records finished before earlier ones.
            "max_backoff_ms: 30000, concurrency: 4",
        );
        let config_file = dir.path().join("sink.yaml");
        std::fs::write(&config_file, &yaml).unwrap();
        Self {
            binary: service_binary("switchboard-sink", "switchboard-sink"),
            canonical: format!("{prefix}.canonical.contact"),
            prefix,
            _dir: dir,
            pipedrive,
            config_file,
        }
    }

    fn spawn(&self, fault: Option<u64>) -> std::process::Child {
        let mut command = std::process::Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config_file)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null());
        if let Some(n) = fault {
            command.env("SB_FAULT_ABORT_AFTER_CREATES", n.to_string());
        }
        command.spawn().unwrap()
    }

    /// Writes contacts `range` (each `copies` times, as a duplicating upstream would).
    async fn publish(&self, range: std::ops::Range<u64>, copies: usize) {
        let kafka = load(&format!(
            "kafka: {{bootstrap_servers: \"{}\"}}\nregistry: {{url: \"{}\"}}\n",
            kafka_bootstrap(),
            registry_url()
        ))
        .kafka;
        switchboard_core::kafka::ensure_topics(
            &kafka,
            &[switchboard_core::kafka::TopicSpec::new(
                self.canonical.clone(),
                switchboard_core::kafka::Cleanup::Compact,
            )],
        )
        .await
        .unwrap();
        let contacts: Vec<Contact> = range.map(contact).collect();
        ContactWriter::new(&self.prefix)
            .send_all(&contacts, copies)
            .await;
    }

    fn assert_each_once(&self, n: u64) {
        let persons = self.pipedrive.persons();
        assert_eq!(persons.len() as u64, n, "every record arrived, none twice");
        for i in 0..n {
            assert_eq!(
                self.pipedrive
                    .creates_for_email(&format!("eo{i}@example.com")),
                1,
                "eo{i} created exactly once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_sigkills_during_ten_thousand_records_create_each_person_once() {
    const N: u64 = 10_000;
    const KILLS: u64 = 10;
    let rig = Rig::new("sink-kills").await;
    let mut sink = rig.spawn(None);
    // Every record twice on the topic: duplicates from upstream are absorbed too.
    rig.publish(0..N, 2).await;
    for kill in 1..=KILLS {
        let target = (N * kill / (KILLS + 1)) as usize;
        assert!(
            eventually(Duration::from_secs(300), || rig.pipedrive.total_creates()
                >= target)
            .await,
            "progress before kill {kill}"
        );
        sink.kill().unwrap(); // SIGKILL: no drain, no commit
        sink.wait().unwrap();
        sink = rig.spawn(None);
    }
    let done = eventually(Duration::from_secs(600), || {
        rig.pipedrive.total_creates() >= N as usize
    })
    .await;
    // Let redeliveries after the last restart settle before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sink.kill().unwrap();
    sink.wait().unwrap();
    assert!(done, "all records delivered");
    rig.assert_each_once(N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_create_and_xref_link_does_not_create_twice() {
    const N: u64 = 20;
    let rig = Rig::new("sink-crash-window").await;
    rig.publish(0..N, 1).await;
    // Aborts right after its 5th create, before linking it.
    let mut crashing = rig.spawn(Some(5));
    let status = crashing.wait().unwrap();
    assert!(!status.success(), "the fault hook aborted the sink");
    // The other three lanes may have created theirs at the same moment, unlinked too.
    let created = rig.pipedrive.total_creates();
    assert!(
        (5..=8).contains(&created),
        "{created} created before the abort"
    );
    let mut sink = rig.spawn(None);
    let done = eventually(Duration::from_secs(120), || {
        rig.pipedrive.persons().len() as u64 == N
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.kill().unwrap();
    sink.wait().unwrap();
    assert!(done);
    rig.assert_each_once(N);
}
