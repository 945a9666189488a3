//! `make bench`: throughput of the first flow on the real local stack, one simple run.
//!
//! Sends N signed customer webhooks from C concurrent senders to ingest-webhook and waits
//! until all N persons exist in the Pipedrive sandbox. The sandbox's rate limits are raised
//! for this run, so the number measures Switchboard (ingest → Kafka → transformer → Kafka →
//! sink → HTTP), not Pipedrive's documented 10 searches per 2 s, which would cap any client
//! at 5 records/s.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_sandbox::{ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("SB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let concurrency: usize = std::env::var("SB_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let unthrottled = unthrottled_pipedrive(CRM_TOKEN);
    let world = World::new("bench", unthrottled).await;
    let shop = Arc::new(world.start_ingest().await);
    world.start_transformer().await;
    world.start_sink().await;

    let start = Instant::now();
    let mut senders = Vec::new();
    for c in 0..concurrency {
        let shop = shop.clone();
        senders.push(tokio::spawn(async move {
            let mut i = c;
            while i < n {
                let payload = ShopifyWebhooks::customer_payload(
                    7_000_000_000_000_000_000 + i as u64,
                    &format!("bench{i}@example.com"),
                    "Bench",
                    "Mark",
                    time::OffsetDateTime::now_utc(),
                );
                let body = serde_json::to_vec(&payload).unwrap();
                let status = shop
                    .send("customers/create", &body, &format!("wh-{i}"))
                    .await
                    .unwrap();
                assert_eq!(status, StatusCode::OK);
                i += concurrency;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let ingested = start.elapsed();
    // total_creates is a counter read; persons() would clone every person under the
    // emulator's lock and slow down the run it measures.
    let done = eventually(Duration::from_secs(600), || {
        world.pipedrive.total_creates() >= n
    })
    .await;
    let end_to_end = start.elapsed();
    assert!(done, "all {n} persons arrived");
    assert_eq!(
        world.pipedrive.persons().len(),
        n,
        "each record created once"
    );

    // When the transformer produced the last canonical record (its Kafka timestamp).
    let canonical = read_topic(
        &kafka_bootstrap(),
        &world.canonical_topic(),
        n,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let started_at = time::OffsetDateTime::now_utc() - start.elapsed();
    let last = canonical
        .iter()
        .filter_map(|m| rdkafka::Message::timestamp(m).to_millis())
        .max()
        .unwrap();
    let transformed = Duration::from_millis(
        u64::try_from(i128::from(last) - started_at.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0),
    );

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // A clean shutdown logs no error: each service drains and stops as on SIGTERM.
    world.stop().await.expect("every service stopped cleanly");

    println!("first flow, {n} events, {concurrency} concurrent senders ({build} build)");
    for (stage, d) in [
        ("ingest (webhook answered 200 after Kafka ack)", ingested),
        ("raw → canonical (transformer, last record)", transformed),
        ("end to end (webhook → Pipedrive person)", end_to_end),
    ] {
        println!(
            "  {stage:<48} {:>8.0} events/s  ({:.2} s)",
            rate(d),
            d.as_secs_f64()
        );
    }
}
