//! Pipedrive reconciliation on the real broker against the Pipedrive sandbox: while the
//! webhook subscription exists, its deliveries are published and the poll republishes none
//! of them (a webhook and a poll of the same version are one event); after the subscription
//! is gone (as Pipedrive removes or bans failing ones), the poll publishes exactly the
//! changes no webhook brought and counts each as a catch. Its own test binary: it reads
//! process-wide metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::ChangeEvent;
use switchboard_sandbox::pipedrive::{Entity, Trigger};
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "pd-reconcile-token";
const HOOK_PASSWORD: &str = "hook-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipedrive_reconciliation_publishes_exactly_what_webhooks_missed() {
    init_logging();
    ensure_stack();
    let crm = PipedriveSandbox::start(PipedriveConfig::new(TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("pdrec");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  crm:
    type: pipedrive
    base_url: "{base}"
    api_token: "{token}"
    webhook_auth: {{username: switchboard, password: "{hook}"}}
    reconcile: {{entities: [persons], every_secs: 1}}
ingest: {{listen: "127.0.0.1:0"}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        base = crm.base_url(),
        token = secret_ref(dir.path(), "token", TOKEN),
        hook = secret_ref(dir.path(), "hook", HOOK_PASSWORD),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let http = reqwest::Client::new();
    let subscription: serde_json::Value = http
        .post(format!("{}/v1/webhooks", crm.base_url()))
        .header("x-api-token", TOKEN)
        .json(&serde_json::json!({
            "subscription_url": format!("http://{}/webhooks/crm", ingest.addr),
            "event_action": "*", "event_object": "person",
            "http_auth_user": "switchboard", "http_auth_password": HOOK_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook_id = subscription["data"]["id"].as_u64().unwrap();

    let topic = format!("{prefix}.raw.crm.persons");
    let bootstrap = kafka_bootstrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let person = crm
            .trigger(Trigger::create(
                Entity::Person,
                serde_json::json!({"name": format!("Seen {i}")}),
            ))
            .unwrap();
        ids.push(person["id"].as_u64().unwrap());
    }
    assert!(
        eventually(Duration::from_secs(30), || topic_size(&bootstrap, &topic)
            >= 5)
        .await,
        "webhooks delivered"
    );

    // The poll starts while webhooks still arrive: it must republish none of them.
    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        topic_size(&bootstrap, &topic),
        5,
        "a version delivered by webhook is not published again by the poll"
    );

    // The subscription is gone; these changes fire no webhook.
    let deleted = http
        .delete(format!("{}/v1/webhooks/{hook_id}", crm.base_url()))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    crm.clock().advance(Duration::from_secs(2)); // a new update_time second
    for i in 0..3 {
        crm.trigger(Trigger::create(
            Entity::Person,
            serde_json::json!({"name": format!("Missed {i}")}),
        ))
        .unwrap();
    }
    crm.trigger(Trigger::change(
        Entity::Person,
        ids[0],
        serde_json::json!({"name": "Seen 0, changed unseen"}),
    ))
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
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let mut versions = HashSet::new();
    for r in &raw {
        let event: ChangeEvent = codec
            .decode(rdkafka::Message::payload(r).unwrap())
            .await
            .unwrap();
        // Webhook and poll name a version the same way.
        assert_eq!(
            event.event_id,
            ChangeEvent::derive_event_id(
                "crm",
                "persons",
                &event.record_id,
                None,
                event.source_timestamp
            )
        );
        assert_eq!(
            event.source_timestamp.unwrap() % 1000,
            0,
            "update_time, whole seconds"
        );
        assert!(versions.insert((event.record_id, event.source_timestamp)));
    }

    let metrics = switchboard_core::telemetry::metrics_handle().render();
    let catches: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchboard_reconciliation_catches_total")
                && l.contains("connection=\"crm\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(catches, 4.0, "each missed change counted once");
}
