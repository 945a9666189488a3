//! Which Kafka cluster and topic prefix an operations command works on: `--config` (the
//! services' own file, so SASL/TLS settings come along), else `--bootstrap` and `--prefix`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use switchboard_core::Config;
use switchboard_core::config::KafkaConfig;

/// The cluster options every operations command takes.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Configuration file (the services' YAML); its `kafka` section is used.
    #[arg(long, env = "SB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers when no --config is given.
    #[arg(long, env = "SB_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic and group prefix when no --config is given.
    #[arg(long, env = "SB_TOPIC_PREFIX", default_value = "sb")]
    pub prefix: String,
}

impl ClusterArgs {
    /// The Kafka settings to use.
    pub fn kafka(&self) -> anyhow::Result<KafkaConfig> {
        match &self.config {
            Some(path) => Ok(Config::load(path)
                .with_context(|| format!("--config {}", path.display()))?
                .kafka),
            None => {
                let yaml = format!(
                    "kafka: {{bootstrap_servers: '{}', topic_prefix: '{}'}}\nregistry: {{url: 'http://unused'}}\n",
                    self.bootstrap, self.prefix
                );
                Ok(Config::from_yaml(&yaml)?.kafka)
            }
        }
    }
}

/// Parses an RFC 3339 time (`2026-11-27T10:00:00Z`) to epoch milliseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("`{text}` is not an RFC 3339 time such as 2026-11-27T10:00:00Z")
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Runs blocking Kafka work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, switchboard_core::error::ClassifiedError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}
