//! Versioned mappings: jq programs (run by jaq) in `mappings/<system>/<name>.v<N>.jq`: the
//! transformer's from a source's payload to a canonical record, the sink's from a canonical
//! record to a target's payload.
//!
//! A mapping is compiled once at start; a flow whose mapping does not compile refuses to
//! start and says why. Running a mapping is deterministic, so a replay of a raw topic
//! produces the same canonical records.

use std::path::{Path, PathBuf};

use crate::ErrorClass;
use crate::error::ClassifiedError;
use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, Vars, unwrap_valr};
use jaq_json::Val;

type Filter = jaq_core::compile::Filter<Native<JustLut<Val>>>;

/// A compiled mapping.
pub struct Mapping {
    name: String,
    filter: Filter,
}

/// Why a mapping cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file is missing or unreadable.
    #[error("mapping `{name}`: cannot read {path}: {reason}")]
    Read {
        /// Mapping name.
        name: String,
        /// File tried.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The program does not parse or compile.
    #[error("mapping `{name}` ({path}) does not compile: {reason}")]
    Compile {
        /// Mapping name.
        name: String,
        /// File.
        path: PathBuf,
        /// The parser's or compiler's words.
        reason: String,
    },
    /// The mapping has no fixtures to be checked with.
    #[error("mapping `{name}` has no fixtures: add source payloads as JSON files under {dir}")]
    NoFixtures {
        /// Mapping name.
        name: String,
        /// Where fixtures are expected.
        dir: PathBuf,
    },
    /// A fixture's output does not fit the target schema.
    #[error("mapping `{name}` fails fixture {fixture}: {reason}")]
    Fixture {
        /// Mapping name.
        name: String,
        /// The fixture file.
        fixture: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Mapping {
    /// Loads and compiles `<dir>/<name>.jq`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, MappingError> {
        let path = dir.join(format!("{name}.jq"));
        let code = std::fs::read_to_string(&path).map_err(|e| MappingError::Read {
            name: name.to_owned(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let compile_error = |reason: String| MappingError::Compile {
            name: name.to_owned(),
            path: path.clone(),
            reason,
        };
        let arena = Arena::default();
        let loader = Loader::new(
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs()),
        );
        let modules = loader
            .load(
                &arena,
                File {
                    code: code.as_str(),
                    path: (),
                },
            )
            .map_err(|errs| {
                compile_error(format!(
                    "{:?}",
                    errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>()
                ))
            })?;
        let filter = Compiler::default()
            .with_funs(
                jaq_core::funs()
                    .chain(jaq_std::funs())
                    .chain(jaq_json::funs()),
            )
            .compile(modules)
            .map_err(|errs| {
                compile_error(format!(
                    "{:?}",
                    errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>()
                ))
            })?;
        Ok(Self {
            name: name.to_owned(),
            filter,
        })
    }

    /// Where the fixtures of mapping `name` live: every version of
    /// `<source>/<mapping>.v<N>` shares `<source>/<mapping>.fixtures/`.
    pub fn fixtures_dir(dir: &Path, name: &str) -> PathBuf {
        let base = match name.rsplit_once(".v") {
            Some((base, version)) if version.chars().all(|c| c.is_ascii_digit()) => base,
            _ => name,
        };
        dir.join(format!("{base}.fixtures"))
    }

    /// Applies the mapping to every fixture payload and checks each output with `check`
    /// (against the target schema, or the shape a target takes): a mapping that would
    /// produce what is refused never runs.
    pub fn validate(
        &self,
        dir: &Path,
        check: impl Fn(serde_json::Value) -> Result<(), String>,
    ) -> Result<(), MappingError> {
        let fixtures_dir = Self::fixtures_dir(dir, &self.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if files.is_empty() {
            return Err(MappingError::NoFixtures {
                name: self.name.clone(),
                dir: fixtures_dir,
            });
        }
        for fixture in files {
            let fail = |reason: String| MappingError::Fixture {
                name: self.name.clone(),
                fixture: fixture.clone(),
                reason,
            };
            let payload = std::fs::read_to_string(&fixture).map_err(|e| fail(e.to_string()))?;
            let output = self.apply(&payload).map_err(|e| fail(e.message))?;
            check(output).map_err(fail)?;
        }
        Ok(())
    }

    /// The mapping's name, e.g. `shopify/customer-to-contact.v1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the mapping on a JSON document; it must yield exactly one value.
    pub fn apply(&self, input: &str) -> Result<serde_json::Value, ClassifiedError> {
        let data_error = |m: String| {
            ClassifiedError::new(ErrorClass::Data, format!("mapping {}: {m}", self.name))
        };
        let input = jaq_json::read::parse_single(input.as_bytes())
            .map_err(|e| data_error(format!("payload is not JSON: {e:?}")))?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = self.filter.id.run((ctx, input)).map(unwrap_valr);
        let first = match outputs.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(data_error(format!("{e}"))),
            None => return Err(data_error("produced no output".into())),
        };
        if outputs.next().is_some() {
            return Err(data_error("produced more than one output".into()));
        }
        json(&first).map_err(|e| data_error(format!("output is not JSON: {e}")))
    }
}

/// jaq's value as serde_json's, directly: through its JSON text, this round trip was a
/// tenth of the transformer's time per record. Numbers jaq keeps as text (decimals, big
/// integers) are read as JSON would read them, so the result is the same either way.
fn json(value: &Val) -> Result<serde_json::Value, String> {
    use serde_json::Value as Json;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(match value {
        Val::Null => Json::Null,
        Val::Bool(b) => Json::Bool(*b),
        Val::Num(jaq_json::Num::Int(i)) => Json::from(*i as i64),
        Val::Num(jaq_json::Num::Float(f)) if f.is_nan() => Json::Null,
        Val::Num(jaq_json::Num::Float(f)) => Json::from(f.clamp(f64::MIN, f64::MAX)),
        Val::Num(other) => serde_json::from_str(&other.to_string()).map_err(|e| e.to_string())?,
        Val::TStr(bytes) | Val::BStr(bytes) => Json::String(text(bytes)),
        Val::Arr(items) => Json::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        Val::Obj(entries) => {
            let mut object = serde_json::Map::with_capacity(entries.len());
            for (key, value) in entries.iter() {
                let (Val::TStr(key) | Val::BStr(key)) = key else {
                    return Err(format!("object key {key} is not a string"));
                };
                object.insert(text(key), json(value)?);
            }
            Json::Object(object)
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_as_their_json_text_reads() {
        let input = r#"{"int": 706405506930370084, "neg": -3, "float": 1.5, "dec": 19.990,
            "big": 123456789012345678901234567890, "text": "é\u0000\"", "none": null,
            "yes": true, "list": [1, "a", {"b": [null]}], "nested": {"x": {"y": 2}}}"#;
        let value = jaq_json::read::parse_single(input.as_bytes()).unwrap();
        let through_text: serde_json::Value = serde_json::from_str(&value.to_string()).unwrap();
        assert_eq!(json(&value).unwrap(), through_text);
    }
}
