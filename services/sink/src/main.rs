//! `switchboard-sink`: canonical records to target APIs, effectively once.

use clap::Parser;

/// Delivers canonical records to target APIs with check-before-create; an offset is stored only
/// after the target acknowledged the record or it was dead-lettered.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: switchboard_core::service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_core::service::main(Args::parse().config, switchboard_sink::run).await
}
