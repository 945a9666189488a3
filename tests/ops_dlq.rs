//! `switchboard dlq` on the real broker, against the sink's header protocol: a DLQ holding
//! failed records and their parked followers (as the sink writes them) is listed with the
//! right columns; a redrive writes a key's failed record and then its followers, in DLQ
//! order, to the tier-0 retry topic with `sb.redrive.action: redrive` and `sb.retry.due: 0`;
//! a discard writes the discard marker and redrives the followers; a second redrive sends
//! nothing, because handled records are remembered in `<prefix>.dlq.<conn>.handled`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message};
use switchboard_cli::cluster::ClusterArgs;
use switchboard_cli::dlq::{DlqArgs, DlqCommand};
use switchboard_core::republish::header;
use switchboard_tests::*;

/// (key, value, class if failed (else parked))
const DLQ: &[(&str, &str, Option<&str>)] = &[
    ("A", "a1", Some("data")),
    ("A", "a2", None),
    ("B", "b1", Some("transient")),
    ("A", "a3", None),
    ("B", "b2", None),
    ("C", "c1", Some("data")),
];

async fn fill_dlq(topic: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (key, value, class) in DLQ {
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "sb.original.topic",
                value: Some("x.canonical.contact"),
            })
            .insert(Header {
                key: "sb.retry.due",
                value: Some("1"),
            });
        headers = match class {
            Some(class) => [
                ("sb.error.class", *class),
                ("sb.error.message", "target refused: email missing"),
                ("sb.error.attempts", "3"),
                ("sb.first.failed.at", "2026-11-27T10:00:00Z"),
            ]
            .into_iter()
            .fold(headers, |h, (key, v)| {
                h.insert(Header {
                    key,
                    value: Some(v),
                })
            }),
            None => headers.insert(Header {
                key: "sb.parked",
                value: Some("true"),
            }),
        };
        producer
            .send(
                FutureRecord::to(topic)
                    .key(*key)
                    .payload(*value)
                    .headers(headers),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .unwrap();
    }
}

fn args(prefix: &str) -> DlqArgs {
    DlqArgs {
        connection: "crm".to_owned(),
        class: None,
        key: None,
        since: None,
        id: None,
        dry_run: false,
        cluster: ClusterArgs {
            config: None,
            bootstrap: kafka_bootstrap(),
            prefix: prefix.to_owned(),
        },
    }
}

