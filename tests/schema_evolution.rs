//! Schema evolution on the real broker and registry.
//!
//! - Contact v1 and v2 records on one topic, written through Switchboard's codec; an old
//!   reader (v1 schema) and a new reader (v2 schema) both decode every record from the raw
//!   Confluent-framed bytes, resolving the writer schema fetched by ID from the registry to
//!   their own reader schema with apache-avro directly (not through Switchboard's codec).
//! - `switchboard schemas check`, the real binary, refuses an incompatible change with the
//!   registry's reason and a non-zero exit, and passes the schemas in `schemas/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};
use switchboard_core::avro::{AvroCodec, schema_id};
use switchboard_core::canonical::Contact;
use switchboard_core::config::RegistryConfig;
use switchboard_core::kafka::{Cleanup, TopicSpec, ensure_topics};
use switchboard_tests::CONTACT_V1_SCHEMA;
use switchboard_tests::*;

/// Contact as v2 writes it (v1 plus `company` and `locale`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ContactV2 {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    company: Option<String>,
    locale: Option<String>,
    deleted: bool,
    source_connection: String,
    source_entity: String,
    source_id: String,
    source_updated_at: Option<i64>,
    source_event_id: String,
    mapping: String,
}

fn v1(n: u32) -> Contact {
    Contact {
        id: format!("c-{n}"),
        email: Some(format!("v1-{n}@example.com")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        phone: None,
        deleted: false,
        source_connection: "shop".into(),
        source_entity: "customers".into(),
        source_id: n.to_string(),
        source_updated_at: Some(1_700_000_000_000 + i64::from(n)),
        source_event_id: format!("e-{n}"),
        mapping: "shopify/customer-to-contact.v1".into(),
    }
}

fn v2(n: u32) -> ContactV2 {
    ContactV2 {
        id: format!("c-{n}"),
        email: Some(format!("v2-{n}@example.com")),
        first_name: Some("Grace".into()),
        last_name: Some("Hopper".into()),
        phone: Some("+31 20 123 4567".into()),
        company: Some("Acme B.V.".into()),
        locale: Some("nl-NL".into()),
        deleted: false,
        source_connection: "crm".into(),
        source_entity: "persons".into(),
        source_id: n.to_string(),
        source_updated_at: None,
        source_event_id: format!("e-{n}"),
        mapping: "pipedrive/person-to-contact.v2".into(),
    }
}

/// The writer schema of `id`, as the registry holds it.
async fn writer_schema(id: u32) -> Schema {
    let body: serde_json::Value = reqwest::get(format!("{}/schemas/ids/{id}", registry_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Schema::parse_str(body["schema"].as_str().unwrap()).unwrap()
}

/// Decodes an Avro body written with `writer` as `reader` sees it (Avro schema resolution).
fn resolve(writer: &Schema, reader: &Schema, body: &[u8]) -> apache_avro::types::Value {
    GenericDatumReader::builder(writer)
        .reader_schema(reader)
        .build()
        .unwrap()
        .read_value(&mut &body[..])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_readers_decode_v1_and_v2_contacts_from_one_topic() {
    ensure_stack();
    let topic = format!("{}.canonical.contact", unique_prefix("evolution"));
    // An old writer and a new one, as during a rolling upgrade. (One codec caches the schema
    // per subject, so a single codec keeps writing the version it started with.)
    let registry = RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    };
    let (old_writer, new_writer) = (
        AvroCodec::new(&registry).unwrap(),
        AvroCodec::new(&registry).unwrap(),
    );
    let v2_def = switchboard_tests::catalog()
        .get("contact", Some(2))
        .copied()
        .unwrap()
        .schema;
    let config = load(&format!(
        "kafka: {{bootstrap_servers: '{}'}}\nregistry: {{url: '{}'}}\n",
        kafka_bootstrap(),
        registry_url()
    ));
    let spec = TopicSpec::new(topic.clone(), Cleanup::Delete(Duration::from_secs(3600)));
    ensure_topics(&config.kafka, &[spec]).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();

    // v1, v2, v1, v2 interleaved on one topic: the subject ends with two versions.
    for n in 1..=4u32 {
        let bytes = if n % 2 == 1 {
            old_writer
                .encode(&topic, CONTACT_V1_SCHEMA, &v1(n))
                .await
                .unwrap()
        } else {
            new_writer.encode(&topic, v2_def, &v2(n)).await.unwrap()
        };
        let key = format!("c-{n}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&bytes),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .unwrap();
    }

    let records = read_topic(
        &kafka_bootstrap(),
        &topic,
        4,
        Duration::from_secs(30),
        Duration::from_millis(500),
    );
    assert_eq!(records.len(), 4);
    let ids: std::collections::BTreeSet<u32> = records
        .iter()
        .map(|r| schema_id(r.payload().unwrap()).expect("Confluent-framed"))
        .collect();
    assert_eq!(ids.len(), 2, "two writer schemas on the topic: {ids:?}");

    let old_reader = Schema::parse_str(CONTACT_V1_SCHEMA.text).unwrap();
    let new_reader = Schema::parse_str(v2_def.text).unwrap();
    let mut by_old: BTreeMap<String, Contact> = BTreeMap::new();
    let mut by_new: BTreeMap<String, ContactV2> = BTreeMap::new();
    for record in &records {
        let bytes = record.payload().unwrap();
        assert_eq!(bytes[0], 0, "magic byte");
        let writer = writer_schema(schema_id(bytes).unwrap()).await;
        let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
        let old = resolve(&writer, &old_reader, &bytes[5..]);
        let new = resolve(&writer, &new_reader, &bytes[5..]);
        by_old.insert(key.clone(), apache_avro::from_value(&old).unwrap());
        by_new.insert(key, apache_avro::from_value(&new).unwrap());
    }

    for n in 1..=4u32 {
        let key = format!("c-{n}");
        let (old, new) = (&by_old[&key], &by_new[&key]);
        if n % 2 == 1 {
            // Written as v1: the old reader sees it whole, the new one fills the defaults.
            assert_eq!(old, &v1(n));
            assert_eq!(new.email, v1(n).email);
            assert_eq!(new.source_updated_at, v1(n).source_updated_at);
            assert_eq!(
                (new.company.as_deref(), new.locale.as_deref()),
                (None, None)
            );
        } else {
            // Written as v2: the new reader sees it whole, the old one skips the new fields.
            assert_eq!(new, &v2(n));
            assert_eq!(old.email, v2(n).email);
            assert_eq!(old.phone, v2(n).phone);
            assert_eq!(old.mapping, v2(n).mapping);
        }
    }
}

/// Runs the built `switchboard` binary with `args`; returns exit code and stdout.
fn switchboard(args: &[&str]) -> (i32, String, String) {
    let binary = service_binary("switchboard-cli", "switchboard");
    let output = Command::new(binary)
        .current_dir(workspace_root())
        .args(args)
        .env_remove("SB_CONFIG")
        .output()
        .expect("run switchboard");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_check_refuses_an_incompatible_change_with_the_registry_reason() {
    ensure_stack();
    let prefix = unique_prefix("schemas-check");
    let registry = registry_url();
    let common = ["--registry", registry.as_str(), "--prefix", prefix.as_str()];

    // The project's own schemas register (v1 then v2 of contact) and then check clean.
    let (code, out, err) = switchboard(&[&["schemas", "register"][..], &common].concat());
    assert_eq!(code, 0, "register failed:\n{out}\n{err}");
    let (code, out, err) = switchboard(&[&["schemas", "check"][..], &common].concat());
    assert_eq!(
        code, 0,
        "the project's schemas are compatible:\n{out}\n{err}"
    );
    assert!(out.contains("already registered (version 2"), "{out}");

    // contact v3 changes a field's type (phone: optional string -> long).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("canonical")).unwrap();
    let v2 = switchboard_tests::catalog()
        .get("contact", Some(2))
        .copied()
        .unwrap()
        .schema
        .text;
    let broken = v2.replacen(
        r#"{"name": "phone", "type": ["null", "string"], "default": null}"#,
        r#"{"name": "phone", "type": "long", "default": 0}"#,
        1,
    );
    assert_ne!(broken, v2, "the edit applied");
    std::fs::write(dir.path().join("canonical/contact.v3.avsc"), &broken).unwrap();
    let dir_arg = dir.path().display().to_string();
    let check = [
        &["schemas", "check", "--dir", dir_arg.as_str()][..],
        &common,
    ]
    .concat();

    let (code, out, err) = switchboard(&[&check[..], &["--output", "json"]].concat());
    assert_eq!(
        code, 1,
        "an incompatible schema fails the command:\n{out}\n{err}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passed"], false);
    let row = &report["results"][0];
    assert_eq!(row["subject"], format!("{prefix}.canonical.contact-value"));
    assert_eq!(row["status"], "incompatible");
    let reasons: Vec<&str> = row["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons.iter().any(|r| r.contains("/fields/")),
        "the registry's reason names the field: {reasons:?}"
    );

    // The text form says the same to a person.
    let (code, text, _) = switchboard(&check);
    assert_eq!(code, 1);
    assert!(text.contains("FAIL canonical/contact.v3.avsc"), "{text}");
    assert!(text.contains(reasons[0]), "{text}");

    // Nothing was registered by the check.
    let versions: Vec<u32> = reqwest::get(format!(
        "{registry}/subjects/{prefix}.canonical.contact-value/versions"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(versions, [1, 2]);
}

/// A schemas directory holding one canonical file, `contact.v1.avsc`, as `text`.
fn schemas_dir_with_contact(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("canonical")).unwrap();
    std::fs::write(dir.path().join("canonical/contact.v1.avsc"), text).unwrap();
    dir
}

fn transformer_config(prefix: &str, schemas: &std::path::Path) -> switchboard_core::Config {
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 1}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify}}
flows:
  - {{name: shop-contacts, from: shop.customers, mapping: shopify/customer-to-contact.v1, to: contact, schema_version: 1}}
transformer:
  admin_listen: "127.0.0.1:0"
  mappings_dir: "{root}/mappings"
  schemas_dir: "{schemas}"
  linger_ms: 10
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        root = workspace_root().display(),
        schemas = schemas.display(),
    );
    switchboard_core::Config::from_yaml(&yaml).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transformer_does_not_start_when_the_registry_refuses_its_schema() {
    ensure_stack();
    let prefix = unique_prefix("schemas-start");
    let registry = registry_url();
    let (code, out, err) = switchboard(&[
        "schemas",
        "register",
        "--registry",
        registry.as_str(),
        "--prefix",
        prefix.as_str(),
    ]);
    assert_eq!(code, 0, "register failed:\n{out}\n{err}");

    // This deployment's contact v1 is a valid file on its own, but its record has another
    // name than the registered versions': Avro cannot resolve one into the other.
    let v1 = CONTACT_V1_SCHEMA.text;
    let renamed = v1.replacen(r#""name": "Contact""#, r#""name": "Person""#, 1);
    assert_ne!(renamed, v1, "the edit applied");
    let schemas = schemas_dir_with_contact(&renamed);
    let stopped = tokio::time::timeout(
        Duration::from_secs(120),
        switchboard_transformer::run(
            transformer_config(&prefix, schemas.path()),
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await
    .expect("the transformer stops by itself");
    let message = format!("{:#}", stopped.expect_err("it refuses to start"));
    let subject = format!("{prefix}.canonical.contact-value");
    assert!(message.contains(&subject), "{message}");
    assert!(message.contains("canonical schema contact v1"), "{message}");
    assert!(message.contains("the schema registry refuses"), "{message}");
    let reason = message.split_once(": ").map(|(_, r)| r).unwrap_or_default();
    assert!(
        !reason.trim().is_empty(),
        "with the registry's reason: {message}"
    );

    // Nothing was registered, and the same deployment with the project's own contact v1
    // starts (and stops when told to).
    let versions: Vec<u32> = reqwest::get(format!("{registry}/subjects/{subject}/versions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, [1, 2]);
    let schemas = schemas_dir_with_contact(v1);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = switchboard_transformer::start(
        transformer_config(&prefix, schemas.path()),
        shutdown.clone(),
    )
    .await
    .unwrap();
    wait_ready(started.admin).await;
    shutdown.cancel();
    started.task.await.unwrap().unwrap();
}
