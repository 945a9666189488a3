//! A target outage is not bad data: while Pipedrive is down (longer than the whole retry-tier
//! chain) the sink's circuit opens and it waits, nothing reaches the DLQ, the operator sees
//! the state and an alert, and every record arrives after recovery. A 422 is bad data: that
//! record goes to the DLQ at once, with the target's reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::Headers;
use switchboard_core::canonical::Contact;
use switchboard_sandbox::control::FaultRule;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "outage-crm-token";

fn contact(n: u64) -> Contact {
    shop_contact(n, &format!("o{n}@example.com"), "Out", &format!("Age{n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_waits_without_dead_letters_and_a_422_is_dead_lettered_at_once() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("outage");
    let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(TOKEN))
        .await
        .unwrap();
    // Tiers of 2 + 4 s: a one-minute outage outlasts the whole chain ten times over.
    let yaml = pipedrive_sink_yaml(
        &prefix,
        dir.path(),
        &pipedrive.base_url(),
        TOKEN,
        UNPACED_PIPEDRIVE,
        "in_place_attempts: 2, max_backoff_ms: 1000, retry_tiers_secs: [2, 4], circuit_after_records: 2",
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let writer = ContactWriter::new(&prefix);
    let send = |c: Contact| {
        let writer = writer.clone();
        async move { writer.send(&c, 1).await }
    };

    send(contact(0)).await;
    assert!(eventually(Duration::from_secs(60), || pipedrive.persons().len() == 1).await);

    pipedrive.control().outage(Duration::from_secs(60));
    for n in 1..=20 {
        send(contact(n)).await;
    }
    assert!(
        eventually(Duration::from_secs(180), || pipedrive.persons().len() == 21).await,
        "every record arrived after the outage"
    );
    let dlq = format!("{prefix}.dlq.crm");
    assert!(topic_json(&dlq).is_empty(), "an outage is not bad data");
    let states: Vec<String> = topic_json(&format!("{prefix}.status"))
        .iter()
        .map(|v| v["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(states.contains(&"circuit_open".to_owned()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ok"), "{states:?}");
    let alerts: Vec<(String, String)> = topic_json(&format!("{prefix}.alerts"))
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        alerts,
        [
            ("target_down".to_owned(), "firing".to_owned()),
            ("target_down".to_owned(), "resolved".to_owned())
        ]
    );
    assert_eq!(pipedrive.total_creates(), 21, "each person created once");

    // Bad data: Pipedrive refuses one create with 422.
    pipedrive.control().add_fault(FaultRule {
        endpoint: "POST /api/v2/persons".into(),
        error_rate: 1.0,
        status: 422,
        latency_ms: 0,
        count: Some(1),
    });
    send(contact(99)).await;
    let dead = read_topic(
        &kafka_bootstrap(),
        &dlq,
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(dead.len(), 1);
    let header = |name: &str| {
        dead[0]
            .headers()
            .and_then(|h| h.iter().filter(|h| h.key == name).last())
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("sb.error.class"), "data");
    assert!(
        header("sb.error.message").contains("422"),
        "{}",
        header("sb.error.message")
    );
    assert!(!header("sb.error.message").contains(TOKEN));
    assert_eq!(header("sb.error.attempts"), "1", "bad data is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_credentials_pause_the_connection_until_they_change() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("auth-pause");
    let pipedrive = PipedriveSandbox::start(PipedriveConfig::new(TOKEN))
        .await
        .unwrap();
    // The configured token file holds a token Pipedrive refuses.
    let yaml = pipedrive_sink_yaml(
        &prefix,
        dir.path(),
        &pipedrive.base_url(),
        "revoked-token",
        "",
        "max_backoff_ms: 500",
    );
    let token_file = dir.path().join("crm");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let writer = ContactWriter::new(&prefix);
    for n in 0..3 {
        writer.send(&contact(n), 1).await;
    }
    let status = format!("{prefix}.status");
    assert!(
        eventually(Duration::from_secs(120), || {
            topic_json(&status)
                .last()
                .is_some_and(|v| v["state"] == "paused_auth")
        })
        .await,
        "the connection paused"
    );
    let alerts = topic_json(&format!("{prefix}.alerts"));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0]["kind"].as_str(), alerts[0]["status"].as_str()),
        (Some("auth_failed"), Some("firing"))
    );
    assert!(
        !alerts[0].to_string().contains("revoked-token"),
        "no secret in the alert"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        topic_json(&format!("{prefix}.dlq.crm")).is_empty(),
        "nothing dead-lettered"
    );
    assert!(pipedrive.persons().is_empty());

    // The operator rotates the credential: delivery resumes by itself.
    std::fs::write(&token_file, TOKEN).unwrap();
    assert!(
        eventually(Duration::from_secs(120), || pipedrive.persons().len() == 3).await,
        "delivery resumed with the new credentials"
    );
    let alerts = topic_json(&format!("{prefix}.alerts"));
    assert_eq!(alerts.last().unwrap()["status"], "resolved");
}
