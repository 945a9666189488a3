//! The sink writing Shopify customers at the emulator's real REST limits (bucket 40,
//! leaking 2 per second), judged from the sandbox's own request log: goodput, share of
//! 429s, and that every 429's `Retry-After` (2 s) was waited out. And a 422 from Shopify
//! goes to the DLQ with Shopify's reason, nothing secret in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::targets_support as support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use switchboard_sandbox::{ShopifyConfig, ShopifySandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "shpat_target_test";

fn shop_connection(shop: &ShopifySandbox, token_ref: &str) -> String {
    format!(
        r#"  shop:
    type: shopify
    shop_domain: acme.myshopify.com
    api_version: "2025-01"
    webhook_secret: ${{env:CARGO_PKG_NAME}}
    access_token: "{token_ref}"
    base_url: "{base}"
"#,
        base = shop.base_url()
    )
}

/// A Shopify sandbox at its real limits and a sink configuration writing contacts to it.
struct ShopSink {
    shop: ShopifySandbox,
    prefix: String,
    yaml: String,
    _dir: tempfile::TempDir,
}

impl ShopSink {
    async fn start(test: &str) -> Self {
        init_logging();
        ensure_stack();
        let shop = ShopifySandbox::start(ShopifyConfig::new(TOKEN))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix(test);
        let yaml = sink_yaml(
            &prefix,
            &shop_connection(&shop, &secret_ref(dir.path(), "shop", TOKEN)),
            FLOW,
            "",
        );
        Self {
            shop,
            prefix,
            yaml,
            _dir: dir,
        }
    }
}

const FLOW: &str = "  - {name: contacts-to-shop, from: src.persons, mapping: test/contact.v1, to: contact, sinks: [{target: shop.customers}]}";

