//! A rolling restart of every service under load loses nothing and doubles nothing: while
//! signed webhooks keep arriving, ingest-webhook, the transformer and the sink are each sent
//! SIGTERM (as Kubernetes does), must drain and exit cleanly within the grace period, and
//! are replaced. The sender retries refused deliveries as Shopify does. At the end every
//! customer is on the canonical topic once and in Pipedrive once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::Headers;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_sandbox::shopify::ShopifyWebhooks;
use switchboard_tests::*;

const N: u64 = 150;
const SHOP_SECRET: &str = "rolling-shop-secret";
const CRM_TOKEN: &str = "rolling-crm-token";

struct Service {
    name: &'static str,
    binary: std::path::PathBuf,
    ready: SocketAddr,
    child: Child,
}

impl Service {
    fn spawn(
        name: &'static str,
        binary: std::path::PathBuf,
        config: &std::path::Path,
        ready: SocketAddr,
    ) -> Self {
        let child = Command::new(&binary)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            name,
            binary,
            ready,
            child,
        }
    }

    /// SIGTERM, then a clean exit within the grace period.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited cleanly after SIGTERM: {status}",
                    self.name
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} drained within the grace period",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn restart(&mut self, config: &std::path::Path) {
        self.terminate();
        *self = Self::spawn(self.name, self.binary.clone(), config, self.ready);
        wait_ready(self.ready).await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_service_under_load_loses_and_doubles_nothing() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("rolling");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(CRM_TOKEN))
        .await
        .unwrap();
    let port = |_: &str| SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (ingest_addr, transformer_admin, sink_admin) =
        (port("ingest"), port("transformer"), port("sink"));
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: "2025-01", webhook_secret: "{shop}"}}
  crm: {{type: pipedrive, base_url: "{pipedrive}", api_token: "{crm}", {UNPACED_PIPEDRIVE}}}
flows:
  - {{name: contacts, from: shop.customers, mapping: shopify/customer-to-contact.v2, to: contact, sinks: [{{target: crm.persons, match_on: email}}]}}
ingest: {{listen: "{ingest_addr}", drain_ms: 500}}
transformer: {{admin_listen: "{transformer_admin}", mappings_dir: "{root}/mappings", schemas_dir: "{root}/schemas", linger_ms: 10}}
sink: {{admin_listen: "{sink_admin}", max_backoff_ms: 1000}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        shop = secret_ref(dir.path(), "shop", SHOP_SECRET),
        crm = secret_ref(dir.path(), "crm", CRM_TOKEN),
        pipedrive = pipedrive.base_url(),
        root = workspace_root().display(),
    );
    let config = dir.path().join("switchboard.yaml");
    std::fs::write(&config, &yaml).unwrap();

    let mut services = Vec::new();
    for (name, package, ready) in [
        ("ingest-webhook", "switchboard-ingest-webhook", ingest_addr),
        ("transformer", "switchboard-transformer", transformer_admin),
        ("sink", "switchboard-sink", sink_admin),
    ] {
        let service = Service::spawn(name, service_binary(package, package), &config, ready);
        wait_ready(ready).await;
        services.push(service);
    }

    // The load: one signed customer webhook every 40 ms, each retried until it is taken.
    let shop = Arc::new(
        ShopifyWebhooks::new(
            format!("http://{ingest_addr}/webhooks/shop"),
            SHOP_SECRET,
            "acme.myshopify.com",
            "2025-01",
        )
        .unwrap(),
    );
    let sender = tokio::spawn({
        let shop = shop.clone();
        async move {
            let mut refused = 0;
            for i in 0..N {
                let payload = ShopifyWebhooks::customer_payload(
                    8_000_000_000_000_000_000 + i,
                    &format!("roll{i}@example.com"),
                    "Rolling",
                    "Restart",
                    time::OffsetDateTime::now_utc(),
                );
                let body = serde_json::to_vec(&payload).unwrap();
                loop {
                    match shop
                        .send("customers/create", &body, &format!("wh-roll-{i}"))
                        .await
                    {
                        Ok(status) if status.is_success() => break,
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            refused
        }
    });

    // Roll every service once, one after the other, while the load runs.
    for service in &mut services {
        tokio::time::sleep(Duration::from_millis(800)).await;
        service.restart(&config).await;
    }
    let refused = sender.await.unwrap();
    assert!(
        eventually(Duration::from_secs(120), || pipedrive.persons().len()
            as u64
            >= N)
        .await,
        "every customer reached Pipedrive ({} of {N}; {refused} deliveries were refused and retried)",
        pipedrive.persons().len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..N {
        assert_eq!(
            pipedrive.creates_for_email(&format!("roll{i}@example.com")),
            1,
            "roll{i} created exactly once"
        );
    }
    let canonical = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.canonical.contact"),
        N as usize,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let events: HashSet<Vec<u8>> = canonical
        .iter()
        .map(|m| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == "sb.event.id"))
                .and_then(|h| h.value)
                .unwrap()
                .to_vec()
        })
        .collect();
    assert_eq!(
        canonical.len() as u64,
        N,
        "each customer once on the canonical topic"
    );
    assert_eq!(events.len() as u64, N);
}
