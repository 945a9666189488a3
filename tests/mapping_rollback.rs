//! Rolling a mapping back: name the previous version, rewind the transformer's group on the
//! raw topic to a time, and the canonical records come out as the old version made them,
//! under the same canonical IDs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::Message;
use switchboard_core::avro::AvroCodec;
use switchboard_core::canonical::Contact;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_core::raw::RawPublisher;
use switchboard_core::replay::{self, ResetTo};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 20;

fn yaml(prefix: &str, mappings: &Path, version: u32) -> String {
    format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify}}
flows:
  - {{name: shop-contacts, from: shop.customers, mapping: shopify/customer-to-contact.v{version}, to: contact}}
transformer:
  admin_listen: "127.0.0.1:0"
  mappings_dir: "{mappings}"
  schemas_dir: "{root}/schemas"
  linger_ms: 10
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        mappings = mappings.display(),
        root = workspace_root().display(),
    )
}

/// The shipped v1 mapping and its fixtures, plus a v2 that upper-cases first names.
fn mappings_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shopify = dir.path().join("shopify");
    let fixtures = shopify.join("customer-to-contact.fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let shipped = workspace_root().join("mappings/shopify");
    let v1 = std::fs::read_to_string(shipped.join("customer-to-contact.v1.jq")).unwrap();
    std::fs::write(shopify.join("customer-to-contact.v1.jq"), &v1).unwrap();
    let v2 = v1.replace(
        "first_name: .first_name,",
        "first_name: (.first_name | if . == null then null else ascii_upcase end),",
    );
    assert_ne!(v1, v2, "the v1 mapping still has the line v2 changes");
    std::fs::write(shopify.join("customer-to-contact.v2.jq"), v2).unwrap();
    for f in std::fs::read_dir(shipped.join("customer-to-contact.fixtures")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), fixtures.join(f.file_name())).unwrap();
    }
    dir
}

async fn latest_per_key(
    codec: &AvroCodec,
    topic: &str,
    expected: usize,
) -> (usize, BTreeMap<String, Contact>) {
    let mut records = read_topic(
        &kafka_bootstrap(),
        topic,
        expected,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    records.sort_by_key(|r| (r.partition(), r.offset()));
    let mut latest = BTreeMap::new();
    for r in &records {
        let contact: Contact = codec.decode(r.payload().unwrap()).await.unwrap();
        latest.insert(
            String::from_utf8(r.key().unwrap().to_vec()).unwrap(),
            contact,
        );
    }
    (records.len(), latest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_a_mapping_back_and_replaying_gives_the_old_output_under_the_same_ids() {
    init_logging();
    ensure_stack();
    let prefix = unique_prefix("rollback");
    let mappings = mappings_dir();
    let v2 = load(&yaml(&prefix, mappings.path(), 2));
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();

    let shutdown = CancellationToken::new();
    let started = switchboard_transformer::start(v2.clone(), shutdown.clone())
        .await
        .unwrap();
    let replay_from = switchboard_core::raw::now_millis();
    let publisher = RawPublisher::new(&v2, codec.clone(), Duration::from_secs(10)).unwrap();
    for i in 0..EVENTS {
        let id = (1000 + i).to_string();
        let payload = serde_json::json!({"id": 1000 + i, "email": format!("p{i}@example.com"), "first_name": format!("Name{i}"), "last_name": "L"});
        publisher
            .publish(&ChangeEvent {
                event_id: ChangeEvent::derive_event_id("shop", "customers", &id, None, Some(5_000)),
                connection: "shop".into(),
                system: "shopify".into(),
                entity: "customers".into(),
                record_id: id,
                operation: Operation::Update,
                source_timestamp: Some(5_000),
                received_at: 5_000,
                api_version: Some("2025-01".into()),
                delivery_id: None,
                payload: payload.to_string(),
            })
            .await
            .unwrap();
    }
    let canonical = format!("{prefix}.canonical.contact");
    let (count, by_v2) = latest_per_key(&codec, &canonical, EVENTS as usize).await;
    assert_eq!(count, EVENTS as usize);
    assert!(
        by_v2
            .values()
            .all(|c| c.first_name.as_deref().unwrap().starts_with("NAME"))
    );

    // Roll back: stop, rewind the group to the time before the events, run v1.
    shutdown.cancel();
    started.task.await.unwrap().unwrap();
    let group = format!("{prefix}.transformer");
    let raw = vec![format!("{prefix}.raw.shop.customers")];
    let plan = replay::plan(&v2.kafka, &group, &raw, ResetTo::Time(replay_from)).unwrap();
    assert_eq!(
        plan.iter().map(|p| p.replayed()).sum::<i64>(),
        EVENTS as i64,
        "the plan replays every event: {plan:?}"
    );
    let mut applied = false;
    for _ in 0..60 {
        // The stopped member may take a moment to leave the group.
        if replay::apply(&v2.kafka, &group, &plan).is_ok() {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(applied, "reset applied once the group was empty");

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_transformer::start(load(&yaml(&prefix, mappings.path(), 1)), shutdown.clone())
        .await
        .unwrap();
    let (count, by_v1) = latest_per_key(&codec, &canonical, 2 * EVENTS as usize).await;
    assert_eq!(count, 2 * EVENTS as usize, "every event was replayed once");
    assert_eq!(
        by_v1.keys().collect::<Vec<_>>(),
        by_v2.keys().collect::<Vec<_>>(),
        "the same canonical IDs"
    );
    for (id, contact) in &by_v1 {
        assert_eq!(contact.mapping, "shopify/customer-to-contact.v1");
        let old = by_v2[id].first_name.as_deref().unwrap();
        assert_eq!(contact.first_name.as_deref().unwrap().to_uppercase(), old);
        assert_ne!(
            contact.first_name.as_deref().unwrap(),
            old,
            "v1 output, not v2's"
        );
    }
}
