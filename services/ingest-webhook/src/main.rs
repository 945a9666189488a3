//! `switchboard-ingest-webhook`: receives webhooks and publishes them to Kafka.

use std::path::PathBuf;

use clap::Parser;

/// Receives webhooks on `POST /webhooks/<connection>` and answers 2xx only after Kafka
/// acknowledged the write.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (YAML); every key can be overridden by `SB__SECTION__KEY`.
    #[arg(long, env = "SB_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    switchboard_core::telemetry::init_logging();
    let config = switchboard_core::Config::load(&args.config)?;
    let shutdown = switchboard_core::shutdown::on_signal();
    switchboard_ingest_webhook::run(config, shutdown).await
}
