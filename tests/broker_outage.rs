//! Kafka down: a webhook is answered 503 (never 2xx for a write Kafka did not acknowledge),
//! and once the broker is back the source's redelivery flows all the way to Pipedrive.
//! Runs its own broker (same scripts, other ports and data dir) so stopping it does not
//! disturb the tests sharing the main stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use rdkafka::Message;
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

struct PrivateBroker {
    dir: tempfile::TempDir,
    kafka_port: u16,
    controller_port: u16,
}

impl PrivateBroker {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            kafka_port: free_port(),
            controller_port: free_port(),
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn run(&self, verb: &str) {
        let status = Command::new(stack_script())
            .arg(verb)
            .env("SB_STACK_DIR", self.dir.path())
            .env("SB_KAFKA_PORT", self.kafka_port.to_string())
            .env("SB_CONTROLLER_PORT", self.controller_port.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "stack.sh {verb} failed");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new(stack_script())
            .arg("kafka-down")
            .env("SB_STACK_DIR", self.dir.path())
            .env("SB_KAFKA_PORT", self.kafka_port.to_string())
            .env("SB_CONTROLLER_PORT", self.controller_port.to_string())
            .status();
    }
}

/// A private broker, a Pipedrive sandbox and the demo flow's configuration on that broker
/// (the registry is the shared one), with Shopify webhook secret `shop_secret`.
struct Outage {
    broker: PrivateBroker,
    pipedrive: PipedriveSandbox,
    prefix: String,
    yaml: String,
    shop_secret: String,
    _dir: tempfile::TempDir,
}

impl Outage {
    async fn new(
        test: &str,
        shop_secret: &str,
        ack_timeout_ms: u64,
        pipedrive: PipedriveConfig,
    ) -> Self {
        init_logging();
        ensure_stack(); // for the shared registry
        let broker = PrivateBroker::new();
        broker.run("kafka-up");
        let dir = tempfile::tempdir().unwrap();
        let crm_settings = crm_pacing(&pipedrive);
        let pipedrive = PipedriveSandbox::start(pipedrive).await.unwrap();
        let prefix = unique_prefix(test);
        let yaml = flow_yaml(&FlowSetup {
            prefix: &prefix,
            bootstrap: &broker.bootstrap(),
            pipedrive_url: &pipedrive.base_url(),
            shop_secret_ref: &secret_ref(dir.path(), "shop", shop_secret),
            crm_token_ref: &secret_ref(dir.path(), "crm", "token"),
            crm_settings,
            ack_timeout_ms,
        });
        Self {
            broker,
            pipedrive,
            prefix,
            yaml,
            shop_secret: shop_secret.to_owned(),
            _dir: dir,
        }
    }

