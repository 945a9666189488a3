//! `switchboard-sandbox`: serve the SaaS emulators, or run the webhook demo.
//!
//! Thin on purpose: parse flags, start JSON logging, wire Ctrl-C to a cancellation token,
//! and hand over to `switchboard_sandbox::cli::run`.

use clap::Parser;
use switchboard_sandbox::cli::{Cli, run};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received; stopping.");
        }
        on_signal.cancel();
    });

    run(cli, shutdown).await
}
