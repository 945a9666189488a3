//! Identity and conflict configuration of canonical entities (the `identity` and `policies`
//! sections). The transformer applies them; they live in core so every tool that checks a
//! configuration (services, the CLI) reads them the same way.
//!
//! ```yaml
//! identity:
//!   contact: [[email]]                       # alternatives, tried in order
//!   organization: [[vat_number], [chamber_of_commerce], [name, country]]
//! policies:
//!   contact:
//!     email: {rule: last_write_wins}         # newest source timestamp wins (the default)
//!     phone: {rule: source_priority, order: [crm, shop]}
//!     last_name: {rule: review, window_secs: 600}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Config, ConfigError};

/// Natural keys per canonical entity: a list of alternatives, each a list of fields that
/// together identify a record (`[[vat_number], [name, country]]`). The first alternative
/// whose fields are all present decides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct IdentityConfig(pub BTreeMap<String, Vec<Vec<String>>>);

impl IdentityConfig {
    /// The natural keys of `entity`: the configured ones, else the built-in defaults
    /// (e-mail for contacts; VAT number, else chamber-of-commerce number, else name and
    /// country for organizations; SKU for products).
    pub fn keys(&self, entity: &str) -> Vec<Vec<String>> {
        if let Some(keys) = self.0.get(entity) {
            return keys.clone();
        }
        let fields: &[&[&str]] = match entity {
            "contact" => &[&["email"]],
            "organization" => &[
                &["vat_number"],
                &["chamber_of_commerce"],
                &["name", "country"],
            ],
            "product" => &[&["sku"]],
            _ => &[],
        };
        fields
            .iter()
            .map(|alt| alt.iter().map(|f| (*f).to_owned()).collect())
            .collect()
    }
}

/// How a field's value is chosen when several sources write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldPolicy {
    /// The value with the newest source timestamp wins, whatever order changes arrive in.
    LastWriteWins,
    /// The source earliest in `order` wins; a lower source fills the field only while no
    /// higher one has set it. Between equal sources the newest timestamp wins.
    SourcePriority {
        /// Connection names, highest priority first.
        order: Vec<String>,
    },
    /// Two sources changing the field to different values within `window_secs` of each
    /// other is a conflict: the field keeps its value and is held until a person decides
    /// (the conflict goes to `sb.review`). Outside the window the newest timestamp wins.
    Review {
        /// Width of the conflict window in seconds.
        window_secs: u64,
    },
}

/// Field policies per canonical entity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct PoliciesConfig(pub BTreeMap<String, BTreeMap<String, FieldPolicy>>);

impl PoliciesConfig {
    /// The policy of `entity.field`; last-write-wins unless configured.
    pub fn policy(&self, entity: &str, field: &str) -> &FieldPolicy {
        self.0
            .get(entity)
            .and_then(|fields| fields.get(field))
            .unwrap_or(&FieldPolicy::LastWriteWins)
    }

    /// Checks what serde cannot: priority lists name defined connections.
    pub(crate) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        for (entity, fields) in &self.0 {
            for (field, policy) in fields {
                let key = format!("policies.{entity}.{field}");
                match policy {
                    FieldPolicy::SourcePriority { order } if order.is_empty() => {
                        return Err(ConfigError::invalid(
                            format!("{key}.order"),
                            "list the connections, highest priority first",
                        ));
                    }
                    FieldPolicy::SourcePriority { order } => {
                        for (i, name) in order.iter().enumerate() {
                            if !config.connections.contains_key(name) {
                                return Err(ConfigError::invalid(
                                    format!("{key}.order[{i}]"),
                                    format!(
                                        "connection `{name}` is not defined under `connections`"
                                    ),
                                ));
                            }
                        }
                    }
                    FieldPolicy::Review { window_secs: 0 } => {
                        return Err(ConfigError::invalid(
                            format!("{key}.window_secs"),
                            "a review window must be at least one second",
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "kafka: {bootstrap_servers: '127.0.0.1:9092'}\nregistry: {url: 'http://r'}\nconnections:\n  shop: {type: shopify}\n  crm: {type: pipedrive}\n";

    #[test]
    fn policies_parse_and_default_to_last_write_wins() {
        let yaml = format!(
            "{BASE}policies:\n  contact:\n    phone: {{rule: source_priority, order: [crm, shop]}}\n    last_name: {{rule: review, window_secs: 600}}\n"
        );
        let config = Config::from_yaml(&yaml).unwrap();
        assert_eq!(
            config.policies.policy("contact", "phone"),
            &FieldPolicy::SourcePriority {
                order: vec!["crm".into(), "shop".into()]
            }
        );
        assert_eq!(
            config.policies.policy("contact", "last_name"),
            &FieldPolicy::Review { window_secs: 600 }
        );
        assert_eq!(
            config.policies.policy("contact", "email"),
            &FieldPolicy::LastWriteWins
        );
    }

    #[test]
    fn a_priority_list_naming_an_unknown_connection_names_the_key() {
        let yaml = format!(
            "{BASE}policies:\n  contact:\n    phone: {{rule: source_priority, order: [crm, books]}}\n"
        );
        let err = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert_eq!(
            err,
            "config key `policies.contact.phone.order[1]`: connection `books` is not defined under `connections`"
        );
    }

    #[test]
    fn an_unknown_rule_is_refused() {
        let yaml = format!("{BASE}policies:\n  contact:\n    phone: {{rule: newest}}\n");
        let err = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains("newest"), "{err}");
    }

    #[test]
    fn identity_defaults_and_overrides() {
        let config = Config::from_yaml(&format!(
            "{BASE}identity:\n  contact: [[email], [first_name, last_name]]\n"
        ))
        .unwrap();
        assert_eq!(config.identity.keys("contact").len(), 2);
        assert_eq!(
            config.identity.keys("organization"),
            vec![
                vec!["vat_number".to_owned()],
                vec!["chamber_of_commerce".to_owned()],
                vec!["name".to_owned(), "country".to_owned()]
            ]
        );
        assert!(config.identity.keys("deal").is_empty());
    }
}
