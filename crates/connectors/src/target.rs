//! Targets: where a canonical record is written, and what every system's writer shares.
//!
//! Every target does check-before-create: given the native ID the xref already knows (the
//! sink passes it), it updates that record; without one it searches the target by the
//! record's natural key (or by the Switchboard ID stored on the target record) and updates
//! what it finds; only then does it create. It returns the native ID so the sink can record
//! the link, and a redelivery after a crash between create and that write is closed by the
//! search. Errors are classified here, at the connector boundary.
//!
//! Which system can take which canonical entity, and whether a target connection has what
//! writing needs, is checked at config load so a bad flow never starts.

use serde_json::{Map, Value};
use switchboard_core::Config;
use switchboard_core::ErrorClass;
use switchboard_core::error::ClassifiedError;

use crate::Connection;

/// A canonical record as the sink reads it: every field of the Avro record as JSON.
#[derive(Debug, Clone)]
pub struct Record {
    /// Canonical ID.
    pub id: String,
    /// Every field, envelope included.
    pub fields: Map<String, Value>,
}

impl Record {
    /// A record from its decoded Avro value.
    pub fn from_json(value: Value) -> Result<Self, ClassifiedError> {
        let Value::Object(fields) = value else {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                "canonical record is not a record",
            ));
        };
        let id = fields
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ClassifiedError::new(ErrorClass::Data, "canonical record has no id"))?
            .to_owned();
        Ok(Self { id, fields })
    }

    /// A string field, if set and not empty.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Whether the source deleted the record.
    pub fn deleted(&self) -> bool {
        self.fields
            .get("deleted")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `<source connection>.<source entity>`.
    pub fn source(&self) -> String {
        format!(
            "{}.{}",
            self.str("source_connection").unwrap_or_default(),
            self.str("source_entity").unwrap_or_default()
        )
    }

    /// The record as a typed struct (e.g. `Contact`), or a `data` error.
    pub fn to<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClassifiedError> {
        serde_json::from_value(Value::Object(self.fields.clone()))
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("canonical record: {e}")))
    }
}

/// What a delivery did at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new record was created.
    Created,
    /// An existing record (known by the xref or found by search) was updated.
    Updated,
    /// The linked record was deleted (or was already gone).
    Deleted,
    /// Nothing to do; [`Delivered::note`] says why.
    Skipped,
}

impl Outcome {
    /// The outcome as `sb.deliveries` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Skipped => "skipped",
        }
    }
}

/// The result of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// What happened.
    pub outcome: Outcome,
    /// The target's ID of the record, to link in the xref.
    pub native_id: Option<String>,
    /// Why nothing was done, for the outcome on `sb.deliveries` and the log.
    pub note: Option<&'static str>,
}

impl Delivered {
    /// `outcome` for the target's record `native_id`.
    pub fn new(outcome: Outcome, native_id: impl Into<String>) -> Self {
        Self {
            outcome,
            native_id: Some(native_id.into()),
            note: None,
        }
    }

    /// Nothing done, because of `note`; the known native ID stays linked.
    pub fn skipped(known: Option<&str>, note: &'static str) -> Self {
        Self {
            outcome: Outcome::Skipped,
            native_id: known.map(str::to_owned),
            note: Some(note),
        }
    }
}

/// A `data` error: the record itself cannot be written.
pub fn data(message: impl Into<String>) -> ClassifiedError {
    ClassifiedError::new(ErrorClass::Data, message)
}

/// The `data` error of an entity `system`'s target does not write.
pub fn unsupported(system: &str, entity: &str) -> ClassifiedError {
    data(format!(
        "{system} target entity `{entity}` is not supported"
    ))
}

/// A linked native ID that `system` numbers (Pipedrive, Shopify), or a `data` error.
pub fn numeric_id(system: &str, id: &str) -> Result<u64, ClassifiedError> {
    id.parse()
        .map_err(|_| data(format!("linked {system} ID `{id}` is not a number")))
}