fn contact(i: usize, phone: Option<&str>) -> serde_json::Value {
    canonical(
        "contact",
        "persons",
        &format!("p{i}"),
        json!({"email": format!("buyer{i}@example.com"), "first_name": "Buyer", "last_name": format!("N{i}"), "phone": phone}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shopify_customers_at_the_bucket_limit_keep_goodput_and_honour_retry_after() {
    let ShopSink {
        shop,
        prefix,
        yaml,
        _dir,
    } = ShopSink::start("shop-rate").await;
    const N: usize = 130;
    let records: Vec<_> = (0..N).map(|i| contact(i, None)).collect();
    produce(&prefix, "contact", &records).await;

    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(150), || shop.customers().len() >= N).await,
        "every customer arrived ({} of {N})",
        shop.customers().len()
    );
    println!("{N} customers in {:?}", started.elapsed());

    let report = rate_report(&shop.control().requests(), "/admin/api/");
    println!("{report:?}");
    // The most a client can get in the span: a full bucket plus the leak.
    let allowed = 40.0 + 2.0 * report.span_secs;
    let goodput = report.served as f64 / allowed;
    println!(
        "shopify goodput {:.1}% of the limit over {:.1} s, {} of {} calls answered 429",
        goodput * 100.0,
        report.span_secs,
        report.throttled,
        report.calls
    );
    assert!(report.span_secs >= 30.0, "a run of at least 30 s");
    assert!(goodput >= 0.95, "goodput {goodput:.3} of the limit");
    assert!(
        report.throttled as f64 <= 0.01 * report.calls as f64,
        "≤ 1% answered 429"
    );
    for i in 0..N {
        let email = format!("buyer{i}@example.com");
        assert!(shop.customer_by_email(&email).is_some(), "{email}");
    }

    // Another app keeps the shared bucket full for a while: the sink's calls meet 429 with
    // Retry-After 2.0, and must wait that long before calling again.
    let before = shop.control().requests().len();
    // Enough that the sink is still writing while the other app fills the bucket.
    const MORE: usize = 40;
    let more: Vec<_> = (N..N + MORE).map(|i| contact(i, None)).collect();
    produce(&prefix, "contact", &more).await;
    assert!(
        eventually(Duration::from_secs(30), || shop.customers().len() > N + 1).await,
        "the sink is writing again"
    );
    // The other app keeps at it until the sink has met a 429 (30 s at most): on a busy
    // machine a fixed spell could end before the sink's next call.
    let sink_throttled = || {
        shop.control().requests()[before..]
            .iter()
            .any(|r| r.status == 429 && !r.path.contains("count.json"))
    };
    let url = shop.api_url("2025-01", "customers/count.json");
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !sink_throttled() {
        let _ = http
            .get(&url)
            .header("X-Shopify-Access-Token", TOKEN)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        eventually(Duration::from_secs(90), || shop.customers().len()
            >= N + MORE)
        .await,
        "the later customers arrived too"
    );
    let requests = shop.control().requests();
    let sink_calls: Vec<_> = requests[before..]
        .iter()
        .filter(|r| r.path.contains("customers.json") || r.path.contains("customers/"))
        .filter(|r| !r.path.contains("count.json"))
        .cloned()
        .collect();
    let after = rate_report(&sink_calls, "/admin/api/");
    println!("after the other app: {after:?}");
    assert!(
        after.throttled >= 1,
        "the other app's load made Shopify refuse the sink"
    );
    let gap = after.min_gap_after_429.unwrap();
    assert!(
        gap >= 1.95,
        "every 429's Retry-After of 2 s was respected (smallest gap {gap:.2} s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_422_from_shopify_goes_to_the_dlq_with_its_reason() {
    let ShopSink {
        shop,
        prefix,
        yaml,
        _dir,
    } = ShopSink::start("shop-422").await;
    // A phone Shopify refuses (not E.164), then a good record behind it on another key.
    produce(
        &prefix,
        "contact",
        &[contact(1, Some("12")), contact(2, None)],
    )
    .await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();

    // The good record comes after the refused one: once it is there, the refused one has
    // been handed to the DLQ (and the topic exists for the reader).
    assert!(
        eventually(Duration::from_secs(60), || shop
            .customer_by_email("buyer2@example.com")
            .is_some())
        .await,
        "the next record went on"
    );
    let dlq = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.dlq.shop"),
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(dlq.len(), 1, "the refused record is dead-lettered, once");
    let header = |name: &str| header(&dlq[0], name);
    assert_eq!(header("sb.error.class").as_deref(), Some("data"));
    let message = header("sb.error.message").unwrap();
    assert!(message.contains("422"), "{message}");
    assert!(
        message.contains("phone"),
        "Shopify's reason is kept: {message}"
    );
    assert!(!message.contains(TOKEN), "no secret in the reason");
    assert!(shop.customer_by_email("buyer1@example.com").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_xref_the_search_finds_what_was_created_and_nothing_is_created_twice() {
    init_logging();
    ensure_stack();
    let shop = ShopifySandbox::start(ShopifyConfig::new(TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_ref = secret_ref(dir.path(), "shop", TOKEN);
    let flows = format!(
        "{FLOW}\n  - {{name: orders-to-shop, from: src.deals, mapping: test/order.v1, to: order, sinks: [{{target: shop.orders}}]}}"
    );
    let order = |i: usize| {
        canonical(
            "order",
            "deals",
            &format!("order{i}"),
            json!({"number": format!("{}", 5000 + i), "currency": "USD",
                   "lines": [{"sku": "SKU-9", "title": "Mug", "quantity": "2", "unit_price": "9.50",
                              "total": "19.00", "tax_rate": null, "product_id": null}]}),
        )
    };
    let contacts: Vec<_> = (0..5).map(|i| contact(i, None)).collect();
    let orders: Vec<_> = (0..5).map(order).collect();

    // Two installations with their own topics (and so their own xref) write the same
    // canonical records: the second has no xref and must find each record by its key.
    for (round, name) in ["shop-search-a", "shop-search-b"].iter().enumerate() {
        let prefix = unique_prefix(name);
        let yaml = sink_yaml(&prefix, &shop_connection(&shop, &token_ref), &flows, "");
        produce(&prefix, "contact", &contacts).await;
        produce(&prefix, "order", &orders).await;
        produce(&prefix, "order", &orders).await;
        let stop = CancellationToken::new();
        switchboard_sink::start(load(&yaml), stop.clone())
            .await
            .unwrap();
        let group = format!("{prefix}.sink.shop");
        for (entity, n) in [("contact", 5), ("order", 10)] {
            let topic = format!("{prefix}.canonical.{entity}");
            let all = read_topic(
                &kafka_bootstrap(),
                &topic,
                n,
                Duration::from_secs(20),
                Duration::ZERO,
            );
            assert_eq!(all.len(), n);
            assert!(
                eventually(Duration::from_secs(90), || group_caught_up(
                    &kafka_bootstrap(),
                    &group,
                    &all
                ))
                .await,
                "round {round}: the sink finished {entity}"
            );
        }
        stop.cancel();
        assert_eq!(
            shop.customers().len(),
            5,
            "round {round}: one customer per contact"
        );
        assert_eq!(shop.orders().len(), 5, "round {round}: one order per order");
    }
    for (i, order) in orders.iter().enumerate() {
        let id = order["id"].as_str().unwrap();
        assert_eq!(shop.control().creates_for(id), 1, "order {i} created once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_contact_deletes_its_shopify_customer_once() {
    let ShopSink {
        shop,
        prefix,
        yaml,
        _dir,
    } = ShopSink::start("shop-delete").await;
    let mut gone = contact(0, None);
    gone["deleted"] = json!(true);
    produce(&prefix, "contact", &[contact(0, None), contact(1, None)]).await;
    produce(&prefix, "contact", &[gone.clone(), gone]).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();

    deleted_once_then_found_gone(shop.control(), 200).await;
    assert!(shop.customer_by_email("buyer0@example.com").is_none());
    assert!(shop.customer_by_email("buyer1@example.com").is_some());
    assert_eq!(shop.customers().len(), 1);
}
