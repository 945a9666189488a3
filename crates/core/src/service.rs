//! What every service binary does around its own work: read `--config` / `SB_CONFIG`, start
//! JSON logging, load and validate the configuration (a bad key stops the process with a
//! message naming it), and hand a shutdown token cancelled by SIGTERM/SIGINT to `run`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::avro::AvroCodec;
use crate::config::KafkaConfig;
use crate::error::ClassifiedError;
use crate::kafka::{TopicSpec, ensure_topics};

/// The arguments every service takes; flatten it into the binary's clap parser.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (YAML); every key can be overridden by `SB__SECTION__KEY`.
    #[arg(long, env = "SB_CONFIG")]
    pub config: PathBuf,
}

/// Runs a service's `run(config, shutdown)` the same way for every binary.
pub async fn main<F, Fut>(args: ConfigArgs, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init_logging();
    let config = Config::load(&args.config)
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    run(config, crate::shutdown::on_signal()).await
}

/// Logs how service `name` stopped: at `info` when it was asked to, at `error` with the
/// cause when it failed (a service started in-process, as the tests do, has no other
/// witness of its failure).
pub fn log_stopped(name: &str, result: &anyhow::Result<()>) {
    match result {
        Ok(()) => tracing::info!("{name} stopped"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "{name} stopped on an error"),
    }
}

/// Waits until Kafka and the registry answer and the service's topics exist, retrying with
/// backoff (services may start before the broker, as they do on Kubernetes). Returns `false`
/// if shutdown came first.
pub async fn prepare(
    kafka: &KafkaConfig,
    topics: &[TopicSpec],
    codec: &AvroCodec,
    shutdown: &CancellationToken,
) -> bool {
    let mut wait = Duration::from_millis(200);
    loop {
        let attempt: Result<(), ClassifiedError> = async {
            ensure_topics(kafka, topics).await?;
            codec.check().await
        }
        .await;
        match attempt {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "not ready yet");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return false,
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}
