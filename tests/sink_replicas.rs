//! Several sink replicas of one target connection, on the real broker and the Pipedrive
//! sandbox:
//! - a second replica joins while the first is delivering, then the first leaves: across
//!   both rebalances each person is created once, each person's updates reach Pipedrive
//!   once each and in the order written, and the group commits past every record;
//! - a key parked by one replica stays parked when its partition moves to the other, which
//!   had started before the key was parked;
//! - a retry-tier partition paused for a due time resumes when due, although a rebalance
//!   came meanwhile and gave it back to the same replica.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::Headers;
use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "replicas-crm-token";
const PEOPLE: u64 = 40;
const VERSIONS: u64 = 4;

/// Kay, a person already in Pipedrive whose updates fail with 500 (`failures` times, or
/// until cleared); her ID and the names Pipedrive reports for changed persons.
async fn kay_in_pipedrive(
    pipedrive: &switchboard_sandbox::pipedrive::PipedriveSandbox,
    failures: Option<u32>,
) -> (u64, PersonNames) {
    let kay = pipedrive.seed_person("Kay Seeded", &["kay@example.com"]);
    pipedrive.control().add_fault(FaultRule {
        endpoint: format!("PATCH /api/v2/persons/{}", kay.id),
        error_rate: 1.0,
        status: 500,
        latency_ms: 0,
        count: failures,
    });
    (kay.id, watch_person_names(pipedrive, TOKEN, "change").await)
}

