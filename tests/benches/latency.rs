//! `make bench`: end-to-end latency, from a signed Shopify webhook sent to ingest-webhook to
//! the create request arriving at the target, at a steady rate.
//!
//! The target is a generic HTTP API (`type: http`) that answers at once and has no limit, so
//! the number measures Switchboard: ingest (2xx after Kafka's ack) → raw topic → transformer
//! (Kafka transaction) → canonical topic → sink → HTTP. Services run with the product's
//! defaults but `sink.concurrency` (`SB_BENCH_LATENCY_CONCURRENCY`, default 8). Webhooks go out open-loop at `SB_BENCH_LATENCY_RATE` per second (default 1,000)
//! for `SB_BENCH_LATENCY_SECS` (default 10), each a new customer, whatever the answers'
//! speed; the latency of each is its create's arrival minus its send. One warm-up record
//! goes through first, so group joins are not counted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use switchboard_sandbox::ShopifyWebhooks;
use switchboard_tests::*;

/// When each create arrived, by the customer's e-mail.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

/// Wall-clock time in epoch milliseconds, the clock of Kafka's record timestamps.
fn epoch_ms(at: Instant) -> i64 {
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    now - i64::try_from(at.elapsed().as_millis()).unwrap_or(0)
}

async fn create(
    State(arrivals): State<Arrivals>,
    Json(body): Json<Value>,
) -> impl axum::response::IntoResponse {
    let at = Instant::now();
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    let mut seen = arrivals.0.lock().unwrap();
    seen.entry(email).or_insert(at);
    let id = seen.len();
    (StatusCode::CREATED, Json(json!({"data": {"id": id}})))
}