/// A canonical decimal string (money, quantities) as a number, for targets that take one.
pub fn money(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Target entities per system and the canonical entity each is written from.
pub const TARGETS: &[(&str, &str, &str)] = &[
    ("pipedrive", "persons", "contact"),
    ("pipedrive", "organizations", "organization"),
    ("pipedrive", "deals", "deal"),
    ("shopify", "customers", "contact"),
    ("shopify", "orders", "order"),
    ("exact", "accounts", "organization"),
    ("exact", "sales_invoices", "invoice"),
    ("telegram", "messages", "order"),
];

/// Whether `entity` of `connection` can take records of canonical entity `canonical`, and
/// the connection has what writing needs; the message says how to fix it.
pub(crate) fn check_target(
    config: &Config,
    name: &str,
    connection: &Connection,
    entity: &str,
    canonical: &str,
) -> Result<(), String> {
    if let Connection::Generic(g) = connection {
        return match &g.target {
            Some(_) => Ok(()),
            None => Err(format!(
                "connection `{name}` (http) has no `target:` block; add one to write to it"
            )),
        };
    }
    let system = connection.system();
    if !TARGETS
        .iter()
        .any(|(s, e, c)| *s == system && *e == entity && *c == canonical)
    {
        let supported: Vec<String> = TARGETS
            .iter()
            .filter(|(s, _, _)| *s == system)
            .map(|(_, e, c)| format!("`{e}` from `{c}`"))
            .collect();
        return Err(format!(
            "{system} targets take {}; not `{entity}` from `{canonical}`",
            if supported.is_empty() {
                "nothing".to_owned()
            } else {
                supported.join(", ")
            }
        ));
    }
    match connection {
        Connection::Shopify(s) if s.access_token.is_none() => Err(format!(
            "connection `{name}`: writing to Shopify needs access_token"
        )),
        Connection::Telegram(t) if t.bot_token.is_none() || t.notify_chat_id.is_none() => Err(
            format!("connection `{name}`: notifications need bot_token and notify_chat_id"),
        ),
        Connection::Exact(_) if config.secrets_key.is_none() => Err(format!(
            "connection `{name}` rotates refresh tokens, kept encrypted: set secrets_key"
        )),
        Connection::Exact(e)
            if entity == "sales_invoices"
                && (e.target.journal.is_none() || e.target.sales_item.is_none()) =>
        {
            Err(format!(
                "connection `{name}`: invoices need target.journal and target.sales_item"
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use switchboard_core::Config;
    use switchboard_core::config::ConfigError;

    use crate::connections;

    fn flow_to(connection: &str, target: &str, to: &str) -> Result<(), ConfigError> {
        let yaml = format!(
            "kafka: {{bootstrap_servers: 127.0.0.1:9092}}\nregistry: {{url: http://127.0.0.1:1}}\nconnections:\n  src:\n    type: pipedrive\n    api_token: ${{env:CARGO_PKG_NAME}}\n    poll: {{entities: [persons]}}\n  c:\n{connection}flows:\n  - {{name: f, from: src.persons, mapping: m.v1, to: {to}, sinks: [{{target: {target}}}]}}\n"
        );
        connections(&Config::from_yaml(&yaml).unwrap()).map(|_| ())
    }

    #[test]
    fn sink_targets_name_the_bad_key_and_what_is_supported() {
        let shop = "    type: shopify\n    shop_domain: a.myshopify.com\n    api_version: '2025-01'\n    webhook_secret: ${env:CARGO_PKG_NAME}\n    access_token: ${env:CARGO_PKG_NAME}\n";
        assert!(flow_to(shop, "c.customers", "contact").is_ok());
        match flow_to(shop, "c.customers", "deal").unwrap_err() {
            ConfigError::Invalid { key, message } => {
                assert_eq!(key, "flows[0].sinks[0].target");
                assert!(message.contains("`customers` from `contact`"), "{message}");
            }
            other => panic!("{other}"),
        }
        let bot = "    type: telegram\n    bot_token: ${env:CARGO_PKG_NAME}\n";
        assert!(flow_to(bot, "c.messages", "order").is_err());
        let bot =
            "    type: telegram\n    bot_token: ${env:CARGO_PKG_NAME}\n    notify_chat_id: '42'\n";
        assert!(flow_to(bot, "c.messages", "order").is_ok());
        let http = "    type: http\n    target: {base_url: 'http://127.0.0.1:1', path: /c, update_path: /c}\n";
        match flow_to(http, "c.things", "contact").unwrap_err() {
            ConfigError::Invalid { key, .. } => assert_eq!(key, "connections.c.target.update_path"),
            other => panic!("{other}"),
        }
    }
}
