//! `console.rules`: the conditions the console itself watches for and alerts on, next to
//! the alerts the services raise (a paused connection, an open circuit).
//!
//! Every threshold has a default that suits a small deployment; `0` switches a rule off.
//! End-of-support dates are plain `YYYY-MM-DD` strings, checked at start-up, so a typo is
//! named by key instead of silently never warning.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, ConfigError};

/// `console.rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRules {
    /// Alert `no_sync` when a connection had no successful sync for this many minutes
    /// (0: off).
    #[serde(default = "default_no_sync_minutes")]
    pub no_sync_minutes: u64,
    /// Alert `dlq_growth` when a connection's DLQ is deeper than it was this many seconds
    /// ago (0: off). Resolved once the depth has not grown for as long.
    #[serde(default = "default_dlq_window_secs")]
    pub dlq_window_secs: u64,
    /// Alert `lag` when a connection's oldest unprocessed record is older than this many
    /// seconds (0: off).
    #[serde(default = "default_lag_seconds")]
    pub lag_seconds: u64,
    /// Show a connection `stalled`, and alert `stalled`, when records have waited this many
    /// seconds and its consumer groups committed nothing for as long (0: off).
    #[serde(default = "default_stalled_secs")]
    pub stalled_secs: u64,
    /// Alert `api_version_eol` this many days before a pinned API version's end of support.
    #[serde(default = "default_warn_days")]
    pub api_version_warn_days: u32,
    /// End of support per API version, by connection type (`shopify`) or connection name
    /// (which wins): `{shopify: {"2025-01": "2026-01-01"}}`. A connection's pinned version
    /// is its `api_version` setting.
    #[serde(default)]
    pub api_versions: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for ConsoleRules {
    fn default() -> Self {
        Self {
            no_sync_minutes: default_no_sync_minutes(),
            dlq_window_secs: default_dlq_window_secs(),
            lag_seconds: default_lag_seconds(),
            stalled_secs: default_stalled_secs(),
            api_version_warn_days: default_warn_days(),
            api_versions: BTreeMap::new(),
        }
    }
}

fn default_no_sync_minutes() -> u64 {
    60
}

fn default_dlq_window_secs() -> u64 {
    300
}

fn default_lag_seconds() -> u64 {
    600
}

fn default_stalled_secs() -> u64 {
    60
}

fn default_warn_days() -> u32 {
    30
}

impl ConsoleRules {
    /// The end of support of `version` for the connection `name` of type `kind`, if known.
    /// A date that does not parse is `None` here; [`ConsoleRules::problems`] reports it.
    pub fn end_of_support(&self, name: &str, kind: &str, version: &str) -> Option<time::Date> {
        [name, kind]
            .iter()
            .find_map(|k| self.api_versions.get(*k)?.get(version))
            .and_then(|d| parse_date(d))
    }

    /// Problems with these rules in `config`, named by key.
    pub(super) fn problems(&self, config: &Config) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.api_version_warn_days > 3650 {
            problems.push(ConfigError::invalid(
                "console.rules.api_version_warn_days",
                "give a number of days up to 3650",
            ));
        }
        for (owner, versions) in &self.api_versions {
            let known = config.connections.contains_key(owner)
                || config.connections.values().any(|c| &c.kind == owner);
            if !known {
                problems.push(ConfigError::invalid(
                    format!("console.rules.api_versions.{owner}"),
                    format!("`{owner}` is neither a connection nor the type of one"),
                ));
            }
            for (version, date) in versions {
                if parse_date(date).is_none() {
                    problems.push(ConfigError::invalid(
                        format!("console.rules.api_versions.{owner}.{version}"),
                        format!("`{date}` is not a date; write YYYY-MM-DD, e.g. 2026-01-01"),
                    ));
                }
            }
        }
        problems
    }
}

/// `YYYY-MM-DD` as a date.
pub fn parse_date(text: &str) -> Option<time::Date> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "kafka: {bootstrap_servers: '127.0.0.1:9092'}\nregistry: {url: 'http://r'}\nconnections:\n  shop: {type: shopify, api_version: '2025-01'}\n";

    #[test]
    fn rules_have_defaults_and_bad_dates_are_named_by_key() {
        let config = Config::from_yaml(BASE).unwrap();
        assert_eq!(config.console.rules.no_sync_minutes, 60);
        assert_eq!(config.console.rules.lag_seconds, 600);
        let yaml = format!(
            "{BASE}console:\n  rules:\n    api_versions:\n      shopify: {{'2025-01': '2026-13-01'}}\n      nope: {{'1': '2026-01-01'}}\n"
        );
        use figment::providers::Format;
        let config: Config = figment::Figment::new()
            .merge(figment::providers::Yaml::string(&yaml))
            .extract()
            .unwrap();
        let problems: Vec<String> = config.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("console.rules.api_versions.nope"));
        assert!(problems[1].contains("console.rules.api_versions.shopify.2025-01"));
    }

    #[test]
    fn a_connection_name_wins_over_its_type() {
        let yaml = format!(
            "{BASE}console:\n  rules:\n    api_versions:\n      shopify: {{'2025-01': '2026-01-01'}}\n      shop: {{'2025-01': '2026-02-01'}}\n"
        );
        let rules = Config::from_yaml(&yaml).unwrap().console.rules;
        assert_eq!(
            rules.end_of_support("shop", "shopify", "2025-01"),
            parse_date("2026-02-01")
        );
        assert_eq!(
            rules.end_of_support("other", "shopify", "2025-01"),
            parse_date("2026-01-01")
        );
        assert_eq!(rules.end_of_support("other", "shopify", "2024-10"), None);
    }

    #[test]
    fn unknown_rule_keys_are_refused() {
        let err =
            Config::from_yaml(&format!("{BASE}console: {{rules: {{lag_secs: 5}}}}\n")).unwrap_err();
        assert!(err.to_string().contains("lag_secs"), "{err}");
    }
}