    /// Starts ingest on the private broker, waits until it is ready and returns a Shopify
    /// webhook sender pointed at it.
    async fn start_ingest(&self, shutdown: &CancellationToken) -> ShopifyWebhooks {
        let ingest = switchboard_ingest_webhook::start(load(&self.yaml), shutdown.clone())
            .await
            .unwrap();
        assert!(eventually_ok(&format!("http://{}/readyz", ingest.addr)).await);
        ShopifyWebhooks::new(
            format!("http://{}/webhooks/shop", ingest.addr),
            &self.shop_secret,
            "acme.myshopify.com",
            "2025-01",
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_gets_503_while_kafka_is_down_and_flows_after_it_is_back() {
    let Outage {
        broker,
        pipedrive,
        prefix,
        yaml,
        _dir,
        ..
    } = Outage::new(
        "outage",
        "outage-secret",
        2000,
        PipedriveConfig::new("token"),
    )
    .await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_transformer::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let shop = ShopifyWebhooks::new(
        format!("http://{}/webhooks/shop", ingest.addr),
        "outage-secret",
        "acme.myshopify.com",
        "2025-01",
    )
    .unwrap();

    let body = |id: u64, email: &str| {
        serde_json::to_vec(&ShopifyWebhooks::customer_payload(
            id,
            email,
            "Kay",
            "Out",
            time::OffsetDateTime::now_utc(),
        ))
        .unwrap()
    };
    // Before the outage: the path works (retrying while ingest prepares its topics).
    let before = body(9_100_000_000_000_000_001, "before@example.com");
    assert!(
        eventually_status(&shop, &before, "wh-before", Duration::from_secs(180)).await,
        "accepted before the outage"
    );
    assert!(
        eventually(Duration::from_secs(180), || pipedrive
            .person_by_email("before@example.com")
            .is_some())
        .await
    );

    broker.run("kafka-down");
    let during = body(9_100_000_000_000_000_002, "during@example.com");
    let response = shop
        .send("customers/create", &during, "wh-during")
        .await
        .unwrap();
    assert_eq!(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "no 2xx without Kafka's ack"
    );

    broker.run("kafka-up");
    // The source redelivers the same webhook until it gets a 2xx, as Shopify does.
    assert!(
        eventually_status(&shop, &during, "wh-during", Duration::from_secs(90)).await,
        "the redelivery was accepted once Kafka was back"
    );
    assert!(
        eventually(Duration::from_secs(90), || pipedrive
            .person_by_email("during@example.com")
            .is_some())
        .await,
        "the redelivered webhook reached Pipedrive"
    );
    assert_eq!(pipedrive.creates_for_email("during@example.com"), 1);

    let raw = read_topic(
        &broker.bootstrap(),
        &format!("{prefix}.raw.shop.customers"),
        2,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let keys: Vec<_> = raw
        .iter()
        .filter_map(|m| m.key())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(keys.contains(&"9100000000000000002".to_owned()), "{keys:?}");
}

/// Sends until the answer is 200, as a webhook source retries; every other answer must be
/// a 503 (Kafka not there yet), never a 4xx.
async fn eventually_status(
    shop: &ShopifyWebhooks,
    body: &[u8],
    webhook_id: &str,
    timeout: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match shop.send("customers/create", body, webhook_id).await {
            Ok(StatusCode::OK) => return true,
            Ok(status) => assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "only 503 while Kafka is unavailable"
            ),
            Err(_) => {} // the 5 s client timeout of a Shopify delivery
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shopify_retries_bring_in_every_event_refused_during_an_outage() {
    use switchboard_sandbox::shopify::CustomerChange;
    use switchboard_sandbox::{Clock, ShopifyConfig, ShopifySandbox};

    let Outage {
        broker,
        prefix,
        yaml,
        pipedrive: _pipedrive,
        _dir,
        ..
    } = Outage::new(
        "outage-retries",
        "retry-secret",
        1000,
        PipedriveConfig::new("token"),
    )
    .await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let readyz = format!("http://{}/readyz", ingest.addr);
    assert!(eventually_ok(&readyz).await, "ingest ready");

    // Shopify on a clock 120 times faster: its 8 retries over 4 hours take 2 minutes.
    let shop = ShopifySandbox::start(ShopifyConfig {
        api_secret: "retry-secret".into(),
        clock: Clock::scaled(120.0),
        ..ShopifyConfig::new("shpat_retry")
    })
    .await
    .unwrap();
    let url = format!("http://{}/webhooks/shop", ingest.addr);
    shop.subscribe("customers/create", &url).unwrap();

    broker.run("kafka-down");
    const N: usize = 20;
    for i in 0..N {
        let change = CustomerChange {
            email: format!("outage{i}@example.com"),
            first_name: Some("Out".into()),
            last_name: None,
            phone: None,
            tags: None,
        };
        shop.trigger_customer_change(&change).unwrap();
    }
    let refused = shop.wait_for_deliveries(N, Duration::from_secs(30)).await;
    assert!(
        refused.iter().take(N).all(|d| !d.delivered),
        "nothing was acknowledged while Kafka was down"
    );
    broker.run("kafka-up");

    let topic = format!("{prefix}.raw.shop.customers");
    let bootstrap = broker.bootstrap();
    let arrived = eventually(Duration::from_secs(120), || {
        topic_size(&bootstrap, &topic) >= N as i64
    })
    .await;
    if !arrived {
        for d in shop
            .deliveries()
            .iter()
            .filter(|d| d.webhook_id == shop.deliveries()[0].webhook_id)
        {
            eprintln!(
                "first webhook, attempt {} at {}: status {:?}, error {:?}",
                d.attempt, d.at, d.status, d.error
            );
        }
        eprintln!(
            "removed subscriptions {:?}; records on the topic: {}",
            shop.removed_subscriptions(),
            topic_size(&bootstrap, &topic)
        );
    }
    assert!(arrived, "Shopify's retries brought every event in");
    let raw = read_topic(
        &bootstrap,
        &topic,
        N,
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    let keys: std::collections::HashSet<_> = raw
        .iter()
        .filter_map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        keys.len(),
        N,
        "each customer once: none lost, retries deduplicated"
    );
    assert!(
        shop.deliveries()
            .iter()
            .any(|d| d.attempt > 0 && d.delivered),
        "a retry delivered it"
    );
}

/// Start-up bound, not a timing claim: a fresh private broker on a loaded two-core machine
/// can take a while to hand out producer IDs.
async fn eventually_ok(url: &str) -> bool {
    for _ in 0..1200 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Sends every delivery of `deliveries` (body, webhook ID) until it is answered 200, from
/// `lanes` tasks at once, as webhook sources retry; returns how many were accepted so far
/// through `accepted`.
fn flood(
    shop: ShopifyWebhooks,
    deliveries: Vec<(Vec<u8>, String)>,
    lanes: usize,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let shop = std::sync::Arc::new(shop);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(deliveries.into_iter()));
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..lanes {
            let (shop, queue, accepted) = (shop.clone(), queue.clone(), accepted.clone());
            tasks.spawn(async move {
                loop {
                    let Some((body, id)) = queue.lock().unwrap().next() else {
                        return;
                    };
                    loop {
                        match shop.send("customers/create", &body, &id).await {
                            Ok(StatusCode::OK) => break,
                            Ok(status) => assert_eq!(
                                status,
                                StatusCode::SERVICE_UNAVAILABLE,
                                "only 503 while Kafka is unavailable"
                            ),
                            Err(_) => {} // the client's timeout
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
}

/// `count` customers, each delivered once, and every `dup_every`-th delivered a second time
/// under the same webhook ID (Shopify's re-delivery), shuffled in among the others.
fn customers_with_duplicates(
    first_id: u64,
    count: u64,
    dup_every: u64,
    email: impl Fn(u64) -> String,
) -> Vec<(Vec<u8>, String)> {
    let mut deliveries = Vec::new();
    for i in 0..count {
        let id = first_id + i;
        let body = serde_json::to_vec(&ShopifyWebhooks::customer_payload(
            id,
            &email(i),
            "Flood",
            &format!("N{i}"),
            time::OffsetDateTime::now_utc(),
        ))
        .unwrap();
        deliveries.push((body.clone(), format!("wh-flood-{id}")));
        if i % dup_every == 0 && i >= 50 {
            // A re-delivery of one sent a while before.
            let at = deliveries.len() - 40;
            deliveries.insert(at, (body, format!("wh-flood-{id}")));
        }
    }
    deliveries
}

/// How soon after the broker's return a flow must move again. Most restarts take 1-16 s.
/// librdkafka's consumer sometimes never rejoins its group after a restart (its requests to
/// the coordinator stay in the out-queue); the stage replaces it once the broker shows the
/// group settled without it (`core::membership::watch_rejoin`), about 15-20 s after the
/// return.
const RESUME_BOUND: Duration = Duration::from_secs(30);

/// Restarts `broker` (down for 10 s, then up) each time `accepted` reaches one of
/// `thresholds`, and prints per restart how long after the broker was back `progress` grew
/// past where it stood before the stop: the flow's recovery time, which must stay under
/// [`RESUME_BOUND`] (it waits up to 120 s to report a slower one).
async fn restart_during(
    broker: &PrivateBroker,
    accepted: &std::sync::atomic::AtomicUsize,
    thresholds: &[usize],
    progress: impl Fn() -> i64,
) {
    for (n, threshold) in thresholds.iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(600), || accepted
                .load(std::sync::atomic::Ordering::Relaxed)
                >= *threshold)
            .await,
            "the flood reached {threshold} before restart {}",
            n + 1
        );
        let before = progress();
        broker.run("kafka-down");
        tokio::time::sleep(Duration::from_secs(10)).await;
        broker.run("kafka-up");
        let back = std::time::Instant::now();
        assert!(
            eventually(Duration::from_secs(120), || progress() > before).await,
            "the flow resumed after restart {} with no process restarted",
            n + 1
        );
        let took = back.elapsed();
        eprintln!(
            "broker restart {}: flow resumed {took:?} after the broker was back",
            n + 1
        );
        assert!(
            took < RESUME_BOUND,
            "restart {}: the flow resumed within {RESUME_BOUND:?} of the broker's return, not {took:?}",
            n + 1
        );
    }
}

/// 20,000 customers and ~4,000 re-deliveries, sent by a client that retries until 2xx,
/// while the broker restarts three times: each customer once on the canonical topic (read
/// committed), with no process restarted by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_broker_restarts_in_a_webhook_flood_lose_and_double_nothing() {
    restarts_in_a_flood(false).await;
}

/// The same, with the sink delivering the flood to Pipedrive meanwhile: each customer
/// created once there too. Left out of `make test` for CI's time: beside the other tests
/// on 2 cores its 20,000 deliveries doubled this binary's run (528 s to 1,012 s). Run it
/// with `cargo test --workspace --test broker_outage -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "20,000 deliveries to Pipedrive: minutes of CI; run by hand"]
async fn three_broker_restarts_in_a_webhook_flood_reach_pipedrive_once() {
    restarts_in_a_flood(true).await;
}

async fn restarts_in_a_flood(to_pipedrive: bool) {
    const CUSTOMERS: u64 = 20_000;
    // Pipedrive unthrottled: this test is about exactly once through the restarts, and at
    // the documented limits 20,000 new persons take over half an hour (the sink test below
    // runs at those limits).
    let outage = Outage::new(
        "restarts-flood",
        "flood-secret",
        2000,
        unthrottled_pipedrive("token"),
    )
    .await;
    let (broker, prefix, yaml) = (&outage.broker, &outage.prefix, &outage.yaml);
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let shop = outage.start_ingest(&shutdown).await;
    let transformer = switchboard_transformer::start(load(yaml), shutdown.clone())
        .await
        .unwrap();
    if to_pipedrive {
        switchboard_sink::start(load(&format!("{yaml}  concurrency: 8\n")), shutdown.clone())
            .await
            .unwrap();
    }
    let deliveries = customers_with_duplicates(9_200_000_000_000_000_000, CUSTOMERS, 5, |i| {
        format!("flood{i}@example.com")
    });
    let total = deliveries.len();
    assert!(total as u64 >= CUSTOMERS + CUSTOMERS / 5 - 10);
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = flood(shop, deliveries, 8, accepted.clone());

    let canonical = format!("{prefix}.canonical.contact");
    let bootstrap = broker.bootstrap();
    let thresholds = [total / 5, total * 9 / 20, total * 7 / 10];
    restart_during(broker, &accepted, &thresholds, || {
        topic_size(&bootstrap, &canonical)
    })
    .await;
    sending.await.unwrap();

    let records = read_topic(
        &bootstrap,
        &canonical,
        CUSTOMERS as usize,
        Duration::from_secs(600),
        Duration::from_secs(3),
    );
    let keys: std::collections::HashSet<Vec<u8>> = records
        .iter()
        .filter_map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(keys.len(), CUSTOMERS as usize, "every customer arrived");
    assert_eq!(records.len(), CUSTOMERS as usize, "each exactly once");
    let ready = reqwest::get(format!("http://{}/readyz", transformer.admin))
        .await
        .unwrap()
        .status();
    assert_eq!(ready, StatusCode::OK, "the transformer is ready again");
    if !to_pipedrive {
        return;
    }

    let pipedrive = &outage.pipedrive;
    assert!(
        eventually(Duration::from_secs(600), || pipedrive.persons().len()
            >= CUSTOMERS as usize)
        .await,
        "every customer reached Pipedrive ({} of {CUSTOMERS})",
        pipedrive.persons().len()
    );
    let persons = pipedrive.persons();
    let emails: std::collections::HashSet<String> = persons
        .iter()
        .flat_map(|p| p.emails.iter().map(|e| e.value.to_lowercase()))
        .collect();
    assert_eq!(emails.len(), CUSTOMERS as usize, "one person per customer");
    assert_eq!(persons.len(), CUSTOMERS as usize, "no person twice");
    assert_eq!(
        pipedrive.total_creates(),
        CUSTOMERS as usize,
        "each created exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_to_a_rate_limited_pipedrive_survive_three_broker_restarts() {
    // Pipedrive's documented limits are on (its search window allows 5 new persons a
    // second), so the restarts fall while the sink is delivering.
    const CUSTOMERS: u64 = 150;
    let outage = Outage::new(
        "restarts-sink",
        "sink-flood-secret",
        2000,
        PipedriveConfig::new("token"),
    )
    .await;
    let (broker, pipedrive, prefix, yaml) = (
        &outage.broker,
        &outage.pipedrive,
        &outage.prefix,
        &outage.yaml,
    );
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let shop = outage.start_ingest(&shutdown).await;
    switchboard_transformer::start(load(yaml), shutdown.clone())
        .await
        .unwrap();
    let sink = switchboard_sink::start(load(yaml), shutdown.clone())
        .await
        .unwrap();
    let email = |i: u64| format!("restart{i}@example.com");
    let deliveries = customers_with_duplicates(9_300_000_000_000_000_000, CUSTOMERS, 5, email);
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = flood(shop, deliveries, 4, accepted.clone());
    sending.await.unwrap();

    // Restarts at persons delivered, not webhooks accepted (all are in before the
    // first); the sink has resumed when its group commits again, as a lane may finish a
    // call at Pipedrive while the broker is away.
    let delivered = std::sync::atomic::AtomicUsize::new(0);
    let persons = || {
        let n = pipedrive.persons().len();
        delivered.store(n, std::sync::atomic::Ordering::Relaxed);
        n as i64
    };
    let kafka = load(yaml).kafka;
    // A record the sink parked in a retry tier moves on there, not on the canonical topic.
    let mut read = vec![format!("{prefix}.canonical.contact")];
    read.extend((0..3).map(|tier| format!("{prefix}.retry.crm.{tier}")));
    let group = format!("{prefix}.sink.crm");
    let committed = || committed_sum(&kafka, &group, &read);
    for (n, threshold) in [15, 50, 85].into_iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(300), || persons() >= threshold).await,
            "{threshold} persons delivered before sink restart {}",
            n + 1
        );
        restart_during(broker, &delivered, &[threshold as usize], committed).await;
        eprintln!("(the restart above was sink restart {})", n + 1);
    }
    assert!(
        eventually(Duration::from_secs(300), || persons() >= CUSTOMERS as i64).await,
        "every customer reached Pipedrive: {}",
        persons()
    );
    for i in 0..CUSTOMERS {
        assert_eq!(
            pipedrive.creates_for_email(&email(i)),
            1,
            "{} created exactly once",
            email(i)
        );
    }
    assert_eq!(pipedrive.persons().len(), CUSTOMERS as usize);
    let ready = reqwest::get(format!("http://{}/readyz", sink.admin))
        .await
        .unwrap()
        .status();
    assert_eq!(ready, StatusCode::OK, "the sink is ready again");
}

/// The sum of `group`'s committed offsets on `topics` (-1 while Kafka cannot say).
fn committed_sum(
    kafka: &switchboard_core::config::KafkaConfig,
    group: &str,
    topics: &[String],
) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = switchboard_core::kafka::client_config(kafka)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for topic in topics {
        for p in 0..3 {
            partitions.add_partition(topic, p);
        }
    }
    match consumer.committed_offsets(partitions, Duration::from_secs(5)) {
        Ok(list) => list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum(),
        Err(_) => -1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polls_resume_on_their_own_after_three_broker_restarts() {
    init_logging();
    ensure_stack(); // for the shared registry
    let broker = PrivateBroker::new();
    broker.run("kafka-up");
    // Pipedrive's documented limits are on.
    let crm = PipedriveSandbox::start(PipedriveConfig::new("pd-restart-token"))
        .await
        .unwrap();
    let mut seeded = Vec::new();
    let mut seed = |n: usize| {
        for _ in 0..n {
            let i = seeded.len();
            let person =
                crm.seed_person(&format!("Polled {i}"), &[&format!("polled{i}@example.com")]);
            seeded.push(person.id);
        }
        seeded.len()
    };
    seed(20);
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("restarts-poll");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  crm:
    type: pipedrive
    base_url: "{base}"
    api_token: "{token}"
    poll: {{entities: [persons], every_secs: 1}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = broker.bootstrap(),
        registry = registry_url(),
        base = crm.base_url(),
        token = secret_ref(dir.path(), "token", "pd-restart-token"),
    );
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let topic = format!("{prefix}.raw.crm.persons");
    let bootstrap = broker.bootstrap();
    assert!(
        eventually(Duration::from_secs(180), || topic_size(&bootstrap, &topic)
            >= 20)
        .await,
        "the first persons were polled"
    );
    for restart in 1..=3 {
        broker.run("kafka-down");
        // Changes made while Kafka is away: the poll cannot publish them yet.
        let total = seed(10);
        tokio::time::sleep(Duration::from_secs(10)).await;
        broker.run("kafka-up");
        let back = std::time::Instant::now();
        assert!(
            eventually(Duration::from_secs(120), || topic_size(&bootstrap, &topic)
                >= total as i64)
            .await,
            "polls resumed after restart {restart} with no process restarted"
        );
        let took = back.elapsed();
        eprintln!(
            "poller restart {restart}: the changes made while Kafka was away were published {took:?} after it was back"
        );
        assert!(took < RESUME_BOUND, "restart {restart}: {took:?}");
    }
    let raw = read_topic(
        &bootstrap,
        &topic,
        seeded.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let keys: std::collections::HashSet<String> = raw
        .iter()
        .filter_map(|m| m.key())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    for id in &seeded {
        assert!(keys.contains(&id.to_string()), "person {id} was polled");
    }
}
