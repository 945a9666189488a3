//! `switchboard config check`: a configuration file loaded through core's loader (file,
//! then `SB__…` environment overrides), then put through every check a service would make
//! at start: the cross-field rules, each connection's settings as its connector types
//! them, and a canonical schema for each flow's target entity.
//!
//! Guarantee: every problem found is listed with the key it is about and how to fix it;
//! nothing stops at the first. Secret references are resolved as a service would resolve
//! them (an unset variable or missing file is a problem), but their values are never
//! printed: problems name keys and references only.

use std::fmt::Write as _;
use std::path::Path;

use figment::error::Kind;
use serde::Serialize;
use switchboard_core::Config;
use switchboard_core::canonical::Catalog;
use switchboard_core::config::ConfigError;

use crate::output::Report;

/// One problem in the file.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Dotted key the problem is about (`flows[0].from`), or empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Result of checking one file.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    /// The file checked.
    pub file: String,
    /// Whether no problem was found.
    pub passed: bool,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl Report for ConfigReport {
    fn passed(&self) -> bool {
        self.passed
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            let key = if p.key.is_empty() { "(file)" } else { &p.key };
            let _ = writeln!(out, "error: {key}: {}", p.message);
            if !p.hint.is_empty() {
                let _ = writeln!(out, "       fix: {}", p.hint);
            }
        }
        if self.passed {
            let _ = writeln!(out, "config {}: ok", self.file);
        } else {
            let _ = writeln!(
                out,
                "config {}: {} problem(s)",
                self.file,
                self.problems.len()
            );
        }
        out
    }
}

/// Checks the file at `path`.
pub fn check(path: &Path) -> ConfigReport {
    let problems = match Config::load_unchecked(path) {
        Err(errors) => errors.iter().map(explain).collect(),
        Ok(config) => {
            let mut problems: Vec<Problem> = config.problems().iter().map(explain).collect();
            problems.extend(deeper_problems(&config));
            problems
        }
    };
    ConfigReport {
        file: path.display().to_string(),
        passed: problems.is_empty(),
        problems,
    }
}

/// Checks that need more than core knows: connectors type the connection settings, and a
/// flow's target entity needs a canonical schema.
fn deeper_problems(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, raw) in &config.connections {
        let checked = switchboard_connectors::connection(name, raw, config)
            .and_then(|connection| connection.validate(name, config));
        if let Err(e) = checked {
            problems.push(explain(&e));
        }
    }
    if config.flows.is_empty() {
        return problems;
    }
    let catalog = match Catalog::load(&config.transformer.schemas_dir) {
        Ok(catalog) => catalog,
        Err(e) => {
            problems.push(Problem {
                key: "transformer.schemas_dir".to_owned(),
                message: e,
                hint: "canonical schemas are <schemas_dir>/canonical/<entity>.v<N>.avsc".to_owned(),
            });
            return problems;
        }
    };
    for (i, flow) in config.flows.iter().enumerate() {
        if catalog.get(&flow.to, None).is_none() {
            problems.push(Problem {
                key: format!("flows[{i}].to"),
                message: format!("no canonical schema for entity `{}`", flow.to),
                hint: format!(
                    "use one of: {}, or add <schemas_dir>/canonical/{}.v1.avsc",
                    catalog.entities().join(", "),
                    flow.to
                ),
            });
        }
    }
    problems
}

fn explain(error: &ConfigError) -> Problem {
    match error {
        ConfigError::Invalid { key, message } => Problem {
            key: key.clone(),
            message: message.clone(),
            hint: String::new(),
        },
        ConfigError::Load(e) => {
            let mut key = e.path.join(".");
            // figment puts the field into the path for some kinds and not for others.
            let push = |key: &mut String, field: &str| {
                if e.path.last().is_some_and(|last| last == field) {
                    return;
                }
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(field);
            };
            let hint = match &e.kind {
                Kind::UnknownField(field, _) => {
                    push(&mut key, field);
                    "check the spelling or remove it: unknown keys are refused, so a typo never falls back to a default"
                }
                Kind::MissingField(field) => {
                    push(&mut key, field);
                    "add it: this key has no default"
                }
                Kind::InvalidType(..) | Kind::InvalidValue(..) => {
                    "give a value of the expected type (quote strings that look like numbers)"
                }
                Kind::UnknownVariant(..) => "use one of the listed values",
                _ => "",
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (in {source} {})", m.name),
                    None => format!(" (in {})", m.name),
                })
                .unwrap_or_default();
            Problem {
                key,
                message: format!("{}{source}", e.kind),
                hint: hint.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(yaml: &str) -> ConfigReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        check(&path)
    }

    const BASE: &str =
        "kafka: {bootstrap_servers: '127.0.0.1:9092'}\nregistry: {url: 'http://r'}\n";

    #[test]
    fn a_good_file_passes() {
        let report = check_text(BASE);
        assert!(report.passed, "{:?}", report.problems);
    }

    #[test]
    fn every_problem_is_named_by_key() {
        let yaml = format!(
            "{BASE}transformer: {{schemas_dir: '{}/../../schemas'}}\nconnections:\n  shop: {{type: shopfy}}\nflows:\n  - {{name: f, from: nope.customers, mapping: m, to: contact}}\n  - {{name: g, from: shop.customers, mapping: m, to: ticket}}\n",
            env!("CARGO_MANIFEST_DIR")
        );
        let report = check_text(&yaml);
        let keys: Vec<&str> = report.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["flows[0].from", "connections.shop.type", "flows[1].to"],
            "{:#?}",
            report.problems
        );
        assert!(!report.passed);
        assert!(report.problems[2].hint.contains("contact"));
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_fix() {
        let report = check_text(&format!("{BASE}ingest: {{lisen: '1.2.3.4:1'}}\n"));
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].key, "ingest.lisen");
        assert!(report.problems[0].hint.contains("spelling"));
    }

    #[test]
    fn a_missing_key_is_named_with_its_section() {
        let report = check_text("kafka: {}\nregistry: {url: 'http://r'}\n");
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].key, "kafka.bootstrap_servers");
    }

    #[test]
    fn a_missing_file_is_a_problem_not_a_crash() {
        let report = check(Path::new("/nonexistent/switchboard.yaml"));
        assert!(!report.passed);
        assert_eq!(report.problems[0].key, "--config");
    }
}
