//! The audit trail the console shows, on the real broker and the Pipedrive sandbox: every
//! call the sink makes to a target lands on `<prefix>.audit`, keyed by the source record ID,
//! with its attempt, status and duration and without the API token; and each record's
//! outcome at the target (delivered with its native ID, dead-lettered with the reason, then
//! discarded by an operator) lands on `<prefix>.deliveries`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchboard_core::audit::{ApiCall, DeliveryOutcome, DeliveryState};
use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::pipedrive::PipedriveSandbox;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

/// Long and unusual, so finding it anywhere in the topic's bytes means it leaked.
const TOKEN: &str = "audit-crm-token-7f3a9c1e5b";

fn contact(n: u64, email: &str) -> Contact {
    shop_contact(n, email, "Ada", "Audited")
}

/// Starts a sink for `prefix` that delivers contacts to `pipedrive`; it stops when the
/// guard drops.
async fn start_sink(
    prefix: &str,
    dir: &std::path::Path,
    pipedrive: &PipedriveSandbox,
) -> tokio_util::sync::DropGuard {
    let yaml = pipedrive_sink_yaml(
        prefix,
        dir,
        &pipedrive.base_url(),
        TOKEN,
        UNPACED_PIPEDRIVE,
        "in_place_attempts: 2, max_backoff_ms: 100, retry_tiers_secs: [1]",
    );
    let shutdown = CancellationToken::new();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    shutdown.drop_guard()
}

