//! `switchboard-sandbox all`: every emulator at once on fixed loopback ports and one shared
//! clock, for trying flows offline (`make run`, the README's "Try it offline").
//!
//! Secrets come from environment variables named by flags, never from flags. Exact's first
//! refresh token (what an operator would get by authorizing the app) is written to a file
//! with mode 0600 instead of being printed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::demo::secret_from_env;
use crate::exact::{ExactConfig, ExactSandbox};
use crate::pipedrive::{PipedriveConfig, PipedriveSandbox};
use crate::shopify::{ShopifyConfig, ShopifySandbox};
use crate::telegram::{TelegramConfig, TelegramSandbox};

/// Flags of `all`.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    /// Virtual seconds per real second for every emulator (e.g. 60: an hour a minute).
    #[arg(long, default_value_t = 1.0)]
    pub clock_scale: f64,
    /// Pipedrive API v2.
    #[arg(long, default_value = "127.0.0.1:8070")]
    pub pipedrive_addr: SocketAddr,
    /// Variable holding the Pipedrive API token the emulator accepts.
    #[arg(long, default_value = "CRM_API_TOKEN")]
    pub pipedrive_token_env: String,
    /// Telegram Bot API.
    #[arg(long, default_value = "127.0.0.1:8071")]
    pub telegram_addr: SocketAddr,
    /// Variable holding the bot token (`<digits>:<letters>`).
    #[arg(long, default_value = "TELEGRAM_BOT_TOKEN")]
    pub telegram_token_env: String,
    /// Shopify Admin REST API.
    #[arg(long, default_value = "127.0.0.1:8072")]
    pub shopify_addr: SocketAddr,
    /// Variable holding the Admin API access token.
    #[arg(long, default_value = "SHOP_ACCESS_TOKEN")]
    pub shopify_token_env: String,
    /// Variable holding the app secret that signs webhooks.
    #[arg(long, default_value = "SHOP_WEBHOOK_SECRET")]
    pub shopify_secret_env: String,
    /// Exact Online.
    #[arg(long, default_value = "127.0.0.1:8073")]
    pub exact_addr: SocketAddr,
    /// The OAuth client ID of the app.
    #[arg(long, default_value = "switchboard-demo")]
    pub exact_client_id: String,
    /// Variable holding the OAuth client secret.
    #[arg(long, default_value = "EXACT_CLIENT_SECRET")]
    pub exact_secret_env: String,
    /// Accounts to create in the Exact division at start.
    #[arg(long, default_value_t = 0)]
    pub exact_seed_accounts: usize,
    /// Where to write Exact's first refresh token (mode 0600); none: not issued.
    #[arg(long)]
    pub exact_refresh_token_file: Option<PathBuf>,
}

/// Serves every emulator until `shutdown` is cancelled.
pub async fn run_all(args: AllArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let clock = Clock::scaled(args.clock_scale);
    let pipedrive = PipedriveSandbox::start(PipedriveConfig {
        addr: args.pipedrive_addr,
        clock: clock.clone(),
        ..PipedriveConfig::new(secret_from_env(
            &args.pipedrive_token_env,
            "Pipedrive API token the emulator accepts",
        )?)
    })
    .await?;
    let telegram = TelegramSandbox::start(TelegramConfig {
        addr: args.telegram_addr,
        clock: clock.clone(),
        ..TelegramConfig::new(secret_from_env(
            &args.telegram_token_env,
            "Telegram bot token",
        )?)
    })
    .await?;
    let shopify = ShopifySandbox::start(ShopifyConfig {
        addr: args.shopify_addr,
        clock: clock.clone(),
        api_secret: secret_from_env(
            &args.shopify_secret_env,
            "Shopify app secret that signs webhooks",
        )?,
        ..ShopifyConfig::new(secret_from_env(
            &args.shopify_token_env,
            "Shopify Admin API access token",
        )?)
    })
    .await?;
    let exact = ExactSandbox::start(ExactConfig {
        addr: args.exact_addr,
        clock: clock.clone(),
        ..ExactConfig::new(
            &args.exact_client_id,
            secret_from_env(&args.exact_secret_env, "Exact OAuth client secret")?,
            "http://127.0.0.1/callback",
        )
    })
    .await?;
    if args.exact_seed_accounts > 0 {
        exact.generate_accounts(args.exact_seed_accounts);
    }
    if let Some(path) = &args.exact_refresh_token_file {
        write_private(path, &exact.issue_tokens().refresh_token)?;
        // Exact refuses a refresh within 570 s of issuing: start as if the operator had
        // authorized the app a little while ago.
        clock.advance(std::time::Duration::from_secs(601));
    }
    tracing::info!(
        pipedrive = %pipedrive.base_url(),
        telegram = %telegram.base_url(),
        shopify = %shopify.base_url(),
        exact = %exact.base_url(),
        division = exact.current_division(),
        "Emulators serving; control API under /_sandbox/ on each."
    );
    shutdown.cancelled().await;
    pipedrive.shutdown().await;
    telegram.shutdown().await;
    shopify.shutdown().await;
    exact.shutdown().await;
    Ok(())
}

fn write_private(path: &std::path::Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(value.as_bytes())
}
