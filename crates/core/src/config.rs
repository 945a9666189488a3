//! Configuration: one YAML file, every key overridable from the environment.
//!
//! Layers, later wins: the file given by `--config` / `SB_CONFIG`, then environment variables
//! `SB__SECTION__KEY` (double underscores separate levels, e.g.
//! `SB__KAFKA__BOOTSTRAP_SERVERS`). Unknown keys are errors, so a typo never silently falls
//! back to a default. Secrets are [`Secret`](crate::Secret) references. Connection settings
//! are kept as data here and typed by the connectors crate, because core knows no SaaS system.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::{Deserialize, Serialize};

mod rules;

pub use rules::{ConsoleRules, parse_date};

/// The whole configuration every service reads; each service uses the parts it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka cluster and topic naming.
    pub kafka: KafkaConfig,
    /// Confluent-compatible schema registry.
    pub registry: RegistryConfig,
    /// Connections by name: one account of one system.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Flows: from a source entity through a mapping to a canonical entity and its sinks.
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    /// The webhook ingest service.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// The transformer service.
    #[serde(default)]
    pub transformer: TransformerConfig,
    /// The sink service.
    #[serde(default)]
    pub sink: SinkConfig,
    /// The poller service.
    #[serde(default)]
    pub poller: PollerConfig,
    /// The console service (dashboard, JSON admin API, alerts).
    #[serde(default)]
    pub console: ConsoleConfig,
    /// When a stage counts as stalled (its `/readyz` fails).
    #[serde(default)]
    pub health: HealthConfig,
    /// Natural keys per canonical entity, for matching records of different systems.
    #[serde(default)]
    pub identity: crate::policy::IdentityConfig,
    /// Conflict rules per canonical entity and field.
    #[serde(default)]
    pub policies: crate::policy::PoliciesConfig,
    /// Key (32 bytes, base64) that encrypts credentials Switchboard stores in Kafka, such as
    /// rotated refresh tokens. Required by connections with rotating tokens.
    #[serde(default)]
    pub secrets_key: Option<crate::Secret>,
}

/// `health`: the readiness every stage reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// A stage whose input has waited this long while it made no progress (no commit, no
    /// delivery, no poll) answers `/readyz` with 503; 0 switches the check off.
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            stall_after_secs: default_stall_after_secs(),
        }
    }
}

impl HealthConfig {
    /// The stall bound, `None` when switched off.
    pub fn stall_after(&self) -> Option<std::time::Duration> {
        (self.stall_after_secs > 0).then(|| std::time::Duration::from_secs(self.stall_after_secs))
    }
}

fn default_stall_after_secs() -> u64 {
    60
}

/// Poller settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_poller_listen")]
    pub admin_listen: SocketAddr,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            admin_listen: default_poller_listen(),
        }
    }
}

fn default_poller_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9103))
}

/// Console settings: where it listens, who may read and who may act, where alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address of the dashboard, `/api/v1`, `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_console_listen")]
    pub listen: SocketAddr,
    /// Token of the admin role (redrive, discard, replay), as a bearer token or the
    /// password of basic auth. Without it, admin actions are refused.
    #[serde(default)]
    pub admin_token: Option<crate::Secret>,
    /// Token of the read-only role. Without it (and without `admin_token`), pages are open.
    #[serde(default)]
    pub read_token: Option<crate::Secret>,
    /// Where alerts from `sb.alerts` are sent.
    #[serde(default)]
    pub alerts: Option<ConsoleAlerts>,
    /// The conditions the console watches for itself and alerts on.
    #[serde(default)]
    pub rules: ConsoleRules,
}

/// `console.alerts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleAlerts {
    /// A connection of type `telegram` whose bot sends the alerts.
    pub telegram: String,
    /// The chat the alerts go to.
    pub chat_id: i64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: default_console_listen(),
            admin_token: None,
            read_token: None,
            alerts: None,
            rules: ConsoleRules::default(),
        }
    }
}

fn default_console_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}

/// Kafka connection and topic layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// Prefix of every topic and group; tests use a unique one to isolate themselves.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Partitions of topics the services create.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of topics the services create.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// SASL and TLS, applied to every client (see [`crate::security`]).
    #[serde(default)]
    pub security: crate::security::KafkaSecurity,
    /// Extra librdkafka properties for every client (e.g. `client.rack`). Security settings
    /// and credentials are refused here: they belong under `security`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The schema registry's Confluent-compatible API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub url: String,
    /// HTTP basic authentication (Confluent Cloud API keys, Apicurio behind a proxy).
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

