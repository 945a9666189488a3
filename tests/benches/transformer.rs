//! `make bench`: transformer throughput with exactly-once on (Kafka transactions, batched
//! commits, identity and conflict state written in the same transaction), beside Kafka's own
//! `ConsumerPerformance` reading the same input on the same broker in the same run.
//!
//! N raw change events (over 1,000 customers, each event a real change) are written first;
//! then ConsumerPerformance reads them (the broker's read ceiling for this input); then the
//! transformer starts and the clock runs until its group has committed past every event.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use switchboard_core::kafka::{Cleanup, TopicSpec, ensure_topics};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: u64 = std::env::var("SB_BENCH_TRANSFORMER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    ensure_stack();
    let prefix = unique_prefix("bench-txn");
    let yaml = shop_contacts_transformer_yaml(&prefix);
    let config = load(&yaml);
    let raw = format!("{prefix}.raw.shop.customers");
    ensure_topics(
        &config.kafka,
        &[TopicSpec::new(
            raw.clone(),
            Cleanup::Delete(Duration::from_secs(3600)),
        )],
    )
    .await
    .unwrap();
    publish_raw_events(&config, (0..n).map(|i| numbered_customer_event(i, 1_000))).await;

    // The broker's ceiling: Kafka's own consumer reading the same records.
    let perf = Command::new(stack_script())
        .args([
            "kafka-cli",
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            &kafka_bootstrap(),
            "--topic",
            &raw,
            "--messages",
            &n.to_string(),
            "--group",
            &format!("{prefix}.perf"),
            "--timeout",
            "60000",
        ])
        .output()
        .unwrap();
    let perf_out = String::from_utf8_lossy(&perf.stdout);
    // CSV: start, end, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    let consumer_rate: f64 = perf_out
        .lines()
        .last()
        .and_then(|l| l.split(',').nth(5))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("ConsumerPerformance output: {perf_out}"));

    let shutdown = CancellationToken::new();
    let start = Instant::now();
    switchboard_transformer::start(config.clone(), shutdown.clone())
        .await
        .unwrap();
    let group = format!("{prefix}.transformer");
    let done = eventually(Duration::from_secs(900), || {
        committed_total(&group, &raw) >= n as i64
    })
    .await;
    let elapsed = start.elapsed();
    shutdown.cancel();
    assert!(done, "the transformer committed past every event");

    let rate = n as f64 / elapsed.as_secs_f64();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("transformer, {n} events ({build} build; start-up and state load included)");
    println!(
        "  transformer, exactly-once                 {rate:>10.0} events/s  ({:.2} s)",
        elapsed.as_secs_f64()
    );
    println!("  Kafka ConsumerPerformance, same input     {consumer_rate:>10.0} records/s");
    println!(
        "  ratio transformer / ConsumerPerformance   {:>10.3}",
        rate / consumer_rate
    );
}

/// Offsets `group` has committed on `topic`, summed over partitions (each record of the
/// raw topic is one event; the raw topic is not transactional, so offsets count events).
fn committed_total(group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return 0;
    };
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}