async fn target(arrivals: Arrivals) -> String {
    let app = Router::new()
        .route("/things", post(create))
        .route("/things/{id}", put(|| async { StatusCode::NO_CONTENT }))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The i-th customer's Shopify ID and e-mail.
fn customer_id(i: u64) -> u64 {
    8_000_000_000_000_000_000 + i
}
fn email(i: u64) -> String {
    format!("lat{i}@example.com")
}

/// The value at quantile `q` of sorted values.
fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn customer(i: u64) -> Vec<u8> {
    let payload = ShopifyWebhooks::customer_payload(
        customer_id(i),
        &email(i),
        "Latency",
        "Bench",
        time::OffsetDateTime::now_utc(),
    );
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    init_logging();
    ensure_stack();
    let rate = env_or("SB_BENCH_LATENCY_RATE", 1_000);
    let secs = env_or("SB_BENCH_LATENCY_SECS", 10);
    let n = rate * secs;
    // One lane waits for Kafka's acks of each record's xref link and outcome before the
    // next (about 500 records/s here): 1,000/s needs lanes.
    let concurrency = env_or("SB_BENCH_LATENCY_CONCURRENCY", 8);

    let arrivals = Arrivals::default();
    let url = target(arrivals.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("bench-latency");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: "2025-01", webhook_secret: "{secret}"}}
  api:
    type: http
    target: {{base_url: "{url}", path: /things, update_path: "/things/{{id}}", id_pointer: /data/id}}
flows:
  - {{name: customers-to-api, from: shop.customers, mapping: shopify/customer-to-contact.v1, to: contact, sinks: [{{target: api.contacts}}]}}
ingest: {{listen: "127.0.0.1:0"}}
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{mappings}"}}
sink: {{admin_listen: "127.0.0.1:0", concurrency: {concurrency}}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        secret = secret_ref(dir.path(), "shop", SHOP_SECRET),
        mappings = workspace_root().join("mappings").display(),
    );
    let services = Services::default();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), services.token())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    services.keep("ingest-webhook", ingest.task);
    let transformer = switchboard_transformer::start(load(&yaml), services.token())
        .await
        .unwrap();
    services.keep("transformer", transformer.task);
    let sink = switchboard_sink::start(load(&yaml), services.token())
        .await
        .unwrap();
    services.keep("sink", sink.task);
    let shop = Arc::new(
        ShopifyWebhooks::new(
            format!("http://{}/webhooks/shop", ingest.addr),
            SHOP_SECRET,
            "acme.myshopify.com",
            "2025-01",
        )
        .unwrap(),
    );

    // Warm-up: one record end to end, so every group has joined.
    let warm = n + 1;
    shop.send("customers/create", &customer(warm), "lat-warm")
        .await
        .unwrap();
    let warm_email = email(warm);
    assert!(
        eventually(Duration::from_secs(120), || arrivals
            .0
            .lock()
            .unwrap()
            .contains_key(&warm_email))
        .await,
        "the warm-up record reached the target"
    );

    // Open loop: the i-th webhook is due at i / rate seconds, answered or not.
    let bodies: Vec<Vec<u8>> = (0..n).map(customer).collect();
    let start = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    let mut sent_at = Vec::with_capacity(n as usize);
    for (i, body) in bodies.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        sent_at.push(Instant::now());
        let shop = shop.clone();
        sends.spawn(async move {
            let status = shop
                .send("customers/create", &body, &format!("lat-{i}"))
                .await
                .unwrap();
            assert!(status.is_success(), "webhook answered {status}");
        });
    }
    let offered = n as f64 / start.elapsed().as_secs_f64();
    while let Some(sent) = sends.join_next().await {
        sent.unwrap();
    }
    let all = eventually(Duration::from_secs(300), || {
        arrivals.0.lock().unwrap().len() as u64 > n
    })
    .await;
    assert!(all, "every record reached the target");

    let seen = arrivals.0.lock().unwrap().clone();
    let last_arrival = *seen.values().max().unwrap();
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .enumerate()
        .map(|(i, sent)| seen[&email(i as u64)].duration_since(*sent))
        .collect();
    latencies.sort();
    let ms = |q: f64| quantile(&latencies, q).as_secs_f64() * 1e3;

    // Where the time goes, by the records' own timestamps (set when each was produced, in
    // ms): send → raw record (ingest), raw → canonical record (transformer; a transaction
    // makes it readable only at its commit, which this leaves in the next stage), canonical
    // → create at the target (commit, the sink's read and its call).
    let produced = |topic: &str| -> HashMap<Vec<u8>, i64> {
        read_topic(
            &kafka_bootstrap(),
            topic,
            n as usize + 1,
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .iter()
        .filter_map(|m| {
            use rdkafka::Message;
            Some((m.key()?.to_vec(), m.timestamp().to_millis()?))
        })
        .collect()
    };
    let raw = produced(&format!("{prefix}.raw.shop.customers"));
    let canonical = produced(&format!("{prefix}.canonical.contact"));
    let mut stages = [Vec::new(), Vec::new(), Vec::new()];
    for (i, sent) in sent_at.iter().enumerate() {
        let id = customer_id(i as u64).to_string();
        let key = switchboard_core::canonical::canonical_id("shop", "customers", &id);
        let (Some(r), Some(c)) = (raw.get(id.as_bytes()), canonical.get(key.as_bytes())) else {
            continue;
        };
        let arrived = epoch_ms(seen[&email(i as u64)]);
        stages[0].push(r - epoch_ms(*sent));
        stages[1].push(c - r);
        stages[2].push(arrived - c);
    }
    for stage in &mut stages {
        stage.sort_unstable();
    }

    services
        .stop()
        .await
        .expect("every service stopped cleanly");

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "end-to-end latency, webhook sent → create at a generic HTTP target ({build} build, sink.concurrency {concurrency})"
    );
    println!(
        "  {n} new customers at {offered:.0}/s: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(1.0)
    );
    println!(
        "  last create {:.2} s after the last webhook was sent",
        last_arrival
            .duration_since(*sent_at.last().unwrap())
            .as_secs_f64()
    );
    for (stage, v) in [
        ("send → raw record (ingest)", &stages[0]),
        ("raw → canonical record (transformer)", &stages[1]),
        ("canonical → create (commit, sink, call)", &stages[2]),
    ] {
        if v.is_empty() {
            println!("  {stage:<42} no records matched on the topics");
            continue;
        }
        println!(
            "  {stage:<42} p50 {:>5} ms  p99 {:>5} ms  ({} records)",
            quantile(v, 0.5),
            quantile(v, 0.99),
            v.len()
        );
    }
}
