//! `make bench`: the sink against Shopify's REST limits and against no limit at all.
//!
//! - **Unlimited target**: N canonical contacts delivered to a Shopify sandbox whose bucket
//!   never empties, at `sink.concurrency` 1, 4 and 8, beside the anchors measured in the same
//!   run: a bare HTTP client making the same `POST customers.json` calls to a fresh sandbox
//!   of the same kind, one after another (the ceiling of one record at a time) and from 8
//!   tasks at once. The ratio is what Kafka, Avro decoding, check-before-create and the xref
//!   cost.
//! - **At the advertised limit**: contacts delivered to a sandbox with the Standard plan's
//!   bucket (40, leaking 2/s), at concurrency 1 and 4; goodput is calls served over what the
//!   limit allows in the span (a full bucket plus the leak), with the 429s counted from the
//!   sandbox's own log.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

#[path = "../targets_support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use switchboard_sandbox::{ShopifyConfig, ShopifySandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "shpat_bench";
const FLOW: &str = "  - {name: contacts-to-shop, from: src.persons, mapping: test/contact.v1, to: contact, sinks: [{target: shop.customers}]}";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unlimited() -> ShopifyConfig {
    ShopifyConfig {
        bucket_size: 1_000_000,
        leak_rate: 1_000_000.0,
        ..ShopifyConfig::new(TOKEN)
    }
}

fn contact(run: &str, i: usize) -> serde_json::Value {
    canonical(
        "contact",
        "persons",
        &format!("{run}{i}"),
        json!({"email": format!("{run}{i}@example.com"), "first_name": "Bench", "last_name": format!("N{i}"), "phone": null}),
    )
}

/// Delivers `n` contacts to `shop` through the sink, `concurrency` at once; returns the wall
/// time from the first customer at the target to the last (steady state; the group join
/// before it is not the sink's delivery speed).
async fn sink_run(shop: &ShopifySandbox, run: &str, n: usize, concurrency: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(&format!("bench-sink-{run}"));
    let connection = format!(
        "  shop:\n    type: shopify\n    shop_domain: acme.myshopify.com\n    api_version: \"2025-01\"\n    webhook_secret: ${{env:CARGO_PKG_NAME}}\n    access_token: \"{}\"\n    base_url: \"{}\"\n",
        secret_ref(dir.path(), "shop", TOKEN),
        shop.base_url()
    );
    // The sink block is the configuration's last: one more of its keys.
    let yaml = format!(
        "{}  concurrency: {concurrency}\n",
        sink_yaml(&prefix, &connection, FLOW, "")
    );
    let records: Vec<_> = (0..n).map(|i| contact(run, i)).collect();
    produce(&prefix, "contact", &records).await;
    let stop = CancellationToken::new();
    let sink = switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let first = poll_until(|| !shop.customers().is_empty()).await;
    let done = eventually(Duration::from_secs(900), || shop.customers().len() >= n).await;
    let elapsed = first.elapsed();
    // Stopped and awaited here, not left to the runtime's end, which would cut its drain.
    stop.cancel();
    sink.task.await.unwrap().unwrap();
    assert!(
        done,
        "every customer arrived ({} of {n})",
        shop.customers().len()
    );
    elapsed
}

/// Waits (polling every millisecond, up to 2 minutes) until `ready`; returns when.
async fn poll_until(ready: impl Fn() -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

/// The anchor: the same calls from a bare client, from `tasks` tasks at once, each making
/// its share one after another.
async fn bare_run(shop: &ShopifySandbox, n: usize, tasks: usize) -> Duration {
    let http = reqwest::Client::new();
    let url = shop.api_url("2025-01", "customers.json");
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (http, url) = (http.clone(), url.clone());
        running.spawn(async move {
            for i in (task..n).step_by(tasks) {
                let body = json!({"customer": {"email": format!("bare{i}@example.com"),
                                  "first_name": "Bench", "last_name": format!("N{i}")}});
                let r = http
                    .post(&url)
                    .header("X-Shopify-Access-Token", TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.unwrap();
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    init_logging();
    ensure_stack();
    let n = env_or("SB_BENCH_SINK_RECORDS", 2_000);
    let limited_n = env_or("SB_BENCH_SINK_LIMITED_RECORDS", 100);
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let bare_shop = ShopifySandbox::start(unlimited()).await.unwrap();
    let bare = rate(bare_run(&bare_shop, n, 1).await);
    let bare_shop = ShopifySandbox::start(unlimited()).await.unwrap();
    let bare8 = rate(bare_run(&bare_shop, n, 8).await);
    println!(
        "sink, {n} contacts to an unlimited Shopify sandbox ({build} build; first delivery to last)"
    );
    println!("  bare HTTP client, same calls in sequence     {bare:>9.0} calls/s");
    println!("  bare HTTP client, 8 tasks at once            {bare8:>9.0} calls/s");
    for concurrency in [1, 4, 8] {
        let shop = ShopifySandbox::start(unlimited()).await.unwrap();
        let run = format!("free{concurrency}x");
        let sink = rate(sink_run(&shop, &run, n, concurrency).await);
        println!(
            "  sink, concurrency {concurrency} (Kafka → Shopify)        {sink:>9.0} records/s  {:.3} of sequential, {:.3} of 8 tasks",
            sink / bare,
            sink / bare8
        );
    }

    for concurrency in [1, 4] {
        let limited = ShopifySandbox::start(ShopifyConfig::new(TOKEN))
            .await
            .unwrap();
        sink_run(
            &limited,
            &format!("lim{concurrency}x"),
            limited_n,
            concurrency,
        )
        .await;
        let report = rate_report(&limited.control().requests(), "/admin/api/");
        let allowed = 40.0 + 2.0 * report.span_secs;
        println!(
            "sink, {limited_n} contacts at Shopify's Standard limit (bucket 40, leak 2/s), concurrency {concurrency}"
        );
        println!(
            "  goodput                                      {:>9.1} % of the limit over {:.1} s",
            100.0 * report.served as f64 / allowed,
            report.span_secs
        );
        println!(
            "  answered 429                                 {:>9} of {} calls",
            report.throttled, report.calls
        );
    }
}
