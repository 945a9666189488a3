//! `switchboard-ingest-poller`: polls APIs without webhooks into Kafka.

use clap::Parser;

/// Polls source APIs on a schedule and publishes every change to Kafka; the cursor is
/// committed only after the page's events were acknowledged, so no change is ever skipped.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: switchboard_core::service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_core::service::main(Args::parse().config, switchboard_ingest_poller::run).await
}
