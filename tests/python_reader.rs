//! A client nobody here wrote reads the canonical topic: Python's `confluent-kafka` with its
//! `AvroDeserializer` and `SchemaRegistryClient` against the registry's Confluent-compatible
//! API, consuming with `isolation.level=read_committed` what the real transformer wrote in
//! Kafka transactions from signed Shopify webhooks. Its view must equal Switchboard's own,
//! record for record.
//!
//! The Python environment comes from `scripts/python-env.sh` (pinned versions in
//! `tests/python/requirements.txt`, cached under `~/.cache/switchboard/venv`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::Message;
use switchboard_core::avro::AvroCodec;
use switchboard_core::canonical::{Contact, canonical_id};
use switchboard_core::config::RegistryConfig;
use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

const CUSTOMERS: u64 = 12;

/// The venv's python, installing it first if needed.
fn python() -> PathBuf {
    let output = Command::new(workspace_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        output.status.success(),
        "python-env.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confluent_kafka_python_reads_what_the_transformer_wrote() {
    let python = python();
    let world = World::new("python-reader", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;

    let first_id = 9_007_199_254_740_993u64; // 2^53 + 1: a float would round it
    for i in 0..CUSTOMERS {
        let payload = ShopifyWebhooks::customer_payload(
            first_id + i,
            &format!("Reader{i}@Example.com"),
            "Ada",
            &format!("Lovelace-{i}"),
            time::OffsetDateTime::now_utc(),
        );
        let body = serde_json::to_vec(&payload).unwrap();
        let status = shop
            .send("customers/create", &body, &format!("py-{i}"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }

    // Switchboard's own reading: committed records, decoded by its codec.
    let records = read_topic(
        &kafka_bootstrap(),
        &world.canonical_topic(),
        CUSTOMERS as usize,
        Duration::from_secs(90),
        Duration::from_millis(500),
    );
    assert_eq!(
        records.len(),
        CUSTOMERS as usize,
        "one canonical record each"
    );
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let mut ours: BTreeMap<String, Contact> = BTreeMap::new();
    for record in &records {
        let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
        ours.insert(key, codec.decode(record.payload().unwrap()).await.unwrap());
    }

    // The Python client's reading of the same topic.
    let topic = world.canonical_topic();
    let group = format!("{}.python-reader", world.prefix);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(workspace_root().join("tests/python/read_canonical.py"))
            .args(["--bootstrap", &kafka_bootstrap()])
            .args(["--registry", &registry_url()])
            .args(["--topic", &topic])
            .args(["--group", &group])
            .args(["--expect", &CUSTOMERS.to_string()])
            .args(["--timeout", "60"])
            .output()
            .expect("run read_canonical.py")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "read_canonical.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let theirs = report["records"].as_array().unwrap();
    assert_eq!(
        theirs.len(),
        CUSTOMERS as usize,
        "Python read each record exactly once"
    );

    for record in theirs {
        let key = record["key"].as_str().unwrap();
        let value = &record["value"];
        let contact = ours
            .get(key)
            .unwrap_or_else(|| panic!("Python read a record Switchboard did not: {record}"));
        // Every field of the canonical record, as Python sees it.
        let expected = serde_json::to_value(contact).unwrap();
        for (field, want) in expected.as_object().unwrap() {
            assert_eq!(&value[field], want, "field {field} of {key}");
        }
        assert_eq!(value["id"], key, "keyed by canonical ID");
    }

    // And the content is what the webhooks said: e-mails lower-cased, IDs unrounded.
    let mut source_ids: Vec<String> = theirs
        .iter()
        .map(|r| r["value"]["source_id"].as_str().unwrap().to_owned())
        .collect();
    source_ids.sort();
    let mut expected: Vec<String> = (0..CUSTOMERS).map(|i| (first_id + i).to_string()).collect();
    expected.sort();
    assert_eq!(source_ids, expected);
    let first = ours
        .get(&canonical_id("shop", "customers", &first_id.to_string()))
        .unwrap();
    assert_eq!(first.email.as_deref(), Some("reader0@example.com"));
}