fn values_and_actions(records: &[OwnedMessage]) -> Vec<(String, String, String)> {
    records
        .iter()
        .map(|m| {
            (
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                header(m, "sb.redrive.action").unwrap(),
                header(m, "sb.retry.due").unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_and_discard_keep_key_order_and_never_resend() {
    ensure_stack();
    let prefix = unique_prefix("dlq");
    let dlq_topic = format!("{prefix}.dlq.crm");
    let retry_topic = format!("{prefix}.retry.crm.0");
    let kafka = load(&format!(
        "kafka: {{bootstrap_servers: '{}', topic_prefix: '{prefix}'}}\nregistry: {{url: 'http://unused'}}\n",
        kafka_bootstrap()
    ))
    .kafka;
    use switchboard_core::kafka::{Cleanup, TopicSpec, ensure_topics};
    let week = Cleanup::Delete(Duration::from_secs(7 * 86_400));
    ensure_topics(
        &kafka,
        &[
            TopicSpec::new(&dlq_topic, week),
            TopicSpec::new(&retry_topic, week),
        ],
    )
    .await
    .unwrap();
    fill_dlq(&dlq_topic).await;

    // list: every record with its class, attempts and whether it is parked.
    let list = switchboard_cli::dlq::run(&DlqCommand::List(args(&prefix)))
        .await
        .unwrap();
    assert_eq!(list.records.len(), 6);
    let a: Vec<(bool, Option<&str>, Option<u32>)> = list
        .records
        .iter()
        .filter(|r| r.entry.key == "A")
        .map(|r| (r.entry.parked, r.entry.class.as_deref(), r.entry.attempts))
        .collect();
    assert_eq!(
        a,
        [
            (false, Some("data"), Some(3)),
            (true, None, None),
            (true, None, None)
        ]
    );
    let mut by_class = args(&prefix);
    by_class.class = Some("transient".to_owned());
    let transient = switchboard_cli::dlq::run(&DlqCommand::List(by_class))
        .await
        .unwrap();
    assert!(transient.records.iter().all(|r| r.entry.key == "B"));

    // A dry run sends nothing.
    let mut a_args = args(&prefix);
    a_args.key = Some("A".to_owned());
    a_args.dry_run = true;
    let dry = switchboard_cli::dlq::run(&DlqCommand::Redrive(a_args))
        .await
        .unwrap();
    assert_eq!((dry.records.len(), dry.sent), (3, 0));
    assert_eq!(topic_size(&kafka_bootstrap(), &retry_topic), 0);

    // Redrive key A: the failed record, then its followers, in DLQ order.
    let mut a_args = args(&prefix);
    a_args.key = Some("A".to_owned());
    let done = switchboard_cli::dlq::run(&DlqCommand::Redrive(a_args))
        .await
        .unwrap();
    assert_eq!(done.sent, 3);
    let retry = read_topic(
        &kafka_bootstrap(),
        &retry_topic,
        3,
        Duration::from_secs(20),
        Duration::from_millis(500),
    );
    let want = |v: &str, a: &str| (v.to_owned(), a.to_owned(), "0".to_owned());
    assert_eq!(
        values_and_actions(&retry),
        [
            want("a1", "redrive"),
            want("a2", "redrive"),
            want("a3", "redrive")
        ]
    );
    assert!(retry.iter().all(|m| m.key() == Some(&b"A"[..])));

    // A second redrive of A sends nothing: it is remembered as handled.
    let mut again = args(&prefix);
    again.key = Some("A".to_owned());
    let again = switchboard_cli::dlq::run(&DlqCommand::Redrive(again))
        .await
        .unwrap();
    assert_eq!(again.sent, 0);

    // Discard B: the discard marker for its failed record, then its follower redriven.
    let mut b_args = args(&prefix);
    b_args.key = Some("B".to_owned());
    let discarded = switchboard_cli::dlq::run(&DlqCommand::Discard(b_args))
        .await
        .unwrap();
    assert_eq!(discarded.sent, 2);
    // Redrive by class: only C is left among the data errors.
    let mut data = args(&prefix);
    data.class = Some("data".to_owned());
    let by_class = switchboard_cli::dlq::run(&DlqCommand::Redrive(data))
        .await
        .unwrap();
    assert_eq!(by_class.sent, 1);

    let retry = read_topic(
        &kafka_bootstrap(),
        &retry_topic,
        6,
        Duration::from_secs(20),
        Duration::from_secs(1),
    );
    let b: Vec<_> = values_and_actions(&retry)
        .into_iter()
        .filter(|(v, _, _)| v.starts_with('b'))
        .collect();
    assert_eq!(b, [want("b1", "discard"), want("b2", "redrive")]);
    assert_eq!(retry.len(), 6, "nothing sent twice");

    // The listing shows what was decided; nothing is left open.
    let list = switchboard_cli::dlq::run(&DlqCommand::List(args(&prefix)))
        .await
        .unwrap();
    let handled: Vec<(&str, Option<&str>)> = list
        .records
        .iter()
        .map(|r| (r.entry.key.as_str(), r.entry.handled.as_deref()))
        .collect();
    assert!(handled.contains(&("B", Some("discard"))));
    assert!(handled.iter().all(|(_, h)| h.is_some()), "{handled:?}");
}

fn customer(id: u64, email: &str, first_name: &str, at: time::OffsetDateTime) -> Vec<u8> {
    let payload = switchboard_sandbox::ShopifyWebhooks::customer_payload(
        id, email, first_name, "Redrive", at,
    );
    serde_json::to_vec(&payload).unwrap()
}

/// The whole way through the real sink: a create the target refuses (422, a data error)
/// goes to the DLQ and the key's three updates are parked behind it, while another key
/// flows on. After the target is fixed, `dlq redrive` brings the person in with the last
/// update's name, created once; a second redrive sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redrive_through_the_real_sink_delivers_the_key_in_order() {
    use switchboard_sandbox::{FaultRule, PipedriveConfig, StatusCode};
    let world = World::new("dlq-sink", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;
    world.pipedrive.control().add_fault(FaultRule::fail_next(
        "POST /api/v2/persons",
        1,
        StatusCode::UNPROCESSABLE_ENTITY,
    ));
    let dlq_topic = format!("{}.dlq.crm", world.prefix);
    let start = time::OffsetDateTime::now_utc();
    let email = "order@example.com";
    let sent = shop
        .send(
            "customers/create",
            &customer(6100, email, "V0", start),
            "wh-c",
        )
        .await
        .unwrap();
    assert_eq!(sent, StatusCode::OK);
    // The sink creates its DLQ topic once it runs, so wait on the topic's size rather
    // than a reader that might start before the topic exists.
    let dlq_size = || topic_size(&kafka_bootstrap(), &dlq_topic);
    assert!(
        eventually(Duration::from_secs(120), || dlq_size() >= 1).await,
        "the refused create is dead-lettered"
    );
    for i in 1..=3i64 {
        let at = start + time::Duration::seconds(i);
        let body = customer(6100, email, &format!("V{i}"), at);
        let status = shop
            .send("customers/update", &body, &format!("wh-u{i}"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    let other = customer(6200, "other@example.com", "Other", start);
    shop.send("customers/create", &other, "wh-o").await.unwrap();
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email("other@example.com")
            .is_some())
        .await,
        "another key flows on"
    );
    assert!(
        eventually(Duration::from_secs(120), || dlq_size() >= 4).await,
        "the key's updates are parked behind it"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(dlq_size(), 4);
    assert!(world.pipedrive.person_by_email(email).is_none());

    let mut redrive = args(&world.prefix);
    redrive.class = Some("data".to_owned());
    let done = switchboard_cli::dlq::run(&DlqCommand::Redrive(redrive))
        .await
        .unwrap();
    assert_eq!(done.sent, 4);
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email(email)
            .is_some_and(|p| p.name.starts_with("V3")))
        .await,
        "the last update wins: {:?}",
        world.pipedrive.person_by_email(email)
    );
    assert_eq!(world.pipedrive.creates_for_email(email), 1);
    let mut again = args(&world.prefix);
    again.class = Some("data".to_owned());
    let again = switchboard_cli::dlq::run(&DlqCommand::Redrive(again))
        .await
        .unwrap();
    assert_eq!(again.sent, 0, "nothing is sent twice");
}
