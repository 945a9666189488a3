//! The transformer's rules on the real broker and registry: identity across systems, conflict
//! rules by source time and priority, review holds with a decision, and drifted source
//! payloads dead-lettered while the partition moves on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchboard_core::avro::AvroCodec;
use switchboard_core::canonical::Contact;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::{ChangeEvent, Operation};
use switchboard_core::raw::RawPublisher;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

fn yaml(prefix: &str) -> String {
    format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify}}
  crm: {{type: pipedrive}}
flows:
  - {{name: shop-contacts, from: shop.customers, mapping: shopify/customer-to-contact.v1, to: contact}}
  - {{name: crm-contacts, from: crm.persons, mapping: pipedrive/person-to-contact.v1, to: contact}}
policies:
  contact:
    phone: {{rule: source_priority, order: [crm, shop]}}
    last_name: {{rule: review, window_secs: 600}}
transformer:
  admin_listen: "127.0.0.1:0"
  mappings_dir: "{root}/mappings"
  schemas_dir: "{root}/schemas"
  linger_ms: 10
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        root = workspace_root().display(),
    )
}

fn shop_event(id: u64, ts: i64, payload: serde_json::Value) -> ChangeEvent {
    event(
        "shop",
        "shopify",
        "customers",
        &id.to_string(),
        ts,
        Some("2025-01"),
        payload,
    )
}

fn crm_event(id: u64, ts: i64, person: serde_json::Value) -> ChangeEvent {
    let body = serde_json::json!({
        "data": person, "previous": null,
        "meta": {"action": "change", "entity": "person", "entity_id": id.to_string(), "version": "2.0"}
    });
    event(
        "crm",
        "pipedrive",
        "persons",
        &id.to_string(),
        ts,
        Some("2.0"),
        body,
    )
}

fn event(
    connection: &str,
    system: &str,
    entity: &str,
    id: &str,
    ts: i64,
    api_version: Option<&str>,
    payload: serde_json::Value,
) -> ChangeEvent {
    ChangeEvent {
        event_id: ChangeEvent::derive_event_id(connection, entity, id, None, Some(ts)),
        connection: connection.into(),
        system: system.into(),
        entity: entity.into(),
        record_id: id.into(),
        operation: Operation::Update,
        source_timestamp: Some(ts),
        received_at: ts,
        api_version: api_version.map(str::to_owned),
        delivery_id: None,
        payload: payload.to_string(),
    }
}

