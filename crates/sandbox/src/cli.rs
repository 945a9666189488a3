//! Command line of the `switchboard-sandbox` binary (clap derive), and its dispatch.
//!
//! Secrets are never flags: `--pipedrive-token-env` and `--shopify-secret-env` name the
//! environment variables that hold them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::demo::{DemoOptions, run_demo, run_serve, secret_from_env};
use crate::pipedrive::PipedriveConfig;

/// Offline emulators of the SaaS APIs Switchboard talks to.
#[derive(Debug, Parser)]
#[command(name = "switchboard-sandbox", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Pipedrive API v2 emulator until Ctrl-C.
    Serve(ServeArgs),
    /// Serve the Pipedrive emulator and stream signed Shopify customer webhooks until Ctrl-C.
    Demo(DemoArgs),
    /// Serve every emulator (Pipedrive, Telegram, Shopify, Exact Online) on one clock.
    All(crate::all::AllArgs),
}

/// Flags of the Pipedrive emulator.
#[derive(Debug, Clone, Args)]
pub struct PipedriveArgs {
    /// Loopback address the Pipedrive emulator listens on.
    #[arg(long, default_value = "127.0.0.1:8070")]
    pub pipedrive_addr: SocketAddr,
    /// Name of the environment variable holding the API token the emulator accepts.
    #[arg(long, default_value = "CRM_API_TOKEN")]
    pub pipedrive_token_env: String,
    /// Requests per rolling burst window (API-token Growth plan: 40).
    #[arg(long, default_value_t = 40)]
    pub burst_limit: u32,
    /// Search requests per rolling burst window (10 on every plan).
    #[arg(long, default_value_t = 10)]
    pub search_burst_limit: u32,
    /// Length of the burst window in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub burst_window_ms: u64,
    /// Daily token budget (30,000 × Growth multiplier 2).
    #[arg(long, default_value_t = 60_000)]
    pub daily_budget: u64,
}

impl PipedriveArgs {
    /// The emulator configuration, with the token read from the environment.
    pub fn config(&self) -> Result<PipedriveConfig, crate::demo::DemoError> {
        let token = secret_from_env(
            &self.pipedrive_token_env,
            "Pipedrive API token the emulator accepts",
        )?;
        Ok(PipedriveConfig {
            addr: self.pipedrive_addr,
            burst_limit: self.burst_limit,
            search_burst_limit: self.search_burst_limit,
            burst_window: Duration::from_millis(self.burst_window_ms),
            daily_budget: self.daily_budget,
            ..PipedriveConfig::new(token)
        })
    }
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The Pipedrive emulator.
    #[command(flatten)]
    pub pipedrive: PipedriveArgs,
}

/// Flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The Pipedrive emulator.
    #[command(flatten)]
    pub pipedrive: PipedriveArgs,
    /// Loopback URL the Shopify webhooks are posted to.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/shop")]
    pub webhook_url: String,
    /// Webhooks per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Shop domain sent in X-Shopify-Shop-Domain.
    #[arg(long, default_value = "acme.myshopify.com")]
    pub shop_domain: String,
    /// API version sent in X-Shopify-API-Version.
    #[arg(long, default_value = "2025-01")]
    pub api_version: String,
    /// Name of the environment variable holding the Shopify webhook signing secret.
    #[arg(long, default_value = "SHOP_WEBHOOK_SECRET")]
    pub shopify_secret_env: String,
    /// Seed for the made-up customers (random when omitted).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only send webhooks; another process (`switchboard-sandbox all`) serves Pipedrive.
    #[arg(long)]
    pub webhooks_only: bool,
}

/// Runs the parsed command until `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => run_serve(args.pipedrive.config()?, shutdown).await?,
        Command::All(args) => crate::all::run_all(args, shutdown).await?,
        Command::Demo(args) => {
            let options = DemoOptions {
                pipedrive: if args.webhooks_only {
                    None
                } else {
                    Some(args.pipedrive.config()?)
                },
                webhook_url: args.webhook_url,
                rate_per_sec: args.rate,
                shop_domain: args.shop_domain,
                api_version: args.api_version,
                shopify_secret: secret_from_env(
                    &args.shopify_secret_env,
                    "Shopify webhook signing secret",
                )?,
                seed: args.seed,
                summary_every: Duration::from_secs(10),
                max_webhooks: None,
            };
            run_demo(options, shutdown).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_defaults_match_the_design() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["switchboard-sandbox", "demo"]);
        let Command::Demo(args) = cli.command else {
            panic!("demo expected")
        };
        assert_eq!(
            args.pipedrive.pipedrive_addr,
            "127.0.0.1:8070".parse().unwrap()
        );
        assert_eq!(args.webhook_url, "http://127.0.0.1:8080/webhooks/shop");
        assert_eq!(args.rate, 5.0);
        assert_eq!(args.shop_domain, "acme.myshopify.com");
        assert_eq!(args.api_version, "2025-01");
        assert_eq!(args.pipedrive.pipedrive_token_env, "CRM_API_TOKEN");
        assert_eq!(args.shopify_secret_env, "SHOP_WEBHOOK_SECRET");
    }
}
