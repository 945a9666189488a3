//! The first flow end to end on the real broker and registry: a signed Shopify customer
//! webhook → `sb.raw.shop.customers` → transformer → `sb.canonical.contact` → sink → a
//! person in the Pipedrive sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::Message;
use switchboard_core::canonical::canonical_id;
use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

fn customer(id: u64, email: &str) -> Vec<u8> {
    customer_named(id, email, "Ada")
}

fn customer_named(id: u64, email: &str, first_name: &str) -> Vec<u8> {
    let payload = ShopifyWebhooks::customer_payload(
        id,
        email,
        first_name,
        "Lovelace",
        time::OffsetDateTime::now_utc(),
    );
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_webhook_becomes_exactly_one_person_with_mapped_fields() {
    let world = World::new("one-person", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;

    let id = 820_982_911_946_154_508u64; // above 2^53: must survive every hop unrounded
    let status = shop
        .send("customers/create", &customer(id, "Ada@Example.com"), "wh-1")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    assert!(
        eventually(Duration::from_secs(60), || world
            .pipedrive
            .person_by_email("ada@example.com")
            .is_some())
        .await,
        "the person reached Pipedrive"
    );
    let person = world.pipedrive.person_by_email("ada@example.com").unwrap();
    assert_eq!(person.name, "Ada Lovelace");
    assert_eq!(world.pipedrive.creates_for_email("ada@example.com"), 1);
    assert_eq!(world.pipedrive.persons().len(), 1);

    let raw = read_topic(
        &kafka_bootstrap(),
        &world.raw_topic(),
        1,
        Duration::from_secs(10),
        Duration::ZERO,
    );
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].key(), Some(id.to_string().as_bytes()));
    assert_confluent_framed(&raw[0], "ChangeEvent").await;

    let canonical = read_topic(
        &kafka_bootstrap(),
        &world.canonical_topic(),
        1,
        Duration::from_secs(10),
        Duration::ZERO,
    );
    assert_eq!(canonical.len(), 1);
    assert_eq!(
        canonical[0].key(),
        Some(canonical_id("shop", "customers", &id.to_string()).as_bytes())
    );
    assert_confluent_framed(&canonical[0], "Contact").await;

    // SIGTERM's path: every service drains and stops without an error.
    world.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_webhook_delivered_three_times_gives_one_person() {
    let world = World::new("three-times", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;

    // The same delivery three times (ingest dedupes it), a second delivery with the same
    // content (the transformer sees nothing changed), and two edits of the customer: three
    // canonical changes reach the sink, which finds the person it created and updates it.
    let id = 706_405_506_930_370_084;
    let body = customer(id, "grace@example.com");
    for delivery in ["wh-same", "wh-same", "wh-same", "wh-same-content"] {
        assert_eq!(
            shop.send("customers/update", &body, delivery)
                .await
                .unwrap(),
            StatusCode::OK
        );
    }
    for (delivery, name) in [("wh-edit-1", "Grace"), ("wh-edit-2", "Gracie")] {
        let edit = customer_named(id, "grace@example.com", name);
        assert_eq!(
            shop.send("customers/update", &edit, delivery)
                .await
                .unwrap(),
            StatusCode::OK
        );
    }
    let canonical = read_topic(
        &kafka_bootstrap(),
        &world.canonical_topic(),
        3,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(canonical.len(), 3, "one canonical record per change");
    assert!(
        eventually(Duration::from_secs(60), || group_caught_up(
            &kafka_bootstrap(),
            &world.sink_group(),
            &canonical
        ))
        .await,
        "the sink finished all three records"
    );
    assert_eq!(world.pipedrive.creates_for_email("grace@example.com"), 1);
    let persons = world.pipedrive.persons();
    assert_eq!(persons.len(), 1);
    assert_eq!(
        persons[0].first_name.as_deref(),
        Some("Gracie"),
        "the last edit won"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_deliveries_publish_nothing() {
    let world = World::new("refused", PipedriveConfig::new(CRM_TOKEN)).await;
    let shop = world.start_ingest().await;
    let url = shop.target_url().to_owned();
    let http = reqwest::Client::new();

    let good = customer(1_000_000_000_000_000_001, "good@example.com");
    let wrong = switchboard_sandbox::shopify::sign(b"not-the-secret", &good);
    assert_eq!(
        shop.send_with_signature("customers/create", &good, "wh-bad", &wrong)
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        shop.send_with_signature("customers/create", &good, "wh-none", "")
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        shop.send("customers/create", b"{\"id\": 12, oops", "wh-malformed")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST
    );

    let signed = |body: &[u8]| switchboard_sandbox::shopify::sign(SHOP_SECRET.as_bytes(), body);
    let text = http
        .post(&url)
        .header("content-type", "text/plain")
        .header("x-shopify-hmac-sha256", signed(&good))
        .header("x-shopify-topic", "customers/create")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = vec![b' '; 2 * 1024 * 1024];
    // Its own client: the server answers 413 without reading the body and closes the
    // connection, which a pooled connection would only notice on the next request.
    let too_big = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let unknown = http
        .post(url.replace("/webhooks/shop", "/webhooks/nope"))
        .header("content-type", "application/json")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // One good delivery last: once it is on the topic, anything refused before it would be too.
    assert_eq!(
        shop.send("customers/create", &good, "wh-good")
            .await
            .unwrap(),
        StatusCode::OK
    );
    let raw = read_topic(
        &kafka_bootstrap(),
        &world.raw_topic(),
        1,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    assert_eq!(raw.len(), 1, "only the good delivery was published");
    assert_eq!(raw[0].key(), Some(&b"1000000000000000001"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_killed_mid_stream_delivers_every_record_exactly_once_after_restart() {
    // Latency makes the stream long enough to kill the sink in the middle of it.
    let world = World::new("sink-kill", PipedriveConfig::new(CRM_TOKEN)).await;
    world.pipedrive.set_latency(Duration::from_millis(40));
    let shop = world.start_ingest().await;
    world.start_transformer().await;

    const N: u64 = 60;
    let emails: Vec<String> = (0..N).map(|i| format!("person{i}@example.com")).collect();
    for (i, email) in emails.iter().enumerate() {
        let status = shop
            .send(
                "customers/create",
                &customer(9_007_199_254_740_993 + i as u64, email),
                &format!("wh-{i}"),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sink.yaml");
    std::fs::write(&config, &world.yaml).unwrap();
    let binary = service_binary("switchboard-sink", "switchboard-sink");
    let spawn = || {
        std::process::Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };

    let mut sink = spawn();
    assert!(
        eventually(Duration::from_secs(90), || world.pipedrive.persons().len()
            >= 10)
        .await,
        "the first sink made progress"
    );
    sink.kill().unwrap(); // SIGKILL: no drain, no final commit
    sink.wait().unwrap();
    let at_kill = world.pipedrive.persons().len();
    assert!(
        at_kill < N as usize,
        "the sink was killed mid-stream ({at_kill} of {N} delivered)"
    );

    let mut sink = spawn();
    let all_there = eventually(Duration::from_secs(120), || {
        world.pipedrive.persons().len() >= N as usize
    })
    .await;
    let canonical = read_topic(
        &kafka_bootstrap(),
        &world.canonical_topic(),
        N as usize,
        Duration::from_secs(30),
        Duration::ZERO,
    );
    assert_eq!(canonical.len(), N as usize);
    let finished = eventually(Duration::from_secs(60), || {
        group_caught_up(&kafka_bootstrap(), &world.sink_group(), &canonical)
    })
    .await;
    sink.kill().unwrap();
    sink.wait().unwrap();
    assert!(
        all_there && finished,
        "every record was delivered after the restart"
    );

    for email in &emails {
        assert_eq!(
            world.pipedrive.creates_for_email(email),
            1,
            "{email} created exactly once"
        );
    }
    assert_eq!(world.pipedrive.total_creates(), N as usize);
    assert_eq!(world.pipedrive.persons().len(), N as usize);
}
