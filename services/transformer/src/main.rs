//! `switchboard-transformer`: raw change events to canonical records, exactly once.

use clap::Parser;

/// Maps raw change events to canonical Avro records in Kafka transactions, so a crash
/// neither loses nor doubles a record.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: switchboard_core::service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_core::service::main(Args::parse().config, switchboard_transformer::run).await
}
