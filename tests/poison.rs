//! Poison records get a defined answer and do not block their partition: bytes that are
//! not a `ChangeEvent` go to `sb.dlq.transformer`; a contact the target refuses as data (no
//! e-mail to match on) goes to `sb.dlq.crm`; both carry Connect-style error headers, and the
//! good record behind each one still arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, util::Timeout};
use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_records_are_dead_lettered_with_reasons_and_the_flow_moves_on() {
    let world = World::new("poison", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;

    // 1. Garbage on the raw topic, keyed like the good record behind it so both share a partition.
    let key = "4242";
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&world.raw_topic())
                .key(key)
                .payload(&b"not avro at all"[..]),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let good = ShopifyWebhooks::customer_payload(
        4242,
        "after.poison@example.com",
        "After",
        "Poison",
        time::OffsetDateTime::now_utc(),
    );
    assert_eq!(
        shop.send(
            "customers/update",
            &serde_json::to_vec(&good).unwrap(),
            "wh-good"
        )
        .await
        .unwrap(),
        StatusCode::OK
    );

    // 2. A customer without e-mail: mapped fine, but Pipedrive persons are matched on e-mail.
    let mut no_email = ShopifyWebhooks::customer_payload(
        4343,
        "x@example.com",
        "No",
        "Email",
        time::OffsetDateTime::now_utc(),
    );
    no_email["email"] = serde_json::Value::Null;
    assert_eq!(
        shop.send(
            "customers/create",
            &serde_json::to_vec(&no_email).unwrap(),
            "wh-noemail"
        )
        .await
        .unwrap(),
        StatusCode::OK
    );

    assert!(
        eventually(Duration::from_secs(60), || world
            .pipedrive
            .person_by_email("after.poison@example.com")
            .is_some())
        .await,
        "the record behind the poison one arrived"
    );

    let dlq = read_topic(
        &kafka_bootstrap(),
        &format!("{}.dlq.transformer", world.prefix),
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(
        dlq.len(),
        1,
        "exactly the poison record was dead-lettered by the transformer"
    );
    assert_eq!(
        dlq[0].payload(),
        Some(&b"not avro at all"[..]),
        "the original bytes are kept"
    );
    assert_eq!(dlq[0].key(), Some(key.as_bytes()));
    assert_eq!(header(&dlq[0], "sb.error.class").as_deref(), Some("data"));
    assert_eq!(
        header(&dlq[0], "sb.error.stage").as_deref(),
        Some("transformer")
    );
    assert_eq!(
        header(&dlq[0], "sb.original.topic"),
        Some(world.raw_topic())
    );
    assert!(header(&dlq[0], "sb.error.message").is_some_and(|m| !m.is_empty()));

    let sink_dlq = read_topic(
        &kafka_bootstrap(),
        &format!("{}.dlq.crm", world.prefix),
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(
        sink_dlq.len(),
        1,
        "the contact without e-mail was dead-lettered by the sink"
    );
    assert_eq!(
        header(&sink_dlq[0], "sb.error.class").as_deref(),
        Some("data")
    );
    assert_eq!(
        header(&sink_dlq[0], "sb.original.topic"),
        Some(world.canonical_topic())
    );
    assert!(
        header(&sink_dlq[0], "sb.error.message")
            .unwrap()
            .contains("e-mail")
    );
    assert_eq!(
        world.pipedrive.persons().len(),
        1,
        "nothing was created for the refused contact"
    );
}
