//! How a command's report reaches the operator: text for people, one JSON document for
//! scripts. Both come from the same report value, so they never disagree.

use serde::Serialize;

use crate::Outcome;

/// Output format chosen with `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// A command's result, printable both ways.
pub trait Report: Serialize {
    /// Whether everything checked passed.
    fn passed(&self) -> bool;
    /// The human-readable form, ending with a summary line.
    fn text(&self) -> String;
}

/// Prints `report` in `format` on stdout and returns the outcome it stands for.
pub fn emit(format: Output, report: &impl Report) -> Outcome {
    match format {
        Output::Text => print!("{}", report.text()),
        Output::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("switchboard: cannot write the report as JSON: {e}");
                return Outcome::CouldNotCheck;
            }
        },
    }
    if report.passed() {
        Outcome::Passed
    } else {
        Outcome::Problems
    }
}