/// A running sink replica.
struct Replica {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// Starts a sink of `config` whose Kafka clients are `client_id` (how the group's
    /// assignment names its members).
    async fn start(config: &switchboard_core::Config, client_id: &str) -> Self {
        let mut config = config.clone();
        config
            .kafka
            .properties
            .insert("client.id".to_owned(), client_id.to_owned());
        let shutdown = CancellationToken::new();
        let started = switchboard_sink::start(config, shutdown.clone())
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
    let rig = PipedriveSinkRig::new("replicas", TOKEN, "concurrency: 2").await;
    let PipedriveSinkRig {
        pipedrive,
        config,
        writer,
        prefix,
        ..
    } = &rig;
    // Slow enough calls that both rebalances come while records are being delivered.
    pipedrive.control().add_fault(FaultRule {
        endpoint: "*".into(),
        error_rate: 0.0,
        status: 0,
        latency_ms: 60,
        count: None,
    });
    let seen = watch_person_names(pipedrive, TOKEN, "*").await;

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

    let first = Replica::start(config, "replica-first").await;
    assert!(
        eventually(Duration::from_secs(60), || reported() >= total / 5).await,
        "the first replica delivers"
    );
    let second = Replica::start(config, "replica-second").await;
    let group = format!("{prefix}.sink.crm");
    assert!(
        eventually(Duration::from_secs(60), || owned_partitions(
            &group,
            2,
            "replica-second",
            &writer.topic
        )
        .is_some_and(|owned| !owned.is_empty()))
        .await,
        "the second replica joined and took partitions from the first"
    );
    assert!(
        eventually(Duration::from_secs(60), || reported() >= total / 2).await,
        "the replicas deliver after the second one joined"
    );
    assert!(
        reported() < total,
        "the run must still be delivering when the first replica leaves"
    );
    first.stop().await;

    assert_each_update_once_in_order(pipedrive, &seen, PEOPLE, VERSIONS, |n| {
        format!("r{n}@example.com")
    })
    .await;
    assert!(
        rig.committed_past(contacts.len(), Duration::from_secs(30))
            .await,
        "the group committed past every record"
    );
    second.stop().await;
}

/// The partitions of `topic` that the member with `client_id` owns in `group`, once the
/// group is stable with `members` members.
fn owned_partitions(group: &str, members: usize, client_id: &str, topic: &str) -> Option<Vec<i32>> {
    let admin: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    let list = admin
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .ok()?;
    let group = list.groups().first()?;
    if group.state() != "Stable" || group.members().len() != members {
        return None;
    }
    let member = group
        .members()
        .iter()
        .find(|m| m.client_id() == client_id)?;
    Some(assigned_partitions(member.assignment()?, topic))
}

/// Partitions of `topic` in a consumer protocol assignment: version (i16), then topics
/// (i32 count; each a string with an i16 length and an i32 array of partitions).
fn assigned_partitions(bytes: &[u8], topic: &str) -> Vec<i32> {
    let mut at = 2;
    let mut take = |n: usize| {
        let slice = &bytes[at..at + n];
        at += n;
        slice
    };
    let i32_at = |b: &[u8]| i32::from_be_bytes(b.try_into().unwrap());
    let topics = i32_at(take(4));
    let mut found = Vec::new();
    for _ in 0..topics {
        let len = i16::from_be_bytes(take(2).try_into().unwrap()) as usize;
        let name = String::from_utf8_lossy(take(len)).into_owned();
        let count = i32_at(take(4));
        for _ in 0..count {
            let partition = i32_at(take(4));
            if name == topic {
                found.push(partition);
            }
        }
    }
    found
}

/// The partition the sink's producers (librdkafka's default partitioner) pick for `key`,
/// learned by writing it to a scratch topic with `partitions` partitions.
async fn partition_of(prefix: &str, key: &str, partitions: i32) -> i32 {
    let kafka = switchboard_core::config::KafkaConfig {
        bootstrap_servers: kafka_bootstrap(),
        topic_prefix: prefix.to_owned(),
        partitions,
        replication_factor: 1,
        security: Default::default(),
        properties: Default::default(),
    };
    let probe = format!("{prefix}.probe");
    switchboard_core::kafka::ensure_topics(
        &kafka,
        &[switchboard_core::kafka::TopicSpec::new(
            probe.clone(),
            switchboard_core::kafka::Cleanup::Compact,
        )],
    )
    .await
    .unwrap();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    let delivered = producer
        .send(
            rdkafka::producer::FutureRecord::to(&probe)
                .key(key)
                .payload("probe"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    delivered.partition
}

/// Two replicas of `config`'s sink, `replica-first` and `replica-second`, once both have
/// joined; and a contact number whose key (and so its retry-tier records) the first one
/// owns.
async fn two_replicas(config: &switchboard_core::Config, topic: &str) -> (Replica, Replica, u64) {
    let first = Replica::start(config, "replica-first").await;
    let second = Replica::start(config, "replica-second").await;
    let prefix = &config.kafka.topic_prefix;
    let group = format!("{prefix}.sink.crm");
    let mut owned = None;
    assert!(
        eventually(Duration::from_secs(60), || {
            owned = owned_partitions(&group, 2, "replica-first", topic);
            owned.as_ref().is_some_and(|o| !o.is_empty())
        })
        .await,
        "both replicas joined and the first owns part of the canonical topic"
    );
    let owned = owned.unwrap();
    for n in 0..50 {
        let c = shop_contact(n, "kay@example.com", "One", "Parked");
        if owned.contains(&partition_of(prefix, &c.id, config.kafka.partitions).await) {
            return (first, second, n);
        }
    }
    panic!("no key among 50 in the first replica's partitions {owned:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_parked_by_one_replica_stays_parked_when_another_takes_its_partition() {
    let rig = PipedriveSinkRig::new(
        "replicas-parked",
        TOKEN,
        "in_place_attempts: 1, max_backoff_ms: 50, retry_tiers_secs: [1], concurrency: 2",
    )
    .await;
    let PipedriveSinkRig {
        pipedrive,
        config,
        writer,
        prefix,
        ..
    } = &rig;
    let (first, second, kay) = two_replicas(config, &writer.topic).await;

    let (kay_id, names) = kay_in_pipedrive(pipedrive, None).await;
    let changes = || names_of(&names, kay_id);

    // The first replica fails Kay's update through the tier into the DLQ: Kay is blocked.
    writer
        .send(&shop_contact(kay, "kay@example.com", "One", "Parked"), 1)
        .await;
    let dlq = format!("{prefix}.dlq.crm");
    let failed = read_topic(
        &kafka_bootstrap(),
        &dlq,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    assert_eq!(failed.len(), 1, "Kay's update reached the DLQ");

    // The target is fixed, and the first replica leaves: the second takes Kay's partition.
    // Kay's next update must wait behind the one in the DLQ, not overtake it.
    pipedrive.control().clear_faults();
    first.stop().await;
    writer
        .send(&shop_contact(kay, "kay@example.com", "Two", "Parked"), 1)
        .await;
    // A later record of another person, delivered by the second replica: by then Kay's
    // record has been handled.
    writer
        .send(
            &shop_contact(kay + 1000, "other@example.com", "Other", "Flow"),
            1,
        )
        .await;
    assert!(
        eventually(Duration::from_secs(60), || pipedrive
            .creates_for_email("other@example.com")
            == 1)
        .await,
        "the second replica delivers"
    );
    let in_dlq = read_topic(
        &kafka_bootstrap(),
        &dlq,
        2,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(
        in_dlq.len(),
        2,
        "Kay's second update parked behind the first"
    );
    let parked = in_dlq.iter().max_by_key(|m| m.offset()).and_then(|m| {
        m.headers()?
            .iter()
            .find(|h| h.key == "sb.parked")
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    });
    assert_eq!(parked.as_deref(), Some("true"));
    assert!(
        changes().is_empty(),
        "nothing of Kay's reached Pipedrive ahead of the blocked update: {:?}",
        changes()
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_tier_partition_paused_for_a_due_time_resumes_after_a_rebalance() {
    let rig = PipedriveSinkRig::new(
        "replicas-due",
        TOKEN,
        "in_place_attempts: 1, max_backoff_ms: 50, retry_tiers_secs: [8], concurrency: 2",
    )
    .await;
    let PipedriveSinkRig {
        pipedrive,
        config,
        writer,
        prefix,
        ..
    } = &rig;
    // Only the first replica runs while Kay's update fails once and waits in the tier.
    let (first, second, kay) = two_replicas(config, &writer.topic).await;
    second.stop().await;
    let (kay_id, names) = kay_in_pipedrive(pipedrive, Some(1)).await;
    let changes = || names_of(&names, kay_id);
    writer
        .send(&shop_contact(kay, "kay@example.com", "One", "Parked"), 1)
        .await;
    let tier = format!("{prefix}.retry.crm.0");
    let waiting = read_topic(
        &kafka_bootstrap(),
        &tier,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    assert_eq!(waiting.len(), 1, "Kay's update waits in the tier");
    // The first replica reads it, sees it is not due and pauses the partition; then a
    // replica joins, and the range assignment gives the first its partitions back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = Replica::start(config, "replica-second").await;
    assert!(
        eventually(Duration::from_secs(60), || changes().len() == 1).await,
        "Kay's update was retried once due, after the rebalance: {:?}",
        changes()
    );
    assert_eq!(changes().as_slice(), ["One"]);
    again.stop().await;
    first.stop().await;
}