/// `registry.basic_auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (for Confluent Cloud: the registry API key).
    pub username: String,
    /// Password by reference: `${env:NAME}` or `${file:/path}`.
    pub password: crate::Secret,
}

/// One connection as written in the file: its `type` and the type's own settings, which the
/// connectors crate checks.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionConfig {
    /// The system: `shopify`, `pipedrive`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Everything else under the connection.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A flow from one source entity to one canonical entity and on to its sink targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Unique flow name, used in logs and metrics.
    pub name: String,
    /// `<connection>.<entity>`, e.g. `shop.customers`.
    pub from: String,
    /// Mapping file under the mappings directory without extension, e.g.
    /// `shopify/customer-to-contact.v1`.
    pub mapping: String,
    /// Canonical entity, e.g. `contact`.
    pub to: String,
    /// Version of the canonical schema to write; the newest in the schemas directory if absent.
    #[serde(default)]
    pub schema_version: Option<u32>,
    /// Targets the canonical records of this flow are delivered to.
    #[serde(default)]
    pub sinks: Vec<FlowSink>,
}

/// One target of a flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSink {
    /// `<connection>.<entity>`, e.g. `crm.persons`.
    pub target: String,
    /// Natural key for check-before-create, e.g. `email`.
    #[serde(default)]
    pub match_on: Option<String>,
    /// What a record the source deleted does at this target; default: the target
    /// entity's own (`delete`, or `archive` where the API cannot delete, `ignore` where
    /// nothing can be taken back).
    #[serde(default)]
    pub on_delete: Option<OnDelete>,
    /// What an update does when the linked record is gone at the target (404).
    #[serde(default)]
    pub on_missing: OnMissing,
    /// The target payload as a mapping of the canonical record, under `sink.mappings_dir`
    /// (e.g. `pipedrive/contact-to-person.v1`); without one, the target's built-in payload.
    #[serde(default)]
    pub mapping: Option<String>,
}

/// `flows[].sinks[].on_delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Delete the linked record.
    Delete,
    /// Keep it, marked inactive the target's way (an Exact account gets an end date).
    Archive,
    /// Leave it as it is; the outcome says so.
    Ignore,
}

impl OnDelete {
    /// As in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Archive => "archive",
            Self::Ignore => "ignore",
        }
    }
}

/// `flows[].sinks[].on_missing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Match it anew by its natural key, else create it again.
    #[default]
    Recreate,
    /// Dead-letter the record with the reason, for an operator to decide.
    DeadLetter,
}

/// Webhook ingest settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address the webhook server listens on.
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// Largest accepted body; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a webhook waits for Kafka's acknowledgement before answering 503. Kept
    /// below Shopify's 5 s delivery timeout.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// On shutdown, how long the server keeps answering after it reported not ready, so
    /// load balancers stop routing here before the listener closes.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    /// How long a delivery ID is remembered: a redelivery within it is answered 200 and
    /// not republished. Shopify retries for 4 hours, so a day covers every source.
    #[serde(default = "default_dedupe_window_secs")]
    pub dedupe_window_secs: u64,
}

/// Transformer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_transformer_listen")]
    pub admin_listen: SocketAddr,
    /// Directory holding the mapping files.
    #[serde(default = "default_mappings_dir")]
    pub mappings_dir: PathBuf,
    /// Directory holding the schemas; source payload shapes are read from its `source/`.
    #[serde(default = "default_schemas_dir")]
    pub schemas_dir: PathBuf,
    /// Most records in one Kafka transaction. A batch closes at this or after `linger_ms`,
    /// so live traffic keeps small, quick transactions; a replay gets large ones, where the
    /// commit's round trips are spread over more records (`make bench`: 500 gave 2,849
    /// events/s, 5,000 gave 6,024).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How long a transaction waits for more records after the first.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// `transaction.timeout.ms` of the transformer's producer: the longest an open
    /// transaction of an instance that died holds back `read_committed` readers before the
    /// broker aborts it (each incarnation has its own transactional ID, so a restart does
    /// not abort its predecessor's). Kafka Streams uses 10 s under exactly-once too.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
}

