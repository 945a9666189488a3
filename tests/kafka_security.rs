//! Kafka security: every client core builds (admin, producer, consumer) talks to a broker
//! whose only client listener is SASL_PLAINTEXT with SCRAM, using nothing but
//! `kafka.security` from the configuration, with the password given by `${file:..}`
//! reference; and a wrong password makes topic creation (the first thing every service
//! does) fail with an `auth` error that says so, instead of a generic timeout.
//!
//! Runs its own broker (`scripts/stack.sh kafka-scram-up`, own ports and data dir), so the
//! shared plaintext stack is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use switchboard_core::Config;
use switchboard_core::kafka::{self, Cleanup, TopicSpec};
use switchboard_tests::{free_port, init_logging, secret_ref, stack_script, unique_prefix};

/// A private SCRAM broker, stopped (and its data dir deleted) on drop.
struct ScramBroker {
    dir: tempfile::TempDir,
    kafka_port: u16,
    controller_port: u16,
}

impl ScramBroker {
    fn start(user: &str, password: &str) -> Self {
        let broker = Self {
            dir: tempfile::tempdir().unwrap(),
            kafka_port: free_port(),
            controller_port: free_port(),
        };
        let status = broker
            .command("kafka-scram-up")
            .env("SB_SCRAM_USER", user)
            .env("SB_SCRAM_PASSWORD", password)
            .status()
            .unwrap();
        assert!(status.success(), "stack.sh kafka-scram-up failed");
        broker
    }

    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(stack_script());
        command
            .arg(verb)
            .env("SB_STACK_DIR", self.dir.path())
            .env("SB_KAFKA_PORT", self.kafka_port.to_string())
            .env("SB_CONTROLLER_PORT", self.controller_port.to_string());
        command
    }

    /// Configuration for this broker with SCRAM credentials `user` / `password_ref`.
    fn config(&self, prefix: &str, mechanism: &str, user: &str, password_ref: &str) -> Config {
        Config::from_yaml(&format!(
            r#"
kafka:
  bootstrap_servers: 127.0.0.1:{port}
  topic_prefix: {prefix}
  security:
    protocol: SASL_PLAINTEXT
    sasl:
      mechanism: {mechanism}
      username: {user}
      password: "{password_ref}"
registry:
  url: http://127.0.0.1:1/unused
"#,
            port = self.kafka_port
        ))
        .expect("security config is valid")
    }
}

impl Drop for ScramBroker {
    fn drop(&mut self) {
        let _ = self.command("kafka-down").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_round_trip_through_core_clients_and_wrong_password_is_an_auth_error() {
    init_logging();
    let secrets = tempfile::tempdir().unwrap();
    // A fresh password per run; it lives only in a private temp file and the broker's
    // state dir, never in the repository.
    let password: String = format!("pw{}", unique_prefix("scram").replace('-', ""));
    let started = Instant::now();
    let broker = ScramBroker::start("switchboard", &password);
    let broker_ready = started.elapsed();
    let prefix = unique_prefix("scram");
    let good_ref = secret_ref(secrets.path(), "kafka-password", &password);

    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let config = broker.config(&prefix, mechanism, "switchboard", &good_ref);
        let topic = format!("{prefix}.roundtrip.{}", &mechanism[9..]);

        // Admin client: creates the topic (a second call finds it and is a no-op).
        let spec = TopicSpec::new(&topic, Cleanup::Delete(Duration::from_secs(3600)));
        kafka::ensure_topics(&config.kafka, std::slice::from_ref(&spec))
            .await
            .expect("admin client authenticates and creates the topic");

        // Producer: idempotent, acks=all; every send acknowledged.
        let producer = kafka::producer(&config.kafka, Duration::from_secs(20)).unwrap();
        for i in 0..20 {
            let payload = format!("record-{i}");
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&format!("k{}", i % 4))
                        .payload(&payload),
                    Duration::from_secs(0),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("producer authenticates and the write is acknowledged");
        }

        // Consumer group: reads them all back, stores and commits its offsets.
        let group = format!("{prefix}.group.{}", &mechanism[9..]);
        let consumer = kafka::consumer(&config.kafka, &group).unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < 20 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            assert!(
                !remaining.is_zero(),
                "only {} of 20 records read back",
                seen.len()
            );
            let Ok(Ok(m)) = tokio::time::timeout(remaining, consumer.recv()).await else {
                continue;
            };
            seen.insert(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
            consumer.store_offset_from_message(&m).unwrap();
        }
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        let expected: std::collections::BTreeSet<String> =
            (0..20).map(|i| format!("record-{i}")).collect();
        assert_eq!(seen, expected, "{mechanism}: every record read back once");
    }

    // The wrong password: the admin request times out, and the error says it was the
    // credentials and which settings to check (never the password itself).
    let bad_ref = secret_ref(secrets.path(), "wrong-password", "not-the-password");
    let bad = broker.config(&prefix, "SCRAM-SHA-512", "switchboard", &bad_ref);
    let t0 = Instant::now();
    let spec = TopicSpec::new(format!("{prefix}.denied"), Cleanup::Compact);
    let err = kafka::ensure_topics(&bad.kafka, &[spec])
        .await
        .expect_err("a wrong password must not create topics");
    let message = err.to_string();
    assert!(
        message.contains("authentication failed, check kafka.security")
            && message.contains("invalid credentials"),
        "the error names authentication and the setting to check: {message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    assert_eq!(err.class, switchboard_core::ErrorClass::Auth, "{message}");

    let auth_failed_in = t0.elapsed();
    assert!(
        auth_failed_in < Duration::from_secs(30),
        "auth errors surface quickly, took {auth_failed_in:?}"
    );
    // The probe every admin failure runs tells the two cases apart.
    assert!(kafka::auth_refusal(&bad.kafka, Duration::from_secs(10)).is_some());
    let good = broker.config(&prefix, "SCRAM-SHA-512", "switchboard", &good_ref);
    assert_eq!(
        kafka::auth_refusal(&good.kafka, Duration::from_secs(3)),
        None
    );
    eprintln!(
        "scram test: broker ready in {broker_ready:?}, wrong password refused in {auth_failed_in:?}, total {:?}",
        started.elapsed()
    );
}
