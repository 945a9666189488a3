//! Durable webhook dedupe on the real broker: every delivery is answered 200, only unique
//! deliveries reach the raw topic, and a restart of the service between a delivery and its
//! duplicate still dedupes (the state lives in Kafka).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

fn customer(id: u64) -> Vec<u8> {
    let payload = ShopifyWebhooks::customer_payload(
        id,
        &format!("c{id}@example.com"),
        "Dee",
        "Dupe",
        time::OffsetDateTime::now_utc(),
    );
    serde_json::to_vec(&payload).unwrap()
}

async fn ingest(
    world: &World,
    shutdown: &CancellationToken,
) -> (ShopifyWebhooks, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let started = switchboard_ingest_webhook::start(load(&world.yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(started.addr).await;
    let shop = ShopifyWebhooks::new(
        format!("http://{}/webhooks/shop", started.addr),
        SHOP_SECRET,
        "acme.myshopify.com",
        "2025-01",
    )
    .unwrap();
    (shop, started.task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_deliveries_with_duplicates_publish_exactly_the_unique_ones() {
    let world = World::new("dedupe-1000", PipedriveConfig::new(CRM_TOKEN)).await;
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let (shop, _) = ingest(&world, &token).await;
    let shop = Arc::new(shop);

    // 700 unique deliveries and 300 redeliveries of some of them, shuffled, 16 at a time, so
    // some duplicates arrive while their original is still in flight.
    const UNIQUE: u64 = 700;
    let mut deliveries: Vec<u64> = (0..UNIQUE).collect();
    deliveries.extend((0..300).map(|i| (i * 7) % UNIQUE));
    let mut seed = 0x9e37_79b9_u64;
    for i in (1..deliveries.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        deliveries.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let queue = Arc::new(std::sync::Mutex::new(deliveries));
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (shop, queue) = (shop.clone(), queue.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap().pop() else {
                    return;
                };
                let status = shop
                    .send(
                        "customers/update",
                        &customer(1_000_000_000_000_000 + n),
                        &format!("wh-{n}"),
                    )
                    .await
                    .unwrap();
                assert_eq!(status, StatusCode::OK, "delivery wh-{n}");
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }

    let raw = read_topic(
        &kafka_bootstrap(),
        &world.raw_topic(),
        UNIQUE as usize,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(
        raw.len(),
        UNIQUE as usize,
        "exactly the unique deliveries are on the topic"
    );
    let keys: HashSet<_> = raw.iter().map(|m| m.key().unwrap().to_vec()).collect();
    assert_eq!(keys.len(), UNIQUE as usize, "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_between_a_delivery_and_its_duplicate_still_dedupes() {
    let world = World::new("dedupe-restart", PipedriveConfig::new(CRM_TOKEN)).await;
    let body = customer(2_000_000_000_000_000_001);

    let first = CancellationToken::new();
    let (shop, task) = ingest(&world, &first).await;
    assert_eq!(
        shop.send("customers/create", &body, "wh-restart")
            .await
            .unwrap(),
        StatusCode::OK
    );
    first.cancel();
    task.await.unwrap().unwrap();

    let second = CancellationToken::new();
    let _stop = second.clone().drop_guard();
    let (shop, _) = ingest(&world, &second).await;
    assert_eq!(
        shop.send("customers/create", &body, "wh-restart")
            .await
            .unwrap(),
        StatusCode::OK
    );
    // A different delivery after the duplicate: once it is on the topic, a republished
    // duplicate would be there too.
    assert_eq!(
        shop.send("customers/update", &body, "wh-after")
            .await
            .unwrap(),
        StatusCode::OK
    );

    let raw = read_topic(
        &kafka_bootstrap(),
        &world.raw_topic(),
        2,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(
        raw.len(),
        2,
        "the duplicate after the restart was not republished"
    );
}
