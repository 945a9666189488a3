//! `switchboard-ingest-webhook`: receives webhooks and publishes them to Kafka.

use clap::Parser;

/// Receives webhooks on `POST /webhooks/<connection>` and answers 2xx only after Kafka
/// acknowledged the write.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: switchboard_core::service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_core::service::main(Args::parse().config, switchboard_ingest_webhook::run).await
}