/// Sink settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_sink_listen")]
    pub admin_listen: SocketAddr,
    /// Directory holding the target payload mappings (`flows[].sinks[].mapping`).
    #[serde(default = "default_mappings_dir")]
    pub mappings_dir: PathBuf,
    /// Target connections this process serves; empty means every target named by a flow.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Longest wait between two in-place retries of a transient failure.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Attempts of a record in place before it moves to the next retry tier.
    #[serde(default = "default_in_place_attempts")]
    pub in_place_attempts: u32,
    /// Delays of the retry tiers `sb.retry.<sink>.<n>`, in seconds; after the last one a
    /// record goes to the DLQ.
    #[serde(default = "default_retry_tiers_secs")]
    pub retry_tiers_secs: Vec<u64>,
    /// This many different records failing in a row means the target is down: the circuit
    /// opens and consumption waits instead of moving records to the retry tiers.
    #[serde(default = "default_circuit_after_records")]
    pub circuit_after_records: u32,
    /// Request rate per target connection (token bucket); unset connections use their
    /// system's documented limit.
    #[serde(default)]
    pub rates: BTreeMap<String, RateConfig>,
    /// Records delivered at once per target connection. Records of one key always go one
    /// at a time, in order; only different keys overlap.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Per target connection, a `concurrency` other than the default.
    #[serde(default)]
    pub concurrency_by_connection: BTreeMap<String, u32>,
    /// Target connections where a record the source deleted stays (outcome `skipped`,
    /// with the reason). Elsewhere the deletion reaches the target: the record linked to
    /// the deleted one is deleted.
    #[serde(default)]
    pub keep_deleted: Vec<String>,
}

impl SinkConfig {
    /// Records delivered at once at `connection` (at least 1).
    pub fn concurrency_of(&self, connection: &str) -> usize {
        let n = self
            .concurrency_by_connection
            .get(connection)
            .copied()
            .unwrap_or(self.concurrency);
        usize::try_from(n.max(1)).unwrap_or(1)
    }
}

/// Most records in flight per target connection: beyond this the broker-side ordering
/// bookkeeping grows for no gain (targets rate-limit well below it).
pub const MAX_SINK_CONCURRENCY: u32 = 64;

/// A token bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}
fn default_concurrency() -> u32 {
    1
}
fn default_in_place_attempts() -> u32 {
    3
}
fn default_retry_tiers_secs() -> Vec<u64> {
    vec![60, 600, 3600]
}
fn default_circuit_after_records() -> u32 {
    3
}

fn default_topic_prefix() -> String {
    "sb".to_owned()
}
fn default_partitions() -> i32 {
    3
}
fn default_replication_factor() -> i32 {
    1
}
fn default_ingest_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_ack_timeout_ms() -> u64 {
    4000
}
fn default_drain_ms() -> u64 {
    5000
}
fn default_dedupe_window_secs() -> u64 {
    24 * 3600
}
fn default_transformer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9101))
}
fn default_mappings_dir() -> PathBuf {
    PathBuf::from("mappings")
}
fn default_schemas_dir() -> PathBuf {
    PathBuf::from("schemas")
}
fn default_batch_max() -> usize {
    5_000
}
fn default_linger_ms() -> u64 {
    20
}
fn default_transaction_timeout_ms() -> u64 {
    10_000
}
fn default_sink_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9102))
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: default_ingest_listen(),
            max_body_bytes: default_max_body_bytes(),
            ack_timeout_ms: default_ack_timeout_ms(),
            dedupe_window_secs: default_dedupe_window_secs(),
            drain_ms: default_drain_ms(),
        }
    }
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            admin_listen: default_transformer_listen(),
            mappings_dir: default_mappings_dir(),
            schemas_dir: default_schemas_dir(),
            batch_max: default_batch_max(),
            linger_ms: default_linger_ms(),
            transaction_timeout_ms: default_transaction_timeout_ms(),
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            admin_listen: default_sink_listen(),
            connections: Vec::new(),
            max_backoff_ms: default_max_backoff_ms(),
            in_place_attempts: default_in_place_attempts(),
            retry_tiers_secs: default_retry_tiers_secs(),
            circuit_after_records: default_circuit_after_records(),
            rates: BTreeMap::new(),
            concurrency: default_concurrency(),
            concurrency_by_connection: BTreeMap::new(),
            keep_deleted: Vec::new(),
            mappings_dir: default_mappings_dir(),
        }
    }
}

