//! `switchboard lag` and `switchboard replay` on the real broker.
//!
//! - Lag: a group with known committed offsets on a topic whose records carry known
//!   timestamps; the CLI's numbers must equal what Kafka's own `ConsumerGroupCommand
//!   --describe` prints for the same group, and the seconds must be the age of the first
//!   unconsumed record.
//! - Replay: a caught-up group (the sink that was stopped while records arrived is the
//!   same shape), a dry run whose per-partition counts are checked against what was
//!   produced, a refusal while the group has a member, then the rewind, after which the
//!   group reads exactly the records after the time, once each. Selective replay by key
//!   re-publishes exactly that key's records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use switchboard_cli::cluster::ClusterArgs;
use switchboard_cli::lag::LagArgs;
use switchboard_cli::replay::ReplayArgs;
use switchboard_tests::*;

fn cluster(prefix: &str) -> ClusterArgs {
    ClusterArgs {
        config: None,
        bootstrap: kafka_bootstrap(),
        prefix: prefix.to_owned(),
    }
}

fn now_ms() -> i64 {
    switchboard_core::lag::now_millis()
}

async fn create_topic(topic: &str, partitions: i32) {
    let yaml = format!(
        "kafka: {{bootstrap_servers: '{}', partitions: {partitions}}}\nregistry: {{url: 'http://unused'}}\n",
        kafka_bootstrap()
    );
    let kafka = load(&yaml).kafka;
    switchboard_core::kafka::ensure_topics(
        &kafka,
        &[switchboard_core::kafka::TopicSpec::new(
            topic,
            switchboard_core::kafka::Cleanup::Delete(Duration::from_secs(86_400)),
        )],
    )
    .await
    .unwrap();
}

