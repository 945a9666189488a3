//! A producer whose sends only time out is replaced, and its successor delivers: after a
//! broker restart under load an idempotent producer was seen to stay so for good, with no
//! fatal error (crates/core/src/healing.rs). Where no successor can be made, the watch
//! stops the service with the reason, so that its process exits non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;
use switchboard_core::config::KafkaConfig;
use switchboard_core::healing::HealingProducer;
use switchboard_core::kafka;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

/// A broker address on loopback where nothing listens: a client there is not fatal, and
/// every send times out, as the stuck producer's did.
fn nowhere(kafka: &KafkaConfig) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: format!("127.0.0.1:{}", free_port()),
        ..kafka.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_sends_only_time_out_is_replaced_and_its_successor_delivers() {
    init_logging();
    ensure_stack();
    let (kafka, topic) = one_topic(&unique_prefix("producer-heals"), "heals").await;
    let dead = nowhere(&kafka);
    let made = Arc::new(AtomicUsize::new(0));
    let producer = HealingProducer::new(
        {
            let made = made.clone();
            move || {
                let first = made.fetch_add(1, Ordering::SeqCst) == 0;
                kafka::producer(
                    if first { &dead } else { &kafka },
                    Duration::from_millis(500),
                )
            }
        },
        Duration::from_secs(2),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let watch = producer.watch("test", shutdown.clone());

    // Sent until acknowledged, as a webhook source retries; each failed send waits out its
    // 500 ms delivery timeout.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut timeouts = 0;
    loop {
        let sent = producer
            .send(
                FutureRecord::to(&topic).key("k").payload("once"),
                Duration::from_secs(1),
            )
            .await;
        match sent {
            Ok(_) => break,
            Err((e, _)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::MessageTimedOut
                                | RDKafkaErrorCode::PurgeInflight
                                | RDKafkaErrorCode::PurgeQueue
                        )
                    ),
                    "only timeouts, or the old client's purge: {e}"
                );
                timeouts += 1;
            }
        }
        assert!(
            Instant::now() < deadline,
            "a successor delivered within 60 s"
        );
    }
    assert!(
        timeouts >= 2,
        "the first client timed out ({timeouts} times)"
    );
    assert_eq!(made.load(Ordering::SeqCst), 2, "replaced once");
    assert_eq!(
        topic_size(&kafka_bootstrap(), &topic),
        1,
        "the acknowledged send, once"
    );
    assert!(!shutdown.is_cancelled());
    shutdown.cancel();
    assert_eq!(
        watch.await.unwrap(),
        None,
        "the watch ends quietly at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_producer_that_cannot_be_rebuilt_stops_the_service_with_the_reason() {
    init_logging();
    ensure_stack();
    let (kafka, topic) = one_topic(&unique_prefix("producer-unbuildable"), "heals").await;
    let dead = nowhere(&kafka);
    let made = Arc::new(AtomicUsize::new(0));
    let producer = HealingProducer::new(
        {
            let made = made.clone();
            move || {
                if made.fetch_add(1, Ordering::SeqCst) == 0 {
                    kafka::producer(&dead, Duration::from_millis(500))
                } else {
                    // Configuration a client refuses, as a secret rotated to garbage would be.
                    ClientConfig::new().set("no.such.property", "1").create()
                }
            }
        },
        Duration::from_secs(1),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let watch = producer.watch("test", shutdown.clone());
    let sent = producer
        .send(
            FutureRecord::to(&topic).key("k").payload("lost"),
            Duration::from_secs(1),
        )
        .await;
    assert!(sent.is_err(), "nothing listens there");
    let why = tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("the watch gave up")
        .unwrap()
        .expect("with a reason");
    assert!(why.contains("could not be rebuilt"), "{why}");
    assert!(shutdown.is_cancelled(), "the service is told to stop");
    assert_eq!(made.load(Ordering::SeqCst), 2);
}
