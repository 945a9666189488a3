//! Secrets that can only be given by reference and never print.
//!
//! A secret in configuration is written `${env:NAME}` or `${file:/path}`; an inline value is
//! rejected, so a secret never lands in a config file or in git. `Debug` and `Display` print
//! `***`, so a secret cannot leak through a log line or an error message by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A resolved secret value. Read it with [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret reference could not be resolved. Never contains the secret itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The value was not of the form `${env:NAME}` or `${file:PATH}`.
    #[error("secrets must be references like ${{env:NAME}} or ${{file:/path}}, not inline values")]
    Inline,
    /// The named environment variable is not set (or not unicode).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The named file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// Path of the file.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// The reference resolved to an empty value.
    #[error("the secret referenced by {0} is empty")]
    Empty(String),
}

impl Secret {
    /// Resolves a reference `${env:NAME}` or `${file:PATH}` to its value. A file's trailing
    /// newline is dropped, as secret files written by `echo` or Kubernetes carry one.
    pub fn resolve(reference: &str) -> Result<Self, SecretError> {
        let inner = reference
            .trim()
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .ok_or(SecretError::Inline)?;
        let value = if let Some(name) = inner.strip_prefix("env:") {
            std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_owned()))?
        } else if let Some(path) = inner.strip_prefix("file:") {
            std::fs::read_to_string(path)
                .map_err(|e| SecretError::File {
                    path: path.to_owned(),
                    reason: e.kind().to_string(),
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        } else {
            return Err(SecretError::Inline);
        };
        if value.is_empty() {
            return Err(SecretError::Empty(reference.to_owned()));
        }
        Ok(Self(value))
    }

    /// Wraps a value that did not come from configuration (tests, token responses).
    pub fn from_value(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call it only where the value is sent or used for a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let reference = String::deserialize(deserializer)?;
        Secret::resolve(&reference).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_values_are_rejected() {
        assert_eq!(Secret::resolve("hunter2"), Err(SecretError::Inline));
        assert_eq!(Secret::resolve("${vault:x}"), Err(SecretError::Inline));
    }

    #[test]
    fn file_reference_resolves_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secret = Secret::resolve(&format!("${{file:{}}}", path.display())).unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let err = Secret::resolve("${env:SB_TEST_SURELY_UNSET_VAR}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable SB_TEST_SURELY_UNSET_VAR is not set"
        );
    }
}
