//! `make bench`: transformer throughput with exactly-once on (Kafka transactions, batched
//! commits, identity and conflict state written in the same transaction), beside Kafka's own
//! `ConsumerPerformance` and a Kafka Streams peer reading the same input on the same broker
//! in the same run.
//!
//! N raw change events (over 1,000 customers, each event a real change) are written first.
//! Then ConsumerPerformance reads them (the broker's read ceiling for this input). Then the
//! transformer's release binary starts as its own process, and the clock runs until its
//! group has committed past every event; then the same for the Kafka Streams peer
//! (bench/peers/kafka-streams, `exactly_once_v2`). Start-up is inside both clocks. Memory is
//! each process's resident set: idle (ready, nothing to read) and its peak under the run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use switchboard_core::kafka::{Cleanup, TopicSpec, ensure_topics};
use switchboard_tests::*;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: u64 = std::env::var("SB_BENCH_TRANSFORMER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    ensure_stack();
    let binary = service_binary("switchboard-transformer", "switchboard-transformer");
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("bench-txn");
    let yaml = shop_contacts_transformer_yaml(&prefix);
    let config = load(&yaml);
    let raw = format!("{prefix}.raw.shop.customers");
    let delete = Cleanup::Delete(Duration::from_secs(3600));
    ensure_topics(&config.kafka, &[TopicSpec::new(raw.clone(), delete)])
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

    // Idle: a transformer of its own, ready, with nothing to read.
    let idle_prefix = unique_prefix("bench-txn-idle");
    let idle_yaml = shop_contacts_transformer_yaml(&idle_prefix);
    let idle_config = load(&idle_yaml);
    ensure_topics(
        &idle_config.kafka,
        &[TopicSpec::new(
            format!("{idle_prefix}.raw.shop.customers"),
            delete,
        )],
    )
    .await
    .unwrap();
    let mut idle = Transformer::spawn(&binary, dir.path(), "idle", &idle_yaml);
    wait_ready(idle.admin).await;
    // Ready is not yet idle: its first metadata and group calls settle after.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(idle.child.id(), "VmRSS");
    let idle_errors = idle.stop();

    let mut transformer = Transformer::spawn(&binary, dir.path(), "run", &yaml);
    let start = Instant::now();
    let done = eventually(Duration::from_secs(900), || {
        committed_total(&format!("{prefix}.transformer"), &raw) >= n as i64
    })
    .await;
    let elapsed = start.elapsed();
    let peak_rss = rss_kb(transformer.child.id(), "VmHWM");
    let errors = transformer.stop();
    assert!(done, "the transformer committed past every event");
    // Every event is a real change: each one is a canonical record, for the peer too.
    let canonical = committed_records(&format!("{prefix}.canonical.contact"), n);
    assert_eq!(canonical, n, "the transformer wrote one contact per event");
    let rate = n as f64 / elapsed.as_secs_f64();

    // The Kafka Streams peer on the same input.
    let peer_output = format!("{prefix}.peer.contacts");
    ensure_topics(
        &config.kafka,
        &[TopicSpec::new(peer_output.clone(), delete)],
    )
    .await
    .unwrap();
    let application = format!("{prefix}.peer");
    let state = dir.path().join("peer-state");
    let root = workspace_root();
    let built = Command::new(root.join("bench/peers/kafka-streams/run.sh"))
        .arg("--build")
        .status()
        .unwrap();
    assert!(built.success(), "the Kafka Streams peer did not build");
    let mut peer = Command::new(root.join("bench/peers/kafka-streams/run.sh"))
        .arg(kafka_bootstrap())
        .arg(registry_url())
        .arg(&raw)
        .arg(&peer_output)
        .arg(&application)
        .arg(&state)
        .arg(root.join("schemas/canonical/contact.v1.avsc"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let peer_start = Instant::now();
    let peer_done = eventually(Duration::from_secs(900), || {
        committed_total(&application, &raw) >= n as i64
    })
    .await;
    let peer_elapsed = peer_start.elapsed();
    let peer_rss = rss_kb(peer.id(), "VmHWM");
    let _ = Command::new("kill")
        .arg(peer.id().to_string())
        .status()
        .unwrap();
    let _ = peer.wait();
    assert!(
        peer_done,
        "the Kafka Streams peer committed past every event"
    );
    let peer_written = committed_records(&peer_output, n);
    assert_eq!(peer_written, n, "the peer wrote one contact per event");
    let peer_rate = n as f64 / peer_elapsed.as_secs_f64();

    println!("transformer, {n} events (release build; start-up and state load included)");
    println!(
        "  transformer, exactly-once                 {rate:>10.0} events/s  ({:.2} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  Kafka Streams peer, exactly_once_v2       {peer_rate:>10.0} events/s  ({:.2} s)",
        peer_elapsed.as_secs_f64()
    );
    println!("  Kafka ConsumerPerformance, same input     {consumer_rate:>10.0} records/s");
    println!(
        "  ratio transformer / ConsumerPerformance   {:>10.3}",
        rate / consumer_rate
    );
    println!(
        "  ratio transformer / Kafka Streams peer    {:>10.2}",
        rate / peer_rate
    );
    println!(
        "  transformer RSS: idle {:.1} MB, peak {:.1} MB; peer peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        peer_rss as f64 / 1024.0
    );
    println!("  ERROR lines at shutdown: {}", idle_errors + errors);
}

/// A transformer process with its own admin port and log file.
struct Transformer {
    child: Child,
    admin: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Transformer {
    fn spawn(binary: &Path, dir: &Path, name: &str, yaml: &str) -> Self {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env("SB__TRANSFORMER__ADMIN_LISTEN", admin.to_string())
            .env("RUST_LOG", "warn")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, admin, log }
    }

    /// SIGTERM, wait for the exit, and count the ERROR lines it logged.
    fn stop(&mut self) -> usize {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "transformer exited with {status}");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        for line in &errors {
            eprintln!("transformer logged: {line}");
        }
        errors.len()
    }
}

/// A line of /proc/<pid>/status in kB: `VmRSS` now, `VmHWM` its peak.
fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Records a `read_committed` consumer finds on `topic`, read from the start until
/// `expected` or until none came for 10 s.
fn committed_records(topic: &str, expected: u64) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", format!("{topic}.count"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut count = 0;
    while count < expected {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => count += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => break,
        }
    }
    count
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
