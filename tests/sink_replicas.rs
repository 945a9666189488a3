//! Several sink replicas of one target connection, on the real broker and the Pipedrive
//! sandbox: a second replica joins while the first is delivering, then the first leaves.
//! Across both rebalances each person is created once, each person's updates reach
//! Pipedrive once each and in the order written, and the group commits past every record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "replicas-crm-token";
const PEOPLE: u64 = 40;
const VERSIONS: u64 = 4;

/// First names of each person, in the order Pipedrive reported them (create, then changes).
type Seen = Arc<Mutex<BTreeMap<u64, Vec<String>>>>;

async fn receive(State(seen): State<Seen>, Json(body): Json<serde_json::Value>) {
    if let (Some(id), Some(name)) = (
        body["data"]["id"].as_u64(),
        body["data"]["first_name"].as_str(),
    ) {
        seen.lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(name.to_owned());
    }
}

/// Reports of every change Pipedrive makes to a person, collected in `seen`.
async fn watch_persons(pipedrive: &PipedriveSandbox, seen: &Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let subscribed = reqwest::Client::new()
        .post(format!("{}/v1/webhooks", pipedrive.base_url()))
        .header("x-api-token", TOKEN)
        .json(&serde_json::json!({"subscription_url": hook, "event_action": "*", "event_object": "person",
            "http_auth_user": "u", "http_auth_password": "p"}))
        .send()
        .await
        .unwrap();
    assert!(subscribed.status().is_success());
}

/// A running sink replica.
struct Replica {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn start(config: &switchboard_core::Config) -> Self {
        let shutdown = CancellationToken::new();
        let started = switchboard_sink::start(config.clone(), shutdown.clone())
            .await
            .unwrap();
        Self {
            shutdown,
            task: started.task,
        }
    }

    /// Stops the replica and waits until it has committed and left the group.
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_joining_and_one_leaving_deliver_each_update_once_in_order() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("replicas");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
        .await
        .unwrap();
    // Slow enough calls that both rebalances come while records are being delivered.
    pipedrive.control().add_fault(FaultRule {
        endpoint: "*".into(),
        error_rate: 0.0,
        status: 0,
        latency_ms: 60,
        count: None,
    });
    let seen = Seen::default();
    watch_persons(&pipedrive, &seen).await;
    let config = load(&pipedrive_sink_yaml(
        &prefix,
        dir.path(),
        &pipedrive.base_url(),
        TOKEN,
        "concurrency: 2",
    ));
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

    // Every version of every person on the topic before the first replica starts,
    // interleaved: V1 of everyone, then V2 of everyone, and so on.
    let contacts: Vec<Contact> = (1..=VERSIONS)
        .flat_map(|v| {
            (0..PEOPLE).map(move |n| {
                shop_contact(n, &format!("r{n}@example.com"), &format!("V{v}"), "Replica")
            })
        })
        .collect();
    writer.send_all(&contacts, 1).await;
    let total = (PEOPLE * VERSIONS) as usize;
    let reported = || seen.lock().unwrap().values().map(Vec::len).sum::<usize>();

    let first = Replica::start(&config).await;
    assert!(
        eventually(Duration::from_secs(60), || reported() >= total / 5).await,
        "the first replica delivers"
    );
    let second = Replica::start(&config).await;
    assert!(
        eventually(Duration::from_secs(60), || reported() >= total / 2).await,
        "the replicas deliver after the second one joined"
    );
    assert!(
        reported() < total,
        "the run must still be delivering when the first replica leaves"
    );
    first.stop().await;

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
            "person {id}: each update once, in the order written"
        );
    }
    for n in 0..PEOPLE {
        assert_eq!(
            pipedrive.creates_for_email(&format!("r{n}@example.com")),
            1,
            "r{n} created once"
        );
    }
    let records = read_topic(
        &kafka_bootstrap(),
        &writer.topic,
        contacts.len(),
        Duration::from_secs(30),
        Duration::ZERO,
    );
    let group = format!("{prefix}.sink.crm");
    assert!(
        eventually(Duration::from_secs(30), || group_caught_up(
            &kafka_bootstrap(),
            &group,
            &records
        ))
        .await,
        "the group committed past every record"
    );
    second.stop().await;
}
