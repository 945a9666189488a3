//! The raw envelope on the wire: Confluent framing read by hand, and the Avro body decoded by
//! apache-avro directly with the schema text from `schemas/`, not through Switchboard's
//! codec, so a bug shared by encoder and decoder cannot hide. Plus the registry's BACKWARD
//! rule refusing an incompatible change of the envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use apache_avro::types::Value;
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::{CHANGE_EVENT_SCHEMA, ChangeEvent, Operation};
use switchboard_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_event_bytes_are_confluent_framed_avro_that_any_reader_decodes() {
    ensure_stack();
    let topic = format!("{}.raw.shop.customers", unique_prefix("wire"));
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let event = ChangeEvent {
        event_id: "e-1".into(),
        connection: "shop".into(),
        system: "shopify".into(),
        entity: "customers".into(),
        record_id: "820982911946154508".into(),
        operation: Operation::Update,
        source_timestamp: Some(1_640_995_200_000),
        received_at: 1_640_995_201_000,
        api_version: Some("2025-01".into()),
        delivery_id: None,
        payload: r#"{"id":820982911946154508}"#.into(),
    };
    let bytes = codec
        .encode(&topic, CHANGE_EVENT_SCHEMA, &event)
        .await
        .unwrap();

    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let registered: serde_json::Value = reqwest::get(format!(
        "{}/subjects/{topic}-value/versions/latest",
        registry_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        registered["id"].as_u64(),
        Some(u64::from(id)),
        "subject {topic}-value holds the ID in the bytes"
    );

    let schema = apache_avro::Schema::parse_str(CHANGE_EVENT_SCHEMA.text).unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap();
    let value = reader.read_value(&mut &bytes[5..]).unwrap();
    let Value::Record(fields) = value else {
        panic!("not a record: {value:?}")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        field("record_id"),
        Value::String("820982911946154508".into())
    );
    assert_eq!(field("operation"), Value::Enum(1, "UPDATE".into()));
    assert_eq!(
        field("source_timestamp"),
        Value::Union(1, Box::new(Value::TimestampMillis(1_640_995_200_000)))
    );
    assert_eq!(field("delivery_id"), Value::Union(0, Box::new(Value::Null)));

    let back: ChangeEvent = codec.decode(&bytes).await.unwrap();
    assert_eq!(back, event);

    // A new required field without default breaks BACKWARD: the registry must refuse it.
    let broken = CHANGE_EVENT_SCHEMA.text.replacen(
        r#""fields": ["#,
        r#""fields": [{"name": "tenant", "type": "string"},"#,
        1,
    );
    let response = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{topic}-value/versions",
            registry_url()
        ))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({"schema": broken}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        409,
        "an incompatible envelope is refused"
    );
}
