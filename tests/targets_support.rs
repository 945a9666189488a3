//! Shared by the target tests (included with `#[path]`): canonical records produced
//! straight to `<prefix>.canonical.<entity>` (Confluent-framed Avro, as the transformer
//! writes them), sink configurations, and reading the sandboxes' request logs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_sandbox::control::LoggedRequest;
use switchboard_tests::*;

/// The source connection every test flow names (a Pipedrive poll nobody runs): records
/// say they came from `src.<entity>`, so no target is their source (echo suppression).
pub const SOURCE: &str = r#"  src:
    type: pipedrive
    api_token: ${env:CARGO_PKG_NAME}
    poll: {entities: [persons, organizations, deals]}
"#;

/// A canonical record of `entity` with the envelope filled in; `fields` override.
pub fn canonical(entity: &str, source_entity: &str, native: &str, fields: Value) -> Value {
    let id = switchboard_core::canonical::canonical_id("src", source_entity, native);
    let mut record = json!({
        "id": id,
        "deleted": false,
        "source_connection": "src",
        "source_entity": source_entity,
        "source_id": native,
        "source_updated_at": 1_700_000_000_000i64,
        "source_event_id": format!("ev-{native}"),
        "mapping": format!("test/{entity}.v1"),
    });
    let schema: apache_avro::Schema = apache_avro::Schema::parse_str(
        switchboard_tests::catalog()
            .get(entity, None)
            .copied()
            .unwrap()
            .schema
            .text,
    )
    .unwrap();
    // Optional fields default to null, arrays to empty, as a mapping would leave them.
    if let apache_avro::Schema::Record(r) = &schema {
        for field in &r.fields {
            if record.get(&field.name).is_none() {
                let empty = match &field.schema {
                    apache_avro::Schema::Array(_) => json!([]),
                    _ => Value::Null,
                };
                record[&field.name] = empty;
            }
        }
    }
    for (k, v) in fields.as_object().unwrap() {
        record[k] = v.clone();
    }
    record
}

/// Produces `records` (canonical JSON of `entity`) to `<prefix>.canonical.<entity>`,
/// keyed by canonical ID, in order.
pub async fn produce(prefix: &str, entity: &str, records: &[Value]) {
    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let def = switchboard_tests::catalog()
        .get(entity, None)
        .copied()
        .unwrap()
        .schema;
    let schema = apache_avro::Schema::parse_str(def.text).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let topic = format!("{prefix}.canonical.{entity}");
    // The topic as the sink declares it (the broker does not auto-create topics).
    let kafka: switchboard_core::config::KafkaConfig = serde_json::from_value(json!({
        "bootstrap_servers": kafka_bootstrap(), "topic_prefix": prefix, "partitions": 1
    }))
    .unwrap();
    switchboard_core::kafka::ensure_topics(
        &kafka,
        &[switchboard_core::kafka::TopicSpec::new(
            topic.clone(),
            switchboard_core::kafka::Cleanup::CompactDelete(Duration::from_secs(30 * 24 * 3600)),
        )],
    )
    .await
    .unwrap();
    for record in records {
        let value = to_avro(record)
            .resolve(&schema)
            .unwrap_or_else(|e| panic!("{record}: {e}"));
        let bytes = codec.encode_value(&topic, def, value).await.unwrap();
        let key = record["id"].as_str().unwrap().to_owned();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&bytes),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
}

/// JSON as an Avro value to resolve against a schema (numbers as longs or doubles).
fn to_avro(value: &Value) -> apache_avro::types::Value {
    use apache_avro::types::Value as A;
    match value {
        Value::Null => A::Null,
        Value::Bool(b) => A::Boolean(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| A::Double(n.as_f64().unwrap()), A::Long),
        Value::String(s) => A::String(s.clone()),
        Value::Array(items) => A::Array(items.iter().map(to_avro).collect()),
        Value::Object(map) => A::Map(map.iter().map(|(k, v)| (k.clone(), to_avro(v))).collect()),
    }
}

/// A sink configuration: the source connection, `connections` (YAML, indented by two),
/// `flows` (YAML list items), `extra` top-level YAML.
pub fn sink_yaml(prefix: &str, connections: &str, flows: &str, extra: &str) -> String {
    format!(
        r#"
kafka:
  bootstrap_servers: "{bootstrap}"
  topic_prefix: "{prefix}"
  partitions: 1
registry:
  url: "{registry}"
{extra}
connections:
{SOURCE}{connections}
flows:
{flows}
sink:
  admin_listen: "127.0.0.1:0"
  max_backoff_ms: 1000
  retry_tiers_secs: [5]
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    )
}

/// A log entry's virtual time in seconds since the epoch.
pub fn at_secs(request: &LoggedRequest) -> f64 {
    let t =
        time::OffsetDateTime::parse(&request.at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// What a run of API calls did at a rate-limited sandbox.
#[derive(Debug)]
pub struct RateReport {
    /// Calls answered.
    pub calls: usize,
    /// Calls answered 429.
    pub throttled: usize,
    /// Calls served (not 429).
    pub served: usize,
    /// Sandbox seconds from the first to the last call.
    pub span_secs: f64,
    /// Smallest gap between a 429 and the next call, sandbox seconds.
    pub min_gap_after_429: Option<f64>,
}

/// The report over `requests` whose path starts with `prefix`.
pub fn rate_report(requests: &[LoggedRequest], prefix: &str) -> RateReport {
    let calls: Vec<&LoggedRequest> = requests
        .iter()
        .filter(|r| r.path.starts_with(prefix))
        .collect();
    let throttled = calls.iter().filter(|r| r.status == 429).count();
    let span_secs = match (calls.first(), calls.last()) {
        (Some(a), Some(b)) => at_secs(b) - at_secs(a),
        _ => 0.0,
    };
    let min_gap_after_429 = calls
        .windows(2)
        .filter(|w| w[0].status == 429)
        .map(|w| at_secs(w[1]) - at_secs(w[0]))
        .reduce(f64::min);
    RateReport {
        calls: calls.len(),
        throttled,
        served: calls.len() - throttled,
        span_secs,
        min_gap_after_429,
    }
}

/// Waits for the two deliveries of one record's deletion to reach the emulator behind
/// `control`, and checks they asked for the same record: deleted (`ok`), then found gone.
pub async fn deleted_once_then_found_gone(control: &switchboard_sandbox::Control, ok: u16) {
    let deletes = || calls(control, "DELETE");
    assert!(
        eventually(Duration::from_secs(60), || deletes().len() == 2).await,
        "both deliveries of the deletion reached the target"
    );
    let deletes = deletes();
    assert_eq!(
        deletes[0].path, deletes[1].path,
        "the same record: {deletes:?}"
    );
    assert_eq!(
        deletes.iter().map(|r| r.status).collect::<Vec<_>>(),
        [ok, 404],
        "deleted once, then found gone"
    );
}
