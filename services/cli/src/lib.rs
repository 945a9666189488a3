//! The `switchboard` command line: checks an operator runs before a change goes live.
//!
//! - `schemas check | register`: every `.avsc` under a directory against the schema
//!   registry's compatibility rule (BACKWARD by default), subject by subject.
//! - `config check`: a configuration file loaded exactly as the services load it, with every
//!   problem named by key.
//! - `lag`, `replay`, `dlq`: operations on the running pipeline (consumer lag in messages
//!   and seconds, group rewinds and selective replays, dead-letter redrive and discard).
//! - `status`: one line per connection, from the console's `/api/v1/connections`.
//!
//! Guarantee: the exit code tells the outcome without parsing output: 0 when everything
//! passed, 1 when a check found a problem (an incompatible schema, a bad key), 2 when the
//! check could not run (registry unreachable, directory missing). `--output json` prints the
//! same result as one JSON document on stdout.

pub mod cluster;
pub mod config_check;
pub mod dlq;
pub mod lag;
pub mod output;
pub use switchboard_core::registry;
pub mod replay;
pub mod schemas;
pub mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use crate::output::Output;

/// Default registry: the local stack's Apicurio, through its Confluent-compatible API.
pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:8081/apis/ccompat/v7";

/// Operate Switchboard: schema and configuration checks, lag, replay and the DLQ.
///
/// Exit codes: 0 passed, 1 a check found a problem, 2 the check could not run.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version)]
pub struct Cli {
    /// Output format: human-readable text, or one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Avro schemas against the schema registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Consumer lag per group, topic and partition, in messages and seconds.
    Lag(lag::LagArgs),
    /// Rewind a consumer group (like `kafka-consumer-groups --reset-offsets`), or re-publish
    /// the records of one key or source record to their topic.
    Replay(replay::ReplayArgs),
    /// A sink connection's dead-letter queue: list, show, redrive, discard.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// One line per connection (state, last successful sync, lag, DLQ depth, parked keys),
    /// as the console shows it. Exit 1 when a connection is not `ok`.
    Status(status::StatusArgs),
}

/// `switchboard schemas …`
#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Asks the registry whether each schema file is compatible with the latest version of
    /// its subject, without registering anything. An incompatible file fails the command
    /// with the registry's reason.
    ///
    /// Subjects (TopicNameStrategy): `canonical/<entity>.v<N>.avsc` goes to
    /// `<prefix>.canonical.<entity>-value`; a schema under `raw/` goes to every
    /// `<prefix>.raw.*-value` subject the registry already has. A subject that does not
    /// exist yet counts as compatible.
    Check(SchemasArgs),
    /// Registers each schema file under its subjects, oldest version first; a version the
    /// registry already holds is left as it is, and one it refuses fails the command.
    Register(SchemasArgs),
}

/// Where the schemas are and which registry and topics they are for.
#[derive(Debug, Args)]
pub struct SchemasArgs {
    /// Directory searched recursively for `.avsc` files.
    #[arg(long, default_value = "schemas")]
    pub dir: PathBuf,
    /// Registry base URL (Confluent-compatible API) [default: `registry.url` of --config,
    /// else http://127.0.0.1:8081/apis/ccompat/v7].
    #[arg(long, env = "SB_REGISTRY_URL")]
    pub registry: Option<String>,
    /// Topic prefix of the subjects [default: `kafka.topic_prefix` of --config, else sb].
    #[arg(long, env = "SB_TOPIC_PREFIX")]
    pub prefix: Option<String>,
    /// Configuration file to take the registry URL and topic prefix from.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `switchboard config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Loads a configuration file as the services do (file, then `SB__…` environment
    /// overrides) and explains every problem: unknown or missing keys, wrong types,
    /// undefined connections, connection settings the connector refuses, flows to a
    /// canonical entity that has no schema.
    Check {
        /// Configuration file (YAML).
        #[arg(long, env = "SB_CONFIG")]
        config: PathBuf,
    },
}

/// How a command ended; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked passed.
    Passed,
    /// A check found a problem (exit 1).
    Problems,
    /// The check could not run (exit 2).
    CouldNotCheck,
}

impl Outcome {
    /// The process exit code of this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Passed => ExitCode::SUCCESS,
            Self::Problems => ExitCode::from(1),
            Self::CouldNotCheck => ExitCode::from(2),
        }
    }
}

/// Runs one command, printing its report on stdout. An `Err` means the command could not
/// run at all (exit 2).
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Schemas(SchemasCommand::Check(args)) => {
            let report = schemas::run(&args, schemas::Mode::Check).await?;
            Ok(output::emit(cli.output, &report))
        }
        Command::Schemas(SchemasCommand::Register(args)) => {
            let report = schemas::run(&args, schemas::Mode::Register).await?;
            Ok(output::emit(cli.output, &report))
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let report = config_check::check(&config);
            Ok(output::emit(cli.output, &report))
        }
        Command::Lag(args) => Ok(output::emit(cli.output, &lag::run(&args).await?)),
        Command::Replay(args) => Ok(output::emit(cli.output, &replay::run(&args).await?)),
        Command::Dlq(command) => Ok(output::emit(cli.output, &dlq::run(&command).await?)),
        Command::Status(args) => Ok(output::emit(cli.output, &status::run(&args).await?)),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_json_is_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "schemas",
            "check",
            "--dir",
            "x",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.output, Output::Json);
        assert!(matches!(
            cli.command,
            Command::Schemas(SchemasCommand::Check(SchemasArgs { ref dir, .. })) if dir == &PathBuf::from("x")
        ));
    }
}
