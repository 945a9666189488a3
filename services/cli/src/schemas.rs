//! `switchboard schemas check | register`: the `.avsc` files of a directory, each mapped to
//! the subjects it is written under (TopicNameStrategy, `<topic>-value`), put to the
//! registry's compatibility rule.
//!
//! Guarantee: every file is parsed before the registry is asked, every (file, subject)
//! pair gets a row in the report, and an incompatible or refused pair fails the command
//! with the registry's reason. Versions of one entity are handled oldest first, so
//! `register` builds a subject's history in order and re-running it changes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use switchboard_core::Config;
use switchboard_core::topics::Topics;

use crate::output::Report;
use crate::registry::{Lookup, Registry, Verdict};
use crate::{DEFAULT_REGISTRY, SchemasArgs};

/// What to ask the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Test compatibility only.
    Check,
    /// Register.
    Register,
}

/// Which subjects a file belongs to, decided by where it lies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `canonical/<entity>.v<N>.avsc`: subject `<prefix>.canonical.<entity>-value`.
    Canonical {
        /// Entity name.
        entity: String,
        /// Version number.
        version: u32,
    },
    /// Under `raw/`: every `<prefix>.raw.*-value` subject the registry has.
    Raw,
    /// Anywhere else, or misnamed: the reason no subject is known.
    Unmapped(String),
}

/// The role of the file at `relative` (a path below the schema directory).
pub fn role_of(relative: &Path) -> Role {
    let parent = relative
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match parent {
        Some("canonical") => {
            let parsed = name
                .strip_suffix(".avsc")
                .and_then(|stem| stem.rsplit_once(".v"))
                .and_then(|(entity, v)| Some((entity, v.parse::<u32>().ok()?)));
            match parsed {
                Some((entity, version)) if !entity.is_empty() && !entity.contains('.') => {
                    Role::Canonical {
                        entity: entity.to_owned(),
                        version,
                    }
                }
                _ => Role::Unmapped("name canonical schemas `<entity>.v<N>.avsc`".to_owned()),
            }
        }
        Some("raw") => Role::Raw,
        _ => {
            Role::Unmapped("not under canonical/ or raw/, so no subject is known for it".to_owned())
        }
    }
}

/// What happened to one (file, subject) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The subject already holds this exact schema.
    AlreadyRegistered,
    /// The subject does not exist yet, so anything is compatible.
    NewSubject,
    /// Compatible with the subject's latest version.
    Compatible,
    /// Registered as a new version.
    Registered,
    /// The registry refused it (incompatible).
    Incompatible,
    /// The file is not a valid Avro schema.
    Invalid,
    /// No subject to check against (see the detail).
    Skipped,
}

