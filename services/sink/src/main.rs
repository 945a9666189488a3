//! `switchboard-sink`: canonical records to target APIs, effectively once.

use std::path::PathBuf;

use clap::Parser;

/// Delivers canonical records to target APIs with check-before-create; an offset is stored only
/// after the target acknowledged the record or it was dead-lettered.
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
    switchboard_sink::run(config, shutdown).await
}
