//! Reconciliation on the real broker against the Shopify sandbox: after the shop's webhook
//! subscription disappears (as Shopify deletes failing ones), the slow poll publishes
//! exactly the changes no webhook brought, counts each as a catch, and republishes
//! nothing a webhook already delivered. Its own test binary: it reads process-wide metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_sandbox::shopify::CustomerChange;
use switchboard_sandbox::{ShopifyConfig, ShopifySandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

fn change(email: &str, first_name: &str) -> CustomerChange {
    CustomerChange {
        email: email.into(),
        first_name: Some(first_name.into()),
        last_name: None,
        phone: None,
        tags: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_publishes_exactly_what_webhooks_missed() {
    init_logging();
    ensure_stack();
    let shop = ShopifySandbox::start(ShopifyConfig {
        api_secret: "app-secret".into(),
        ..ShopifyConfig::new("shpat_reconcile")
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("reconcile");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  shop:
    type: shopify
    shop_domain: acme.myshopify.com
    api_version: "2026-01"
    base_url: "{base}"
    webhook_secret: "{secret}"
    access_token: "{token}"
    reconcile: {{entities: [customers], every_secs: 1}}
ingest: {{listen: "127.0.0.1:0"}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        base = shop.base_url(),
        secret = secret_ref(dir.path(), "secret", "app-secret"),
        token = secret_ref(dir.path(), "token", "shpat_reconcile"),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let url = format!("http://{}/webhooks/shop", ingest.addr);
    let create = shop.subscribe("customers/create", &url).unwrap();
    let update = shop.subscribe("customers/update", &url).unwrap();

    let topic = format!("{prefix}.raw.shop.customers");
    let bootstrap = kafka_bootstrap();
    for i in 0..5 {
        shop.trigger_customer_change(&change(&format!("seen{i}@example.com"), "Seen"))
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || topic_size(&bootstrap, &topic)
            >= 5)
        .await,
        "webhooks delivered"
    );

    // The subscriptions vanish; these changes fire no webhook.
    shop.unsubscribe(create.id).unwrap();
    shop.unsubscribe(update.id).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // updated_at has second precision
    for i in 0..3 {
        shop.trigger_customer_change(&change(&format!("missed{i}@example.com"), "Missed"))
            .unwrap();
    }
    shop.trigger_customer_change(&change("seen0@example.com", "Changed"))
        .unwrap();

    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || topic_size(&bootstrap, &topic)
            >= 9)
        .await,
        "the four missed changes arrived"
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // more reconciliation cycles
    let raw = read_topic(
        &bootstrap,
        &topic,
        9,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    assert_eq!(
        raw.len(),
        9,
        "five by webhook, four by reconciliation, nothing twice"
    );

    let metrics = switchboard_core::telemetry::metrics_handle().render();
    let catches: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchboard_reconciliation_catches_total")
                && l.contains("connection=\"shop\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(catches, 4.0, "each missed change counted once");
}