/// A configuration problem, naming the key and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment override could not be read or did not fit the schema.
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is present but wrong.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ConfigError {
    /// An error about `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Loads `path` with `SB__…` environment overrides and validates it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::invalid(
                "--config",
                format!("file {} does not exist", path.display()),
            ));
        }
        Self::from_figment(Figment::new().merge(Yaml::file_exact(path)))
    }

    /// Parses YAML text with `SB__…` environment overrides and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Yaml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .merge(Env::prefixed("SB__").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path` with `SB__…` overrides like [`Config::load`] but without the
    /// cross-field checks, returning every parse problem instead of the first; the caller
    /// runs [`Config::problems`] itself (`switchboard config check` does). The list is
    /// never empty on `Err`.
    pub fn load_unchecked(path: &Path) -> Result<Self, Vec<ConfigError>> {
        if !path.exists() {
            return Err(vec![ConfigError::invalid(
                "--config",
                format!("file {} does not exist", path.display()),
            )]);
        }
        Self::parse_all(Figment::new().merge(Yaml::file_exact(path)))
    }

    fn parse_all(figment: Figment) -> Result<Self, Vec<ConfigError>> {
        figment
            .merge(Env::prefixed("SB__").split("__"))
            .extract()
            .map_err(|e| {
                e.into_iter()
                    .map(|one| ConfigError::Load(Box::new(one)))
                    .collect()
            })
    }

    /// Cross-field checks that serde cannot express; the first problem, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every cross-field problem, in file order.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        problems.extend(
            self.kafka
                .security
                .validate(self.kafka.properties.keys())
                .err(),
        );
        if !is_name(&self.kafka.topic_prefix) {
            problems.push(ConfigError::invalid(
                "kafka.topic_prefix",
                "use letters, digits, '-' or '_' only",
            ));
        }
        for name in self.connections.keys() {
            if !is_name(name) || name == "transformer" {
                problems.push(ConfigError::invalid(
                    format!("connections.{name}"),
                    "a connection name uses letters, digits, '-' or '_' and is not `transformer`",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, flow) in self.flows.iter().enumerate() {
            if !names.insert(flow.name.as_str()) {
                problems.push(ConfigError::invalid(
                    format!("flows[{i}].name"),
                    format!("flow name `{}` is used twice", flow.name),
                ));
            }
            problems.extend(
                self.check_endpoint(&format!("flows[{i}].from"), &flow.from)
                    .err(),
            );
            if !is_name(&flow.to) {
                problems.push(ConfigError::invalid(
                    format!("flows[{i}].to"),
                    "name a canonical entity such as `contact`",
                ));
            }
            for (j, sink) in flow.sinks.iter().enumerate() {
                let key = format!("flows[{i}].sinks[{j}].target");
                problems.extend(self.check_endpoint(&key, &sink.target).err());
            }
        }
        problems.extend(self.policies.validate(self).err());
        if let Some(alerts) = &self.console.alerts
            && self
                .connections
                .get(&alerts.telegram)
                .map(|c| c.kind.as_str())
                != Some("telegram")
        {
            problems.push(ConfigError::invalid(
                "console.alerts.telegram",
                format!(
                    "name a connection of type `telegram`, not `{}`",
                    alerts.telegram
                ),
            ));
        }
        problems.extend(self.console.rules.problems(self));
        for (name, rate) in &self.sink.rates {
            if !self.connections.contains_key(name) {
                problems.push(ConfigError::invalid(
                    format!("sink.rates.{name}"),
                    format!("connection `{name}` is not defined under `connections`"),
                ));
            } else if rate.per_second.is_nan() || rate.per_second <= 0.0 {
                problems.push(ConfigError::invalid(
                    format!("sink.rates.{name}.per_second"),
                    "give a rate above zero",
                ));
            }
        }
        let concurrency = std::iter::once(("sink.concurrency".to_owned(), self.sink.concurrency))
            .chain(
                self.sink
                    .concurrency_by_connection
                    .iter()
                    .map(|(name, n)| (format!("sink.concurrency_by_connection.{name}"), *n)),
            );
        for (key, n) in concurrency {
            if !(1..=MAX_SINK_CONCURRENCY).contains(&n) {
                problems.push(ConfigError::invalid(
                    key,
                    format!("give 1 to {MAX_SINK_CONCURRENCY} records in flight, not {n}"),
                ));
            }
        }
        let named = self
            .sink
            .concurrency_by_connection
            .keys()
            .map(|name| (format!("sink.concurrency_by_connection.{name}"), name))
            .chain(
                self.sink
                    .keep_deleted
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (format!("sink.keep_deleted[{i}]"), name)),
            );
        for (key, name) in named {
            if !self.connections.contains_key(name) {
                problems.push(ConfigError::invalid(
                    key,
                    format!("connection `{name}` is not defined under `connections`"),
                ));
            }
        }
        problems
    }

    fn check_endpoint(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        let (connection, entity) = split_endpoint(value).ok_or_else(|| {
            ConfigError::invalid(key, "write `<connection>.<entity>`, e.g. `shop.customers`")
        })?;
        if !self.connections.contains_key(connection) {
            return Err(ConfigError::invalid(
                key,
                format!("connection `{connection}` is not defined under `connections`"),
            ));
        }
        if !is_name(entity) {
            return Err(ConfigError::invalid(
                key,
                "the entity uses letters, digits, '-' or '_'",
            ));
        }
        Ok(())
    }
}

