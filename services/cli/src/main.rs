//! `switchboard`: the operator's command line (schema and config checks).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = switchboard_cli::Cli::parse();
    let output = cli.output;
    match switchboard_cli::run(cli).await {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            if output == switchboard_cli::Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"passed": false, "error": format!("{e:#}")})
                );
            }
            switchboard_cli::Outcome::CouldNotCheck.exit_code()
        }
    }
}
