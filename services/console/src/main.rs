//! `switchboard-console`: the operators' dashboard, JSON admin API and alert sender.

use clap::Parser;

/// Serves the dashboard (default 127.0.0.1:8090), the record trace, DLQ actions and
/// `/api/v1`, exports consumer lag, and sends `sb.alerts` to Telegram.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: switchboard_core::service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_core::service::main(Args::parse().config, switchboard_console::run).await
}