impl Status {
    fn passed(self) -> bool {
        !matches!(self, Self::Incompatible | Self::Invalid)
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The file, relative to the schema directory.
    pub file: String,
    /// The subject, if one applies.
    pub subject: Option<String>,
    /// Outcome.
    pub status: Status,
    /// Explanation: version and ID, or why it was skipped.
    pub detail: String,
    /// The registry's reasons for a refusal, or the parser's error.
    pub reasons: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SchemasReport {
    /// `check` or `register`.
    pub command: &'static str,
    /// Registry asked.
    pub registry: String,
    /// Topic prefix of the subjects.
    pub prefix: String,
    /// Whether every row passed.
    pub passed: bool,
    /// One row per (file, subject).
    pub results: Vec<Row>,
}

impl Report for SchemasReport {
    fn passed(&self) -> bool {
        self.passed
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for row in &self.results {
            let mark = if row.status.passed() { "ok  " } else { "FAIL" };
            let target = row.subject.as_deref().unwrap_or("-");
            let _ = writeln!(out, "{mark} {} -> {target}: {}", row.file, row.detail);
            for reason in &row.reasons {
                let _ = writeln!(out, "       {reason}");
            }
        }
        let failed = self.results.iter().filter(|r| !r.status.passed()).count();
        let _ = writeln!(
            out,
            "schemas {}: {} checked against {}, {failed} failed",
            self.command,
            self.results.len(),
            self.registry
        );
        out
    }
}

/// A schema file found in the directory.
struct SchemaFile {
    relative: String,
    role: Role,
    text: String,
}

/// Runs `check` or `register` for `args`. `Err` only when it cannot run at all.
pub async fn run(args: &SchemasArgs, mode: Mode) -> anyhow::Result<SchemasReport> {
    let (registry_url, prefix) = target(args)?;
    let registry = Registry::new(&registry_url)?;
    let files = discover(&args.dir)?;
    let topics = Topics::new(prefix.clone());
    let raw_subjects: Vec<String> = if files.iter().any(|f| f.role == Role::Raw) {
        // Raw topics are `<prefix>.raw.<connection>.<entity>` (core's `Topics::raw`).
        let raw_start = format!("{prefix}.raw.");
        let mut subjects: Vec<String> = registry
            .subjects()
            .await?
            .into_iter()
            .filter(|s| s.starts_with(&raw_start) && s.ends_with("-value"))
            .collect();
        subjects.sort();
        subjects
    } else {
        Vec::new()
    };

    let mut results = Vec::new();
    for file in &files {
        let row = |subject: Option<String>, status, detail: String, reasons| Row {
            file: file.relative.clone(),
            subject,
            status,
            detail,
            reasons,
        };
        if let Err(e) = apache_avro::Schema::parse_str(&file.text) {
            results.push(row(
                None,
                Status::Invalid,
                "not a valid Avro schema".into(),
                vec![e.to_string()],
            ));
            continue;
        }
        let subjects = match &file.role {
            Role::Canonical { entity, .. } => vec![format!("{}-value", topics.canonical(entity))],
            Role::Raw if raw_subjects.is_empty() => {
                let detail = format!("no `{prefix}.raw.*-value` subject in the registry yet");
                results.push(row(None, Status::Skipped, detail, Vec::new()));
                continue;
            }
            Role::Raw => raw_subjects.clone(),
            Role::Unmapped(why) => {
                results.push(row(None, Status::Skipped, why.clone(), Vec::new()));
                continue;
            }
        };
        for subject in subjects {
            let (status, detail, reasons) = one(&registry, mode, &subject, &file.text).await?;
            results.push(row(Some(subject), status, detail, reasons));
        }
    }
    Ok(SchemasReport {
        command: match mode {
            Mode::Check => "check",
            Mode::Register => "register",
        },
        registry: registry_url,
        prefix,
        passed: results.iter().all(|r| r.status.passed()),
        results,
    })
}

async fn one(
    registry: &Registry,
    mode: Mode,
    subject: &str,
    schema: &str,
) -> anyhow::Result<(Status, String, Vec<String>)> {
    let lookup = registry.lookup(subject, schema).await?;
    if let Lookup::Registered { id, version } = lookup {
        let detail = format!("already registered (version {version}, id {id})");
        return Ok((Status::AlreadyRegistered, detail, Vec::new()));
    }
    Ok(match mode {
        Mode::Check if lookup == Lookup::NoSubject => (
            Status::NewSubject,
            "new subject, nothing to be compatible with".into(),
            Vec::new(),
        ),
        Mode::Check => match registry.compatibility(subject, schema).await? {
            Verdict::Accepted => (
                Status::Compatible,
                "compatible with the latest version".into(),
                Vec::new(),
            ),
            Verdict::Refused(reasons) => (
                Status::Incompatible,
                "incompatible with the latest version".into(),
                reasons,
            ),
        },
        Mode::Register => match registry.register(subject, schema).await? {
            Verdict::Accepted => match registry.lookup(subject, schema).await? {
                Lookup::Registered { id, version } => (
                    Status::Registered,
                    format!("registered as version {version}, id {id}"),
                    Vec::new(),
                ),
                _ => (Status::Registered, "registered".into(), Vec::new()),
            },
            Verdict::Refused(reasons) => (
                Status::Incompatible,
                "refused by the registry".into(),
                reasons,
            ),
        },
    })
}

/// Registry URL and topic prefix: flags, else `--config`, else the local defaults.
fn target(args: &SchemasArgs) -> anyhow::Result<(String, String)> {
    let config = match &args.config {
        Some(path) => {
            Some(Config::load(path).with_context(|| format!("--config {}", path.display()))?)
        }
        None => None,
    };
    let registry = args
        .registry
        .clone()
        .or_else(|| config.as_ref().map(|c| c.registry.url.clone()))
        .unwrap_or_else(|| DEFAULT_REGISTRY.to_owned());
    let prefix = args
        .prefix
        .clone()
        .or_else(|| config.as_ref().map(|c| c.kafka.topic_prefix.clone()))
        .unwrap_or_else(|| "sb".to_owned());
    Ok((registry, prefix))
}

/// Every `.avsc` below `dir`, canonical ones by entity and version, then the rest by path.
fn discover(dir: &Path) -> anyhow::Result<Vec<SchemaFile>> {
    let mut paths = Vec::new();
    walk(dir, &mut paths).with_context(|| format!("read schema directory {}", dir.display()))?;
    let mut files = Vec::new();
    for path in paths {
        let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        files.push(SchemaFile {
            relative: relative.display().to_string(),
            role: role_of(&relative),
            text,
        });
    }
    files.sort_by(|a, b| (&a.role, &a.relative).cmp(&(&b.role, &b.relative)));
    Ok(files)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_to_roles_by_place_and_name() {
        assert_eq!(
            role_of(Path::new("canonical/contact.v2.avsc")),
            Role::Canonical {
                entity: "contact".into(),
                version: 2
            }
        );
        assert_eq!(role_of(Path::new("raw/change-event.v1.avsc")), Role::Raw);
        assert!(matches!(
            role_of(Path::new("canonical/contact.avsc")),
            Role::Unmapped(_)
        ));
        assert!(matches!(
            role_of(Path::new("other/x.v1.avsc")),
            Role::Unmapped(_)
        ));
    }

    #[test]
    fn versions_sort_oldest_first_and_numerically() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("canonical")).unwrap();
        for v in [10, 2, 1] {
            std::fs::write(dir.path().join(format!("canonical/a.v{v}.avsc")), "{}").unwrap();
        }
        let files = discover(dir.path()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            names,
            [
                "canonical/a.v1.avsc",
                "canonical/a.v2.avsc",
                "canonical/a.v10.avsc"
            ]
        );
    }
}