/// Produces `(key, timestamp)` records; returns (partition, offset, key, ts) per record.
async fn produce(topic: &str, records: &[(String, i64)]) -> Vec<(i32, i64, String, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut out = Vec::new();
    for (i, (key, ts)) in records.iter().enumerate() {
        let value = format!("v{i}");
        let delivery = producer
            .send(
                FutureRecord::to(topic)
                    .key(key)
                    .payload(&value)
                    .timestamp(*ts),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .unwrap();
        out.push((delivery.partition, delivery.offset, key.clone(), *ts));
    }
    out
}

fn commit(group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for (p, o) in offsets {
        list.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Kafka's own view: `ConsumerGroupCommand --describe`, as (partition → (current, end, lag)).
fn kafka_describe(group: &str, topic: &str) -> BTreeMap<i32, (i64, i64, i64)> {
    let out = Command::new(stack_script())
        .args([
            "kafka-cli",
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            &kafka_bootstrap(),
            "--describe",
            "--group",
            group,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() >= 6 && cols[0] == group && cols[1] == topic).then(|| {
                (
                    cols[2].parse().unwrap(),
                    (
                        cols[3].parse().unwrap(),
                        cols[4].parse().unwrap(),
                        cols[5].parse().unwrap(),
                    ),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_agrees_with_kafkas_consumer_group_command() {
    ensure_stack();
    let prefix = unique_prefix("lag");
    let topic = format!("{prefix}.canonical.contact");
    let group = format!("{prefix}.sink.crm");
    create_topic(&topic, 3).await;
    let now = now_ms();
    // 30 records, the oldest 10 minutes old, one second apart.
    let records: Vec<(String, i64)> = (0..30)
        .map(|i| (format!("k{i}"), now - 600_000 + i * 1000))
        .collect();
    let produced = produce(&topic, &records).await;
    let mut per_partition: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for (p, o, _, ts) in &produced {
        per_partition.entry(*p).or_default().push((*o, *ts));
    }
    // Partition 0 fully consumed; the others consumed up to their third record.
    let mut commits = BTreeMap::new();
    let mut expected_seconds = BTreeMap::new();
    for (p, recs) in &per_partition {
        let at = if *p == 0 {
            recs.len() as i64
        } else {
            2.min(recs.len() as i64)
        };
        commits.insert(*p, at);
        let age = recs
            .get(at as usize)
            .map_or(0, |(_, ts)| (now_ms() - ts) / 1000);
        expected_seconds.insert(*p, age);
    }
    commit(&group, &topic, &commits);

    let report = switchboard_cli::lag::run(&LagArgs {
        group: Some(group.clone()),
        all_groups: false,
        cluster: cluster(&prefix),
    })
    .await
    .unwrap();
    let kafka = kafka_describe(&group, &topic);
    assert_eq!(kafka.len(), per_partition.len(), "{kafka:?}");
    let ours: BTreeMap<i32, (i64, i64, i64)> = report
        .partitions
        .iter()
        .map(|r| (r.partition, (r.committed, r.end, r.lag)))
        .collect();
    assert_eq!(ours, kafka, "our lag vs. ConsumerGroupCommand");
    assert!(ours.values().any(|(_, _, lag)| *lag > 0));
    for r in &report.partitions {
        let want = expected_seconds[&r.partition];
        assert!(
            (r.lag_seconds - want).abs() <= 2,
            "partition {}: lag {} s, first unconsumed record is {want} s old",
            r.partition,
            r.lag_seconds
        );
        if r.lag == 0 {
            assert_eq!(r.lag_seconds, 0, "caught up means 0 s");
        } else {
            assert!(r.lag_seconds >= 500, "{r:?}");
        }
    }
    // The group shows up in the prefix-wide listing too.
    let all = switchboard_cli::lag::run(&LagArgs {
        group: None,
        all_groups: false,
        cluster: cluster(&prefix),
    })
    .await
    .unwrap();
    assert_eq!(all.partitions.len(), report.partitions.len());
}

fn replay_args(prefix: &str, group: &str, topic: &str) -> ReplayArgs {
    ReplayArgs {
        group: Some(group.to_owned()),
        topic: vec![topic.to_owned()],
        to_datetime: None,
        to_offset: None,
        to_earliest: false,
        key: None,
        record: None,
        dry_run: true,
        cluster: cluster(prefix),
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_after_an_outage_rewinds_exactly_the_outage() {
    ensure_stack();
    let prefix = unique_prefix("replay");
    let topic = format!("{prefix}.canonical.contact");
    let group = format!("{prefix}.sink.crm");
    create_topic(&topic, 3).await;
    let now = now_ms();
    // 24 records delivered long ago, then 36 that arrived during a 5-minute outage.
    let outage_start = now - 300_000;
    let mut records: Vec<(String, i64)> = (0..24)
        .map(|i| (format!("k{}", i % 8), now - 3_600_000 + i * 1000))
        .collect();
    records.extend((0..36).map(|i| (format!("k{}", i % 8), outage_start + i * 8000)));
    let produced = produce(&topic, &records).await;
    let mut ends = BTreeMap::new();
    let mut outage_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _, ts) in &produced {
        ends.insert(*p, (*o + 1).max(ends.get(p).copied().unwrap_or(0)));
        if *ts >= outage_start {
            *outage_per_partition.entry(*p).or_default() += 1;
        }
    }
    // The sink had delivered everything (its group is caught up), then the target lost it.
    commit(&group, &topic, &ends);

    // Dry run: the counts per partition are the outage's records, and nothing changes.
    let mut args = replay_args(&prefix, &group, &topic);
    args.to_datetime = Some(rfc3339(outage_start));
    let dry = switchboard_cli::replay::run(&args).await.unwrap();
    assert!(!dry.applied && dry.refused.is_none(), "{dry:?}");
    let counts: BTreeMap<i32, i64> = dry
        .partitions
        .iter()
        .filter(|p| p.records > 0)
        .map(|p| (p.partition, p.records))
        .collect();
    assert_eq!(counts, outage_per_partition, "dry-run counts per partition");
    assert_eq!(dry.total(), 36);
    assert_eq!(
        committed(&group, &topic, 3),
        ends,
        "a dry run changes nothing"
    );

    // Refused while the group has an active member.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            let _ = member.poll(Duration::from_millis(100));
            !member.assignment().unwrap().elements().is_empty()
        })
        .await
    );
    args.dry_run = false;
    let refused = switchboard_cli::replay::run(&args).await.unwrap();
    assert!(refused.refused.is_some() && !refused.applied, "{refused:?}");
    assert_eq!(committed(&group, &topic, 3), ends);
    member.unsubscribe();
    drop(member);
    assert!(
        eventually(Duration::from_secs(30), || {
            let k = load(&format!(
                "kafka: {{bootstrap_servers: '{}'}}\nregistry: {{url: 'http://unused'}}\n",
                kafka_bootstrap()
            ))
            .kafka;
            switchboard_core::lag::members(&k, &group).unwrap() == 0
        })
        .await
    );

    // Applied: the group now reads exactly the outage's records, each once.
    let applied = switchboard_cli::replay::run(&args).await.unwrap();
    assert!(applied.applied, "{applied:?}");
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    reader.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && seen.len() < 36 {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    while let Some(Ok(m)) = reader.poll(Duration::from_millis(500)) {
        seen.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
    }
    let mut want: Vec<String> = (24..60).map(|i| format!("v{i}")).collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "the outage's records, each exactly once");

    // --to-offset: the dry run counts end - offset per partition.
    drop(reader);
    let mut by_offset = replay_args(&prefix, &group, &topic);
    by_offset.to_offset = Some(5);
    let plan = switchboard_cli::replay::run(&by_offset).await.unwrap();
    for p in &plan.partitions {
        assert_eq!(p.new, Some(5.min(ends[&p.partition])));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn selective_replay_republishes_one_key_in_order() {
    ensure_stack();
    let prefix = unique_prefix("replay-key");
    let topic = format!("{prefix}.raw.shop.customers");
    create_topic(&topic, 3).await;
    let now = now_ms();
    let records: Vec<(String, i64)> = (0..40)
        .map(|i| (format!("c{}", i % 5), now - 60_000 + i))
        .collect();
    produce(&topic, &records).await;
    let mut args = replay_args(&prefix, "unused", &topic);
    args.group = None;
    args.key = Some("c3".to_owned());
    let dry = switchboard_cli::replay::run(&args).await.unwrap();
    assert_eq!(dry.total(), 8);
    assert_eq!(
        topic_size(&kafka_bootstrap(), &topic),
        40,
        "dry run writes nothing"
    );
    args.dry_run = false;
    let done = switchboard_cli::replay::run(&args).await.unwrap();
    assert!(done.applied);
    let all = read_topic(
        &kafka_bootstrap(),
        &topic,
        48,
        Duration::from_secs(20),
        Duration::from_secs(1),
    );
    assert_eq!(all.len(), 48);
    let replayed: Vec<String> = all
        .iter()
        .filter(|m| switchboard_core::republish::header(*m, "sb.replayed.from").is_some())
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    let want: Vec<String> = (0..40)
        .filter(|i| i % 5 == 3)
        .map(|i| format!("v{i}"))
        .collect();
    assert_eq!(replayed, want, "only key c3, in its original order");
}

/// The operator's replay after an outage, through the real sink: the sink was stopped while
/// new contacts and updates arrived; its group is rewound to before its last run (so it
/// reads again what it had delivered too), and restarted. The target ends with every
/// contact exactly once, at its newest version: check-before-create turns every re-read
/// record into an update, never a second person.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_into_a_restarted_sink_creates_no_duplicate_at_the_target() {
    let world = World::new("replay-sink", unthrottled_pipedrive(CRM_TOKEN)).await;
    let writer = ContactWriter::new(&world.prefix);
    let email = |i: u64| format!("replay{i}@example.com");
    let before_first_run = now_ms() - 1000;

    let first_run = tokio_util::sync::CancellationToken::new();
    let sink = switchboard_sink::start(load(&world.yaml), first_run.clone())
        .await
        .unwrap();
    let first: Vec<_> = (0..20)
        .map(|i| shop_contact(i, &email(i), "Ada", "First"))
        .collect();
    writer.send_all(&first, 1).await;
    assert!(
        eventually(Duration::from_secs(60), || world.pipedrive.persons().len()
            == 20)
        .await,
        "the first run delivered"
    );
    first_run.cancel();
    sink.task.await.unwrap().unwrap();

    // The outage: 10 new contacts and 5 updates arrive while the sink is stopped.
    let mut during: Vec<_> = (20..30)
        .map(|i| shop_contact(i, &email(i), "Ada", "New"))
        .collect();
    during.extend((0..5).map(|i| shop_contact(i, &email(i), "Ada", "Updated")));
    writer.send_all(&during, 1).await;

    let group = world.sink_group();
    let mut args = replay_args(&world.prefix, &group, &writer.topic);
    args.to_datetime = Some(rfc3339(before_first_run));
    let dry = switchboard_cli::replay::run(&args).await.unwrap();
    assert_eq!(
        dry.total(),
        20,
        "the dry run counts the delivered records that will be read again: {dry:?}"
    );
    args.dry_run = false;
    let mut applied = false;
    for _ in 0..60 {
        // The stopped sink's member may take a moment to leave the group.
        let report = switchboard_cli::replay::run(&args).await.unwrap();
        if report.applied {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(applied, "the replay was applied once the group was empty");

    world.start_sink().await;
    let delivered = |i: u64, last: &str| {
        world
            .pipedrive
            .person_by_email(&email(i))
            .is_some_and(|p| p.last_name.as_deref() == Some(last))
    };
    assert!(
        eventually(Duration::from_secs(90), || (0..5)
            .all(|i| delivered(i, "Updated"))
            && (20..30).all(|i| delivered(i, "New")))
        .await,
        "the replay delivered the outage's records"
    );
    let records = read_topic(
        &kafka_bootstrap(),
        &writer.topic,
        100,
        Duration::from_secs(5),
        Duration::ZERO,
    );
    assert!(
        eventually(Duration::from_secs(60), || group_caught_up(
            &kafka_bootstrap(),
            &group,
            &records
        ))
        .await,
        "the sink read every replayed record"
    );
    assert_eq!(
        world.pipedrive.persons().len(),
        30,
        "every contact once, none created twice"
    );
    assert!((5..20).all(|i| delivered(i, "First")));
}
