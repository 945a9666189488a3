//! `switchboard-transformer`: raw change events to canonical records, exactly once.

use std::path::PathBuf;

use clap::Parser;

/// Maps raw change events to canonical Avro records in Kafka transactions, so a crash
/// neither loses nor doubles a record.
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
    switchboard_transformer::run(config, shutdown).await
}