struct Rig {
    prefix: String,
    publisher: RawPublisher,
    codec: AvroCodec,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Rig {
    async fn start(test: &str) -> Self {
        init_logging();
        ensure_stack();
        let prefix = unique_prefix(test);
        let config = load(&yaml(&prefix));
        let shutdown = CancellationToken::new();
        switchboard_transformer::start(config.clone(), shutdown.clone())
            .await
            .unwrap();
        let codec = AvroCodec::new(&RegistryConfig {
            url: registry_url(),
            basic_auth: None,
        })
        .unwrap();
        let publisher = RawPublisher::new(&config, codec.clone(), Duration::from_secs(10)).unwrap();
        Self {
            prefix,
            publisher,
            codec,
            _shutdown: shutdown.drop_guard(),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// Publishes `events` and waits until the transformer has committed past them.
    async fn feed(&self, events: &[ChangeEvent]) {
        for e in events {
            self.publisher.publish(e).await.unwrap();
        }
        let topic = self.topic(&format!(
            "raw.{}.{}",
            events[0].connection, events[0].entity
        ));
        let raw = read_topic(
            &kafka_bootstrap(),
            &topic,
            usize::MAX,
            Duration::from_secs(2),
            Duration::ZERO,
        );
        let group = self.topic("transformer");
        assert!(
            eventually(Duration::from_secs(60), || group_caught_up(
                &kafka_bootstrap(),
                &group,
                &raw
            ))
            .await,
            "the transformer consumed {topic}"
        );
    }

    async fn contacts(&self) -> Vec<Contact> {
        let records = read_topic(
            &kafka_bootstrap(),
            &self.topic("canonical.contact"),
            usize::MAX,
            Duration::from_secs(2),
            Duration::ZERO,
        );
        let mut contacts = Vec::new();
        for r in sorted(records) {
            contacts.push(self.codec.decode(r.payload().unwrap()).await.unwrap());
        }
        contacts
    }
}

/// Records of one key in offset order (tests here use one key per topic).
fn sorted(mut records: Vec<OwnedMessage>) -> Vec<OwnedMessage> {
    records.sort_by_key(|r| (r.partition(), r.offset()));
    records
}

fn review_values(record: &OwnedMessage) -> Option<serde_json::Value> {
    record.payload().map(|p| serde_json::from_slice(p).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_edits_follow_source_time_priority_and_review() {
    let rig = Rig::start("conflicts").await;
    let customer = |first: &str, last: &str, phone: &str| serde_json::json!({"id": 1, "email": "Ada@Example.com", "first_name": first, "last_name": last, "phone": phone});

    // Out of order from one source: the older edit arrives second and loses.
    rig.feed(&[
        shop_event(1, 20_000, customer("Ada", "Lovelace", "+31 shop-1")),
        shop_event(1, 15_000, customer("Old", "Lovelace", "+31 shop-1")),
    ])
    .await;
    let contacts = rig.contacts().await;
    assert_eq!(contacts.len(), 1, "the late, older edit changed nothing");
    assert_eq!(contacts[0].first_name.as_deref(), Some("Ada"));

    // Pipedrive knows the same person by e-mail: same canonical record. Its phone wins by
    // priority; its last name, edited within the review window, is held.
    rig.feed(&[crm_event(
        8,
        21_000,
        serde_json::json!({"id": 8, "first_name": "Ada", "last_name": "King",
            "emails": [{"value": "ada@example.com", "primary": true}],
            "phones": [{"value": "+31 crm", "primary": true}]}),
    )])
    .await;
    // A newer shop phone still loses to the higher-priority source.
    rig.feed(&[shop_event(
        1,
        40_000,
        customer("Ada", "Lovelace", "+31 shop-2"),
    )])
    .await;
    let contacts = rig.contacts().await;
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    let merged = &contacts[1];
    assert_eq!(
        merged.id, contacts[0].id,
        "one canonical record for both systems"
    );
    assert_eq!(merged.phone.as_deref(), Some("+31 crm"));
    assert_eq!(
        merged.last_name.as_deref(),
        Some("Lovelace"),
        "held, not overwritten"
    );

    let reviews = sorted(read_topic(
        &kafka_bootstrap(),
        &rig.topic("review"),
        usize::MAX,
        Duration::from_secs(2),
        Duration::ZERO,
    ));
    let open = review_values(reviews.last().unwrap()).unwrap();
    let held: Vec<&str> = open["held"]["last_name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["Lovelace", "King", "Lovelace"], "{open}");
    assert_eq!(reviews.last().unwrap().key(), Some(merged.id.as_bytes()));

    // A person decides: the field takes the chosen value and the review is closed.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&rig.topic("review.decisions"))
                .key(&merged.id)
                .payload(r#"{"field": "last_name", "value": "King", "decided_by": "ops@acme"}"#),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let canonical = rig.topic("canonical.contact");
    assert!(
        eventually(Duration::from_secs(30), || {
            read_topic(
                &kafka_bootstrap(),
                &canonical,
                3,
                Duration::from_secs(1),
                Duration::ZERO,
            )
            .len()
                >= 3
        })
        .await,
        "the decision wrote the record"
    );
    let contacts = rig.contacts().await;
    assert_eq!(contacts.len(), 3);
    assert_eq!(contacts[2].last_name.as_deref(), Some("King"));
    assert_eq!(contacts[2].phone.as_deref(), Some("+31 crm"));
    let reviews = sorted(read_topic(
        &kafka_bootstrap(),
        &rig.topic("review"),
        usize::MAX,
        Duration::from_secs(2),
        Duration::ZERO,
    ));
    assert_eq!(
        review_values(reviews.last().unwrap()),
        None,
        "closed: a tombstone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drifted_payload_is_dead_lettered_and_the_partition_moves_on() {
    let rig = Rig::start("drift").await;
    let good =
        serde_json::json!({"id": 5, "email": "x@example.com", "first_name": "X", "tags": "vip"});
    // Shopify changed `id` to a string: schema drift for API version 2025-01.
    let drifted = serde_json::json!({"id": "gid://shopify/Customer/5", "email": "x@example.com"});
    rig.feed(&[shop_event(5, 1_000, drifted), shop_event(5, 2_000, good)])
        .await;

    let dlq = read_topic(
        &kafka_bootstrap(),
        &rig.topic("dlq.transformer"),
        1,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    assert_eq!(dlq.len(), 1);
    let header = |name: &str| {
        dlq[0]
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("sb.error.class").as_deref(), Some("data"));
    assert_eq!(header("sb.error.reason").as_deref(), Some("schema_drift"));
    assert!(
        header("sb.error.message")
            .unwrap()
            .contains("field `id` should be integer")
    );

    let contacts = rig.contacts().await;
    assert_eq!(
        contacts.len(),
        1,
        "the next event of the partition went through"
    );
    assert_eq!(contacts[0].first_name.as_deref(), Some("X"));
}