/// The records of `topic` once it holds `expected` of them (or after a minute).
async fn read(topic: &str, expected: usize) -> Vec<OwnedMessage> {
    // The sink creates its topics as it starts: wait for them to be there and filled.
    eventually(Duration::from_secs(60), || {
        topic_size(&kafka_bootstrap(), topic) >= expected as i64
    })
    .await;
    read_topic(
        &kafka_bootstrap(),
        topic,
        expected,
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
}

fn key(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_delivery_is_audited_call_by_call_without_the_token() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("audit-calls");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
        .await
        .unwrap();
    // The first create is refused with 429, slowly, so its duration is visible.
    pipedrive.control().add_fault(FaultRule {
        endpoint: "POST /api/v2/persons".into(),
        error_rate: 1.0,
        status: 429,
        latency_ms: 150,
        count: Some(1),
    });
    let _sink = start_sink(&prefix, dir.path(), &pipedrive).await;
    let ada = contact(7, "ada@example.com");
    ContactWriter::new(&prefix).send(&ada, 1).await;

    // Search and a refused create; after the wait, search and create again.
    let records = read(&format!("{prefix}.audit"), 4).await;
    assert_eq!(records.len(), 4, "four calls, each audited once");
    assert_eq!(pipedrive.persons().len(), 1, "delivered after the 429");
    let calls: Vec<ApiCall> = records
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    for (m, call) in records.iter().zip(&calls) {
        assert_eq!(key(m), "7", "keyed by the source record ID");
        assert_eq!(call.record_id.as_deref(), Some("7"));
        assert_eq!(call.canonical_id.as_deref(), Some(ada.id.as_str()));
        assert_eq!(
            (call.service.as_str(), call.connection.as_str()),
            ("sink", "crm")
        );
        assert!(call.url.starts_with(&pipedrive.base_url()), "{}", call.url);
        assert!(call.error.is_none());
    }
    let creates: Vec<&ApiCall> = calls.iter().filter(|c| c.method == "POST").collect();
    assert_eq!(creates.len(), 2, "{calls:?}");
    let (throttled, created) = (creates[0], creates[1]);
    assert_eq!((throttled.status, throttled.attempt), (Some(429), 1));
    assert!(throttled.duration_ms >= 150, "{throttled:?}");
    assert!(created.status.is_some_and(|s| (200..300).contains(&s)));
    assert_eq!(created.attempt, 2);
    assert!(created.at >= throttled.at + 150);
    let body = created.request_body.as_deref().unwrap_or_default();
    assert!(body.contains("ada@example.com"), "{body}");
    let answer = created.response_body.as_deref().unwrap_or_default();
    let native = pipedrive.persons()[0].id.to_string();
    assert!(answer.contains(&native), "{answer}");
    let searches = calls.iter().filter(|c| c.method == "GET").count();
    assert_eq!(searches, 2, "one check-before-create search per attempt");

    // The API token appears nowhere in the topic, keys and values alike.
    for m in &records {
        for bytes in [m.key().unwrap_or_default(), m.payload().unwrap_or_default()] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(TOKEN),
                "the API token leaked into the audit topic"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_show_the_refused_record_dead_lettered_and_the_good_one_delivered() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("audit-outcomes");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
        .await
        .unwrap();
    // The target refuses the first record's data.
    pipedrive.control().add_fault(FaultRule::fail_next(
        "POST /api/v2/persons",
        1,
        switchboard_sandbox::StatusCode::UNPROCESSABLE_ENTITY,
    ));
    let _sink = start_sink(&prefix, dir.path(), &pipedrive).await;
    let writer = ContactWriter::new(&prefix);
    let deliveries = format!("{prefix}.deliveries");
    let refused = contact(1, "refused@example.com");
    writer.send(&refused, 1).await;
    // Before the good record goes, so the one-shot refusal is the first record's.
    assert_eq!(read(&deliveries, 1).await.len(), 1);
    let good = contact(2, "good@example.com");
    writer.send(&good, 1).await;

    let records = read(&deliveries, 2).await;
    assert_eq!(records.len(), 2, "one outcome per record");
    let outcome = |c: &Contact| -> DeliveryOutcome {
        let m = records
            .iter()
            .find(|m| key(m) == format!("{}/crm", c.id))
            .unwrap_or_else(|| panic!("no outcome keyed {}/crm", c.id));
        serde_json::from_slice(m.payload().unwrap()).unwrap()
    };

    let bad = outcome(&refused);
    assert_eq!(bad.state, DeliveryState::DeadLettered);
    assert_eq!(bad.record_id.as_deref(), Some("1"));
    assert_eq!(
        (bad.entity.as_str(), bad.connection.as_str()),
        ("contact", "crm")
    );
    assert_eq!(bad.native_id, None);
    let reason = bad.reason.unwrap_or_default();
    assert!(
        reason.starts_with("data") && reason.contains("422"),
        "{reason}"
    );
    let dlq = read(&format!("{prefix}.dlq.crm"), 1).await;
    assert_eq!(dlq.len(), 1);

    let delivered = outcome(&good);
    let person = pipedrive.person_by_email("good@example.com").unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(delivered.native_id, Some(person.id.to_string()));
    assert_eq!(delivered.record_id.as_deref(), Some("2"));
    assert_eq!(delivered.reason, None);
    assert_eq!(
        pipedrive.persons().len(),
        1,
        "the refused record was not created"
    );

    // An operator discards the refused record from the DLQ: its outcome says so.
    let headers = dlq[0]
        .headers()
        .cloned()
        .unwrap_or_else(OwnedHeaders::new)
        .insert(Header {
            key: "sb.redrive.action",
            value: Some("discard"),
        })
        .insert(Header {
            key: "sb.retry.due",
            value: Some("0"),
        });
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&format!("{prefix}.retry.crm.0"))
                .key(dlq[0].key().unwrap())
                .payload(dlq[0].payload().unwrap())
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let records = read(&deliveries, 3).await;
    let latest = records
        .iter()
        .rfind(|m| key(m) == format!("{}/crm", refused.id))
        .map(|m| serde_json::from_slice::<DeliveryOutcome>(m.payload().unwrap()).unwrap())
        .unwrap();
    assert_eq!(latest.state, DeliveryState::Discarded);
    assert_eq!(
        pipedrive.persons().len(),
        1,
        "a discarded record is not delivered"
    );
}
