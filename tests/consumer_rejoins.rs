//! A consumer out of its group fails its membership check, which its stage rebuilds it on,
//! as soon as the broker shows the group settled without it, not only after the membership
//! bound (crates/core/src/membership.rs). After a broker restart librdkafka's consumer was
//! seen never to rejoin, its requests to the coordinator stuck in an out-queue; the stages
//! then waited 45 s to replace it.
//!
//! The stuck member is played by a consumer that leaves the group while its stage still
//! counts it out and rejoining: the real broker's group goes on (here, empty) without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use switchboard_core::config::KafkaConfig;
use switchboard_core::kafka;
use switchboard_core::membership::{self, Assigned, MEMBERSHIP_BOUND};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

/// A member of `group` on `topic`, its `client.id` from `assigned`, polled on a thread
/// until `stop`; `assigned` is told of its first assignment.
fn member(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    assigned: &Assigned,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    let consumer: BaseConsumer = kafka::client_config(kafka)
        .set("group.id", group)
        .set("client.id", assigned.new_member(kafka, "test"))
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let assigned = assigned.clone();
    std::thread::spawn(move || {
        let mut joined = false;
        while !stop.is_cancelled() {
            let _ = consumer.poll(Duration::from_millis(100));
            if let Ok(list) = consumer.assignment()
                && list.count() > 0
                && !joined
            {
                assigned.set(&list);
                joined = true;
            }
        }
        drop(consumer);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_group_went_on_without_fails_its_membership_check_before_the_bound() {
    init_logging();
    ensure_stack();
    let prefix = unique_prefix("rejoin");
    let (kafka, topic) = one_topic(&prefix, "members").await;
    let group = format!("{prefix}.group");
    let shutdown = CancellationToken::new();
    let assigned = Assigned::default();
    let watch = membership::watch_rejoin(
        kafka.clone(),
        group.clone(),
        assigned.clone(),
        shutdown.clone(),
    );

    let stop = CancellationToken::new();
    let polling = member(&kafka, &group, &topic, &assigned, stop.clone());
    assert!(
        eventually(Duration::from_secs(60), || assigned
            .out_of_group_for()
            .is_none())
        .await,
        "the member joined"
    );

    // Still a member, but counted out (a revoke): the group lists it, so no rebuild.
    assigned.clear();
    tokio::time::sleep(membership::REJOIN_GRACE + membership::PROBE_EVERY * 3).await;
    assert!(
        assigned.check_membership().is_ok(),
        "a member the group still lists is left to rejoin"
    );

    // It leaves while counted out: the group settles empty, with no rejoin to come.
    stop.cancel();
    polling.join().unwrap();
    let out = assigned.out_of_group_for().unwrap();
    assert!(
        eventually(MEMBERSHIP_BOUND - out, || assigned
            .check_membership()
            .is_err())
        .await,
        "rebuilt once the broker shows the group settled without it, before the bound"
    );
    let why = format!("{:#}", assigned.check_membership().unwrap_err());
    assert!(why.contains("settled without it"), "{why}");

    shutdown.cancel();
    watch.await.unwrap();
}
