//! Harness for the end-to-end tests: the real local stack (Kafka + Apicurio from
//! `scripts/stack.sh`), a unique topic prefix per test so tests share one broker and run in
//! parallel, services started in-process or as real processes, and readers of what reached
//! Kafka. Nothing here mocks Kafka or the registry.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Canonical contact v1, as the records the tests write by hand use it.
pub const CONTACT_V1_SCHEMA: switchboard_core::avro::SchemaDef =
    switchboard_core::avro::SchemaDef {
        name: "io.switchboard.canonical.Contact",
        text: include_str!("../../schemas/canonical/contact.v1.avsc"),
    };

/// The repository's canonical schemas, as a service with the default `schemas_dir` reads them.
pub fn catalog() -> switchboard_core::canonical::Catalog {
    switchboard_core::canonical::Catalog::load(&workspace_root().join("schemas"))
        .expect("the repository's canonical schemas")
}

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchboard_core::Config;
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox, ShopifyWebhooks};
use tokio_util::sync::CancellationToken;

/// Broker used by the tests (`make run` shares it).
pub fn kafka_bootstrap() -> String {
    std::env::var("SB_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// Registry used by the tests.
pub fn registry_url() -> String {
    std::env::var("SB_TEST_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_owned())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Test logs go through the test writer, so they show only for failing tests.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts the shared stack with `scripts/stack.sh up` unless it already answers.
pub fn ensure_stack() {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return;
    }
    let reachable = kafka_bootstrap()
        .parse::<SocketAddr>()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    if !reachable {
        let status = Command::new(workspace_root().join("scripts/stack.sh"))
            .arg("up")
            .status()
            .expect("run scripts/stack.sh up");
        assert!(status.success(), "scripts/stack.sh up failed");
    }
    *started = true;
}

/// A prefix no other test (or earlier run) uses. Under `make test` it ends with the run's
/// tag (`SB_TEST_RUN`, `r<unix seconds>`), so scripts/test.sh can delete the run's topics.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run = std::env::var("SB_TEST_RUN")
        .ok()
        .filter(|r| r.starts_with('r') && r[1..].bytes().all(|b| b.is_ascii_digit()))
        .map(|r| format!("-{r}"))
        .unwrap_or_default();
    format!(
        "t{}-{}-{}-{}{run}",
        test.replace('_', "-"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000_000
    )
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a secret file and returns its `${file:…}` reference.
pub fn secret_ref(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    format!("${{file:{}}}", path.display())
}

/// Everything a test flow needs to know to write its configuration.
pub struct FlowSetup<'a> {
    pub prefix: &'a str,
    pub bootstrap: &'a str,
    pub pipedrive_url: &'a str,
    pub shop_secret_ref: &'a str,
    pub crm_token_ref: &'a str,
    /// Extra settings of the `crm` connection, `key: value, ...` ([`crm_pacing`]).
    pub crm_settings: &'a str,
    pub ack_timeout_ms: u64,
}

/// The demo flow (Shopify customers → Contact → Pipedrive persons) as YAML, every listener
/// on port 0.
pub fn flow_yaml(s: &FlowSetup<'_>) -> String {
    format!(
        r#"
kafka:
  bootstrap_servers: "{bootstrap}"
  topic_prefix: "{prefix}"
  partitions: 3
registry:
  url: "{registry}"
connections:
  shop:
    type: shopify
    shop_domain: acme.myshopify.com
    api_version: "2025-01"
    webhook_secret: "{shop_secret}"
  crm:
    type: pipedrive
    base_url: "{pipedrive}"
    api_token: "{crm_token}"
    timeout_ms: 5000
{crm_settings}flows:
  - name: shop-customers-to-crm
    from: shop.customers
    mapping: shopify/customer-to-contact.v1
    to: contact
    sinks:
      - target: crm.persons
        match_on: email
ingest:
  listen: "127.0.0.1:0"
  ack_timeout_ms: {ack}
  drain_ms: 0
transformer:
  admin_listen: "127.0.0.1:0"
  mappings_dir: "{mappings}"
  schemas_dir: "{schemas}"
  linger_ms: 10
sink:
  admin_listen: "127.0.0.1:0"
  max_backoff_ms: 2000
"#,
        bootstrap = s.bootstrap,
        prefix = s.prefix,
        registry = registry_url(),
        shop_secret = s.shop_secret_ref,
        pipedrive = s.pipedrive_url,
        crm_token = s.crm_token_ref,
        crm_settings = s
            .crm_settings
            .split(", ")
            .filter(|kv| !kv.is_empty())
            .map(|kv| format!("    {kv}\n"))
            .collect::<String>(),
        ack = s.ack_timeout_ms,
        mappings = workspace_root().join("mappings").display(),
        schemas = workspace_root().join("schemas").display(),
    )
}

/// A test's configuration. Tests run in `tests/`, so a transformer left at the default
/// `schemas_dir` (`schemas`, relative to where a service runs) reads the repository's.
pub fn load(yaml: &str) -> Config {
    let mut config = Config::from_yaml(yaml).expect("test config is valid");
    if config.transformer.schemas_dir == Path::new("schemas") {
        config.transformer.schemas_dir = workspace_root().join("schemas");
    }
    config
}

/// Every committed record of `topic`, read from the beginning until `expected` records were
/// seen or `timeout` passed, then for a further `settle` to catch extra (duplicate) records.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", unique_prefix("r")))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    // A service creates its topics after its `start` returned: until the topic exists, its
    // metadata has no partitions, and assigning none would read nothing for the whole wait.
    let mut assignment = TopicPartitionList::new();
    while assignment.count() == 0 && Instant::now() < deadline {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        for p in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        if assignment.count() == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if records.len() >= expected && settle_until.is_none() {
            settle_until = Some(now + settle);
        }
        if settle_until.is_some_and(|s| now >= s) || now >= deadline {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            records.push(m.detach());
        }
    }
    records
}

/// Every JSON record now on `topic` (status, alerts, audit and the like; tombstones
/// skipped); panics on a record that is not JSON.
pub fn topic_json(topic: &str) -> Vec<serde_json::Value> {
    read_topic(
        &kafka_bootstrap(),
        topic,
        usize::MAX,
        Duration::from_secs(2),
        Duration::ZERO,
    )
    .iter()
    .filter_map(|m| m.payload().map(|p| serde_json::from_slice(p).unwrap()))
    .collect()
}

/// A Shopify customer webhook body for customer `id`, changed now; without an e-mail it is
/// the poison record the mapping refuses.
pub fn customer_body(id: u64, email: Option<&str>, first_name: &str, last_name: &str) -> Vec<u8> {
    let mut payload = ShopifyWebhooks::customer_payload(
        id,
        email.unwrap_or("x@example.com"),
        first_name,
        last_name,
        time::OffsetDateTime::now_utc(),
    );
    if email.is_none() {
        payload["email"] = serde_json::Value::Null;
    }
    serde_json::to_vec(&payload).unwrap()
}

/// The last value of header `name` on `record`, as text.
pub fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::{Headers, Message};
    record
        .headers()?
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Whether `group` has committed past every record in `records` (all of one topic). Offsets
/// are compared per partition, because transaction markers also take offsets.
pub fn group_caught_up(bootstrap: &str, group: &str, records: &[OwnedMessage]) -> bool {
    let Some(topic) = records.first().map(|r| r.topic().to_owned()) else {
        return true;
    };
    let mut needed: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for r in records {
        let next = needed.entry(r.partition()).or_insert(0);
        *next = (*next).max(r.offset() + 1);
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in needed.keys() {
        list.add_partition(&topic, *partition);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return false;
    };
    committed.elements().iter().all(|e| match e.offset() {
        Offset::Offset(o) => o >= needed[&e.partition()],
        _ => false,
    })
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that a record is Confluent-framed and that its schema ID resolves in the registry
/// to a schema with `record_name`; returns the ID.
pub async fn assert_confluent_framed(record: &OwnedMessage, record_name: &str) -> u32 {
    let bytes = record.payload().expect("record has a value");
    assert_eq!(bytes[0], 0, "magic byte");
    let id = switchboard_core::avro::schema_id(bytes).expect("framed");
    let url = format!("{}/schemas/ids/{id}", registry_url());
    let response = reqwest::get(&url).await.unwrap();
    assert!(
        response.status().is_success(),
        "schema {id} does not resolve: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let schema = body["schema"].as_str().unwrap();
    assert!(
        schema.contains(&format!("\"{record_name}\"")),
        "schema {id} is not {record_name}: {schema}"
    );
    id
}

/// Builds a service binary of this workspace and returns its path (tests that kill a
/// service need it as a real process; benches measure its memory). Release build when the
/// caller is one.
pub fn service_binary(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        // The whole workspace's binaries, as scripts/test.sh builds them before the tests:
        // one package alone resolves other features and would compile its dependencies
        // again.
        .args([
            "build",
            "-q",
            "--workspace",
            "--bins",
            "--message-format=json",
        ])
        // A bench (built optimised) measures the optimised services.
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build {bin} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["package_id"]
                .as_str()
                .is_some_and(|id| id.contains(package))
        })
        .filter(|v| v["target"]["name"] == bin)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the executable")
}

/// The shared stack script, for tests that run a private broker.
pub fn stack_script() -> PathBuf {
    workspace_root().join("scripts/stack.sh")
}

pub const SHOP_SECRET: &str = "shop-test-secret";
pub const CRM_TOKEN: &str = "crm-test-token";

/// One test's isolated world: its own topics, secrets and Pipedrive sandbox.
pub struct World {
    pub prefix: String,
    pub yaml: String,
    pub pipedrive: PipedriveSandbox,
    _dir: tempfile::TempDir,
    services: Services,
}

/// A service started in-process: completes when it stopped.
pub type ServiceTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Services started in-process under one shutdown token. Dropped, it only cancels the
/// token; the runtime then cancels the services' tasks wherever they are. `stop` lets them
/// drain instead.
#[derive(Default)]
pub struct Services {
    shutdown: CancellationToken,
    running: Mutex<Vec<(&'static str, ServiceTask)>>,
}

impl Services {
    /// The token to start a service with.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Remembers a started service, so that `stop` waits for it.
    pub fn keep(&self, service: &'static str, task: ServiceTask) {
        self.running.lock().unwrap().push((service, task));
    }

    /// Stops every kept service, as SIGTERM would, and waits until each has drained. Fails
    /// naming the services that stopped on an error: a clean shutdown ends without one.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let running = std::mem::take(&mut *self.running.lock().unwrap());
        let mut failed = Vec::new();
        for (service, task) in running {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failed.push(format!("{service}: {e:#}")),
                Ok(Err(e)) => failed.push(format!("{service}: {e}")),
                Err(_) => failed.push(format!("{service}: still running 30 s after shutdown")),
            }
        }
        anyhow::ensure!(failed.is_empty(), "unclean shutdown: {}", failed.join("; "));
        Ok(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl World {
    pub async fn new(test: &str, pipedrive_config: PipedriveConfig) -> Self {
        init_logging();
        ensure_stack();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix(test);
        let pipedrive = PipedriveSandbox::start(pipedrive_config.clone())
            .await
            .unwrap();
        let yaml = flow_yaml(&FlowSetup {
            prefix: &prefix,
            bootstrap: &kafka_bootstrap(),
            pipedrive_url: &pipedrive.base_url(),
            shop_secret_ref: &secret_ref(dir.path(), "shop", SHOP_SECRET),
            crm_token_ref: &secret_ref(dir.path(), "crm", CRM_TOKEN),
            crm_settings: crm_pacing(&pipedrive_config),
            ack_timeout_ms: 4000,
        });
        Self {
            prefix,
            yaml,
            pipedrive,
            _dir: dir,
            services: Services::default(),
        }
    }

    pub async fn start_ingest(&self) -> ShopifyWebhooks {
        let started = switchboard_ingest_webhook::start(load(&self.yaml), self.services.token())
            .await
            .unwrap();
        let url = format!("http://{}/webhooks/shop", started.addr);
        wait_ready(started.addr).await;
        self.services.keep("ingest-webhook", started.task);
        ShopifyWebhooks::new(url, SHOP_SECRET, "acme.myshopify.com", "2025-01").unwrap()
    }

    pub async fn start_transformer(&self) {
        let started = switchboard_transformer::start(load(&self.yaml), self.services.token())
            .await
            .unwrap();
        self.services.keep("transformer", started.task);
    }

    pub async fn start_sink(&self) {
        let started = switchboard_sink::start(load(&self.yaml), self.services.token())
            .await
            .unwrap();
        self.services.keep("sink", started.task);
    }

    /// Stops every service this world started and waits until each has drained
    /// ([`Services::stop`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.services.stop().await
    }

    pub fn raw_topic(&self) -> String {
        format!("{}.raw.shop.customers", self.prefix)
    }

    pub fn canonical_topic(&self) -> String {
        format!("{}.canonical.contact", self.prefix)
    }

    pub fn sink_group(&self) -> String {
        format!("{}.sink.crm", self.prefix)
    }
}

pub async fn wait_ready(addr: std::net::SocketAddr) {
    let url = format!("http://{addr}/readyz");
    let ready = async {
        loop {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), ready)
        .await
        .expect("ingest became ready");
}

/// Records on `topic` so far: the sum of its partitions' high watermarks (includes
/// transaction markers, so use it only for non-transactional topics).
pub fn topic_size(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return 0;
    };
    metadata.topics()[0]
        .partitions()
        .iter()
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .ok()
        })
        .map(|(_, high)| high)
        .sum()
}

/// Event `i` of a long run over `records` customers: each event changes its customer's first
/// name, with a newer source time than the one before, so every event is a real change.
pub fn numbered_customer_event(i: u64, records: u64) -> switchboard_core::envelope::ChangeEvent {
    use switchboard_core::envelope::{ChangeEvent, Operation};
    let id = 500_000 + i % records;
    let ts = 1_700_000_000_000 + i as i64;
    let payload = serde_json::json!({"id": id, "email": format!("c{id}@example.com"), "first_name": format!("v{i}"), "last_name": "Run"});
    ChangeEvent {
        event_id: ChangeEvent::derive_event_id(
            "shop",
            "customers",
            &id.to_string(),
            None,
            Some(ts),
        ),
        connection: "shop".into(),
        system: "shopify".into(),
        entity: "customers".into(),
        record_id: id.to_string(),
        operation: Operation::Update,
        source_timestamp: Some(ts),
        received_at: ts,
        api_version: Some("2025-01".into()),
        delivery_id: None,
        payload: payload.to_string(),
    }
}

/// Publishes many raw change events fast: encoded through the registry like ingest does,
/// sent pipelined, and all acknowledged before this returns.
pub async fn publish_raw_events(
    config: &Config,
    events: impl Iterator<Item = switchboard_core::envelope::ChangeEvent>,
) -> usize {
    use rdkafka::producer::FutureRecord;
    use switchboard_core::envelope::CHANGE_EVENT_SCHEMA;
    let codec = switchboard_core::avro::AvroCodec::new(&config.registry).unwrap();
    let producer =
        switchboard_core::kafka::producer(&config.kafka, Duration::from_secs(60)).unwrap();
    let topics = switchboard_core::topics::Topics::new(&config.kafka.topic_prefix);
    let mut pending = Vec::new();
    let mut sent = 0;
    for event in events {
        let topic = topics.raw(&event.connection, &event.entity);
        let value = codec
            .encode(&topic, CHANGE_EVENT_SCHEMA, &event)
            .await
            .unwrap();
        let record = FutureRecord::to(&topic)
            .key(&event.record_id)
            .payload(&value);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        sent += 1;
        if pending.len() >= 5000 {
            for ack in pending.drain(..) {
                ack.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for ack in pending {
        ack.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    sent
}

/// A canonical contact as if the transformer made it from Shopify customer `n`: tests that
/// feed the sink directly write these.
pub fn shop_contact(
    n: u64,
    email: &str,
    first_name: &str,
    last_name: &str,
) -> switchboard_core::canonical::Contact {
    switchboard_core::canonical::Contact {
        id: switchboard_core::canonical::canonical_id("shop", "customers", &n.to_string()),
        email: Some(email.into()),
        first_name: Some(first_name.into()),
        last_name: Some(last_name.into()),
        phone: None,
        deleted: false,
        source_connection: "shop".into(),
        source_entity: "customers".into(),
        source_id: n.to_string(),
        source_updated_at: None,
        source_event_id: format!("event-{n}-{first_name}-{last_name}"),
        mapping: "test".into(),
    }
}

/// Writes canonical contacts to a topic, Confluent-framed like the transformer does.
#[derive(Clone)]
pub struct ContactWriter {
    codec: switchboard_core::avro::AvroCodec,
    producer: rdkafka::producer::FutureProducer,
    /// The canonical topic.
    pub topic: String,
}

impl ContactWriter {
    /// A writer to `<prefix>.canonical.contact`.
    pub fn new(prefix: &str) -> Self {
        Self {
            codec: switchboard_core::avro::AvroCodec::new(
                &switchboard_core::config::RegistryConfig {
                    url: registry_url(),
                    basic_auth: None,
                },
            )
            .unwrap(),
            producer: ClientConfig::new()
                .set("bootstrap.servers", kafka_bootstrap())
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .unwrap(),
            topic: format!("{prefix}.canonical.contact"),
        }
    }

    /// Writes `contact` `copies` times and waits for Kafka's acknowledgements.
    pub async fn send(&self, contact: &switchboard_core::canonical::Contact, copies: usize) {
        self.send_all(std::slice::from_ref(contact), copies).await;
    }

    /// Writes each contact `copies` times, pipelined, in order per key, and waits for every
    /// acknowledgement.
    pub async fn send_all(&self, contacts: &[switchboard_core::canonical::Contact], copies: usize) {
        let mut acks = Vec::new();
        for contact in contacts {
            let value = self
                .codec
                .encode(&self.topic, CONTACT_V1_SCHEMA, contact)
                .await
                .unwrap();
            for _ in 0..copies {
                let record = rdkafka::producer::FutureRecord::to(&self.topic)
                    .key(&contact.id)
                    .payload(&value);
                acks.push(
                    self.producer
                        .send_result(record)
                        .map_err(|(e, _)| e)
                        .unwrap(),
                );
            }
        }
        for ack in acks {
            ack.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
}

/// A sink configuration: Shopify customers → contacts → persons of the Pipedrive sandbox at
/// `pipedrive_url`, secrets written into `dir`, plus `crm_settings` and `sink_settings`
/// (YAML flow-map entries such as [`UNPACED_PIPEDRIVE`] or `in_place_attempts: 2`).
pub fn pipedrive_sink_yaml(
    prefix: &str,
    dir: &Path,
    pipedrive_url: &str,
    token: &str,
    crm_settings: &str,
    sink_settings: &str,
) -> String {
    format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: "2025-01", webhook_secret: "{shop_secret}"}}
  crm: {{type: pipedrive, base_url: "{pipedrive_url}", api_token: "{token}", {crm_settings}}}
flows:
  - {{name: contacts, from: shop.customers, mapping: shopify/customer-to-contact.v1, to: contact, sinks: [{{target: crm.persons}}]}}
sink: {{admin_listen: "127.0.0.1:0", {sink_settings}}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        shop_secret = secret_ref(dir, "shop", "unused-shop-secret"),
        token = secret_ref(dir, "crm", token),
    )
}

/// A transformer configuration with one flow, Shopify customers → contacts (mapping v1), and
/// nothing else: for runs that feed raw events directly.
pub fn shop_contacts_transformer_yaml(prefix: &str) -> String {
    format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify}}
flows:
  - {{name: shop-contacts, from: shop.customers, mapping: shopify/customer-to-contact.v1, to: contact}}
transformer:
  admin_listen: "127.0.0.1:0"
  mappings_dir: "{root}/mappings"
  schemas_dir: "{root}/schemas"
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        root = workspace_root().display(),
    )
}

/// A Pipedrive sandbox configuration without its rate limits, for runs that measure or
/// stress Switchboard rather than Pipedrive's documented limits.
/// The Pipedrive connection's own pacing for a sandbox from [`unthrottled_pipedrive`]:
/// raised to match, so a test of something else is not held at the documented limits.
pub const UNPACED_PIPEDRIVE: &str = "burst_limit: 1000000, search_limit: 1000000";

/// The connection settings that pace a Pipedrive client for a sandbox started with `config`:
/// [`UNPACED_PIPEDRIVE`] for an unthrottled one, else none (the documented limits).
pub fn crm_pacing(config: &PipedriveConfig) -> &'static str {
    if config.search_burst_limit >= 1_000_000 {
        UNPACED_PIPEDRIVE
    } else {
        ""
    }
}

pub fn unthrottled_pipedrive(token: &str) -> PipedriveConfig {
    PipedriveConfig {
        burst_limit: 1_000_000,
        search_burst_limit: 1_000_000,
        daily_budget: u64::MAX / 2,
        ..PipedriveConfig::new(token)
    }
}

/// First names per Pipedrive person ID, in the order the sandbox's webhooks reported them.
pub type PersonNames = std::sync::Arc<Mutex<std::collections::BTreeMap<u64, Vec<String>>>>;

/// Subscribes a local receiver to `pipedrive`'s person webhooks (`event_action`: `*` for
/// creates and changes, `change` for changes only) and collects each person's first names,
/// in the order reported: the order in which the target saw the writes.
pub async fn watch_person_names(
    pipedrive: &PipedriveSandbox,
    token: &str,
    event_action: &str,
) -> PersonNames {
    let names = PersonNames::default();
    let seen = names.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                if let (Some(id), Some(name)) = (
                    body["data"]["id"].as_u64(),
                    body["data"]["first_name"].as_str(),
                ) {
                    let mut seen = seen.lock().unwrap();
                    seen.entry(id).or_default().push(name.to_owned());
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let subscribed = reqwest::Client::new()
        .post(format!("{}/v1/webhooks", pipedrive.base_url()))
        .header("x-api-token", token)
        .json(
            &serde_json::json!({"subscription_url": hook, "event_action": event_action,
            "event_object": "person", "http_auth_user": "u", "http_auth_password": "p"}),
        )
        .send()
        .await
        .unwrap();
    assert!(subscribed.status().is_success(), "webhook subscribed");
    names
}

/// The names `names` holds for person `id`.
pub fn names_of(names: &PersonNames, id: u64) -> Vec<String> {
    names.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

/// The rig of the in-process sink tests: a Pipedrive sandbox accepting `token`, a sink
/// configuration delivering contacts to it (`sink_settings` go inside `sink:`), and the
/// canonical contact topic, created.
pub struct PipedriveSinkRig {
    pub _dir: tempfile::TempDir,
    pub prefix: String,
    pub pipedrive: PipedriveSandbox,
    pub config: Config,
    pub writer: ContactWriter,
}

impl PipedriveSinkRig {
    pub async fn new(test: &str, token: &str, sink_settings: &str) -> Self {
        init_logging();
        ensure_stack();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix(test);
        let pipedrive = PipedriveSandbox::start(unthrottled_pipedrive(token))
            .await
            .unwrap();
        let config = load(&pipedrive_sink_yaml(
            &prefix,
            dir.path(),
            &pipedrive.base_url(),
            token,
            UNPACED_PIPEDRIVE,
            sink_settings,
        ));
        let writer = ContactWriter::new(&prefix);
        switchboard_core::kafka::ensure_topics(
            &config.kafka,
            &[switchboard_core::kafka::TopicSpec::new(
                writer.topic.clone(),
                switchboard_core::kafka::Cleanup::Compact,
            )],
        )
        .await
        .unwrap();
        Self {
            _dir: dir,
            prefix,
            pipedrive,
            config,
            writer,
        }
    }

    /// Whether, within `wait`, the sink's group committed past all `n` records on the topic.
    pub async fn committed_past(&self, n: usize, wait: Duration) -> bool {
        let records = read_topic(
            &kafka_bootstrap(),
            &self.writer.topic,
            n,
            Duration::from_secs(30),
            Duration::ZERO,
        );
        assert_eq!(records.len(), n, "every record is on the topic");
        let group = format!("{}.sink.crm", self.prefix);
        eventually(wait, || {
            group_caught_up(&kafka_bootstrap(), &group, &records)
        })
        .await
    }
}

/// Waits until Pipedrive reported `versions` names for each of `people` persons, then
/// asserts that each person's names are `V1` to `V<versions>`, each once, in the order
/// written, and that each person (`email(n)`) was created once.
pub async fn assert_each_update_once_in_order(
    pipedrive: &PipedriveSandbox,
    seen: &PersonNames,
    people: u64,
    versions: u64,
    email: impl Fn(u64) -> String,
) {
    let expected: Vec<String> = (1..=versions).map(|v| format!("V{v}")).collect();
    let all_reported = || {
        let seen = seen.lock().unwrap();
        seen.len() as u64 == people && seen.values().all(|names| names.len() >= expected.len())
    };
    assert!(
        eventually(Duration::from_secs(120), all_reported).await,
        "every version of every person reached Pipedrive: {:?}",
        seen.lock().unwrap()
    );
    // Late or duplicate reports would show up here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (id, names) in seen.lock().unwrap().iter() {
        assert_eq!(
            names, &expected,
            "person {id}: each update once, in the order written"
        );
    }
    for n in 0..people {
        let email = email(n);
        assert_eq!(
            pipedrive.creates_for_email(&email),
            1,
            "{email} created once"
        );
    }
}

/// A Kafka config on the shared broker with topic prefix `prefix` and one partition per
/// topic, and the topic `<prefix>.<name>`, made.
pub async fn one_topic(
    prefix: &str,
    name: &str,
) -> (switchboard_core::config::KafkaConfig, String) {
    let kafka: switchboard_core::config::KafkaConfig = serde_json::from_value(serde_json::json!({
        "bootstrap_servers": kafka_bootstrap(), "topic_prefix": prefix, "partitions": 1
    }))
    .unwrap();
    let topic = format!("{prefix}.{name}");
    switchboard_core::kafka::ensure_topics(
        &kafka,
        &[switchboard_core::kafka::TopicSpec::new(
            topic.clone(),
            switchboard_core::kafka::Cleanup::Delete(Duration::from_secs(3600)),
        )],
    )
    .await
    .unwrap();
    (kafka, topic)
}

/// Subscribes Switchboard's ingest at `ingest` to every person change of `pipedrive`
/// (webhooks v2, Basic auth `switchboard`:`password`), as a two-way sync needs.
pub async fn subscribe_to_persons(
    pipedrive: &PipedriveSandbox,
    token: &str,
    ingest: SocketAddr,
    password: &str,
) {
    let subscribed = reqwest::Client::new()
        .post(format!("{}/v1/webhooks", pipedrive.base_url()))
        .header("x-api-token", token)
        .json(&serde_json::json!({
            "subscription_url": format!("http://{ingest}/webhooks/crm"),
            "event_action": "*", "event_object": "person",
            "http_auth_user": "switchboard", "http_auth_password": password}))
        .send()
        .await
        .unwrap();
    assert!(subscribed.status().is_success());
}

/// The calls with `method` (e.g. `DELETE`) that the emulator behind `control` logged, in
/// order.
pub fn calls(
    control: &switchboard_sandbox::Control,
    method: &str,
) -> Vec<switchboard_sandbox::control::LoggedRequest> {
    control
        .requests()
        .into_iter()
        .filter(|r| r.method == method)
        .collect()
}

/// The `n` records of the raw topic `raw`, once exactly they are there and the
/// transformer's `group` has committed past them.
pub async fn transformed(raw: &str, n: usize, group: &str) -> Vec<OwnedMessage> {
    let records = read_topic(
        &kafka_bootstrap(),
        raw,
        n,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(records.len(), n, "{raw}: {n} records");
    assert!(
        eventually(Duration::from_secs(60), || group_caught_up(
            &kafka_bootstrap(),
            group,
            &records
        ))
        .await,
        "{group} processed every record on {raw}"
    );
    records
}