/// Splits `<connection>.<entity>`.
pub fn split_endpoint(value: &str) -> Option<(&str, &str)> {
    value.split_once('.')
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "kafka: {bootstrap_servers: '127.0.0.1:9092'}\nregistry: {url: 'http://r'}\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let config = Config::from_yaml(BASE).unwrap();
        assert_eq!(config.kafka.topic_prefix, "sb");
        assert_eq!(config.ingest.listen.port(), 8080);
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::from_yaml(&format!("{BASE}ingest: {{lisen: '1.2.3.4:1'}}\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lisen"), "{text}");
    }

    #[test]
    fn flow_with_undefined_connection_names_the_key() {
        let yaml = format!(
            "{BASE}flows:\n  - {{name: f, from: nope.customers, mapping: m, to: contact}}\n"
        );
        let err = Config::from_yaml(&yaml).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `flows[0].from`: connection `nope` is not defined under `connections`"
        );
    }

    #[test]
    fn every_cross_field_problem_is_reported() {
        let yaml = format!(
            "{BASE}flows:\n  - {{name: f, from: nope.customers, mapping: m, to: contact}}\n  - {{name: f, from: bad, mapping: m, to: contact}}\n"
        );
        let config: Config = Figment::new().merge(Yaml::string(&yaml)).extract().unwrap();
        let keys: Vec<String> = config
            .problems()
            .iter()
            .map(|p| match p {
                ConfigError::Invalid { key, .. } => key.clone(),
                ConfigError::Load(e) => e.to_string(),
            })
            .collect();
        assert_eq!(keys, ["flows[0].from", "flows[1].name", "flows[1].from"]);
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "config key `flows[0].from`: connection `nope` is not defined under `connections`"
        );
    }

    #[test]
    fn sink_concurrency_has_a_default_an_override_and_bounds() {
        let yaml = format!(
            "{BASE}connections:\n  shop: {{type: shopify}}\nsink: {{concurrency: 2, concurrency_by_connection: {{shop: 8}}}}\n"
        );
        let config = Config::from_yaml(&yaml).unwrap();
        assert_eq!(config.sink.concurrency_of("shop"), 8);
        assert_eq!(config.sink.concurrency_of("crm"), 2);
        assert_eq!(Config::from_yaml(BASE).unwrap().sink.concurrency_of("x"), 1);

        let yaml = format!(
            "{BASE}connections:\n  shop: {{type: shopify}}\nsink: {{concurrency_by_connection: {{shop: 0, nope: 2}}}}\n"
        );
        let config: Config = Figment::new().merge(Yaml::string(&yaml)).extract().unwrap();
        let problems: Vec<String> = config.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "config key `sink.concurrency_by_connection.shop`: give 1 to 64 records in flight, not 0",
                "config key `sink.concurrency_by_connection.nope`: connection `nope` is not defined under `connections`",
            ]
        );
    }

    #[test]
    fn connection_settings_are_kept_for_the_connectors() {
        let yaml = format!(
            "{BASE}connections:\n  shop: {{type: shopify, shop_domain: a.myshopify.com}}\n"
        );
        let config = Config::from_yaml(&yaml).unwrap();
        let shop = &config.connections["shop"];
        assert_eq!(shop.kind, "shopify");
        assert_eq!(shop.settings["shop_domain"], "a.myshopify.com");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn sink_connections_come_from_the_environment() {
        // The Helm chart runs one sink Deployment per target connection this way.
        figment::Jail::expect_with(|jail| {
            jail.set_env("SB__SINK__CONNECTIONS", "[crm]");
            let config = Config::from_yaml(BASE).map_err(|e| e.to_string())?;
            assert_eq!(config.sink.connections, vec!["crm".to_owned()]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn environment_overrides_any_key_and_feeds_secret_references() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SB__KAFKA__BOOTSTRAP_SERVERS", "broker:29092");
            jail.set_env("SB__INGEST__MAX_BODY_BYTES", "2048");
            jail.set_env("SB_TEST_SHOP_SECRET", "from-env");
            let yaml = format!(
                "{BASE}connections:\n  shop: {{type: shopify, webhook_secret: '${{env:SB_TEST_SHOP_SECRET}}'}}\n"
            );
            let config = Config::from_yaml(&yaml).map_err(|e| e.to_string())?;
            assert_eq!(config.kafka.bootstrap_servers, "broker:29092");
            assert_eq!(config.ingest.max_body_bytes, 2048);
            let secret: crate::Secret = serde_json::from_value(
                config.connections["shop"].settings["webhook_secret"].clone(),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(secret.expose(), "from-env");
            Ok(())
        });
    }
}
