//! What every service binary does around its own work: read `--config` / `SB_CONFIG`, start
//! JSON logging, load and validate the configuration (a bad key stops the process with a
//! message naming it), and hand a shutdown token cancelled by SIGTERM/SIGINT to `run`.

use std::future::Future;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::Config;

/// The arguments every service takes; flatten it into the binary's clap parser.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (YAML); every key can be overridden by `SB__SECTION__KEY`.
    #[arg(long, env = "SB_CONFIG")]
    pub config: PathBuf,
}

/// Runs a service's `run(config, shutdown)` the same way for every binary.
pub async fn main<F, Fut>(args: ConfigArgs, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init_logging();
    let config = Config::load(&args.config)
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    run(config, crate::shutdown::on_signal()).await
}
