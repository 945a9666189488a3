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
use switchboard_core::config::OnDelete;
use switchboard_core::error::ClassifiedError;

use crate::System;

/// A canonical record as the sink reads it: every field of the Avro record as JSON.
#[derive(Debug, Clone)]
pub struct Record {
    /// Canonical ID.
    pub id: String,
    /// Every field, envelope included.
    pub fields: Map<String, Value>,
    /// The target payload a flow's mapping made of the record (`flows[].sinks[].mapping`):
    /// a writer sends it instead of its built-in payload.
    pub body: Option<Value>,
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
        Ok(Self {
            id,
            fields,
            body: None,
        })
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

/// Which search, if any, a writer makes before creating a record the xref does not link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Search the target ([`Writer::find`]); update what it finds, else create.
    Search,
    /// Create at once: the target refuses a second record with the natural key
    /// ([`Created::Taken`]), and only then is it found and updated. One call per new record
    /// instead of two, and no duplicate, where the target enforces the key (Shopify's
    /// customer e-mail).
    OnConflict,
    /// The target cannot be searched: the xref's link is the only check.
    XrefOnly,
}

/// A target entity of a system: the canonical entity it is written from, the canonical
/// field it is matched on (claimed by the sink so two records with one key never both
/// create, and the key [`Writer::find`] searches by), and its check before create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// The target's entity, as flows name it (`persons`).
    pub name: &'static str,
    /// The canonical entity it is written from (`contact`).
    pub canonical: &'static str,
    /// The natural key: a field of the canonical record.
    pub key: Option<&'static str>,
    /// How a record without a link is checked before it is created.
    pub check: Check,
    /// What a deletion at the source does here unless a flow says otherwise.
    pub on_delete: OnDelete,
    /// Whether [`Writer::archive`] can keep a deleted record here, marked inactive.
    pub archive: bool,
}

/// `entity` in a system's table of target entities.
pub fn entity<'a>(table: &'a [Entity], entity: &str) -> Option<&'a Entity> {
    table.iter().find(|e| e.name == entity)
}

/// A created record, or the target's refusal because its natural key is taken.
#[derive(Debug)]
pub enum Created {
    /// The new record's native ID.
    New(String),
    /// The target holds a record with this natural key already (for [`Check::OnConflict`]).
    Taken(ClassifiedError),
}

/// What an update or delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Done at the target.
    Done,
    /// Nothing to do at this target, because of the note (a sent message is not edited).
    Skipped(&'static str),
}

pub use crate::Call;

/// What a system supplies to be a target. The sink owns the rest of a delivery (the xref,
/// the natural-key claim, the order of search, create, update and link, and deletes), so
/// every writer only says how its system does each step. Every error is classified.
pub trait Writer: Send + Sync {
    /// Its system's table of target entities (the defaults below read it).
    fn entities(&self) -> &'static [Entity] {
        &[]
    }

    /// The natural key of `entity` (see [`Entity`]); `None` for an entity it does not write.
    fn natural_key(&self, entity: &str) -> Option<&str> {
        self::entity(self.entities(), entity)?.key
    }

    /// How `entity` is checked before a create.
    fn check(&self, entity: &str) -> Check {
        self::entity(self.entities(), entity).map_or(Check::Search, |e| e.check)
    }

    /// The native ID of the record that `record` is, found by `key` (the record's value of
    /// the natural key, if it has one) or by the Switchboard ID stored on the target.
    fn find<'a>(
        &'a self,
        entity: &'a str,
        key: Option<&'a str>,
        record: &'a Record,
    ) -> Call<'a, Option<String>>;

    /// Creates `record` as an `entity`.
    fn create<'a>(&'a self, entity: &'a str, record: &'a Record) -> Call<'a, Created>;

    /// Writes `record` over the target's record `id`.
    fn update<'a>(&'a self, entity: &'a str, id: &'a str, record: &'a Record) -> Call<'a, Written>;

    /// Deletes the target's record `id`; a not-found error means it is gone already.
    fn delete<'a>(&'a self, entity: &'a str, id: &'a str) -> Call<'a, Written>;

    /// What a deletion at the source does to `entity` unless a flow says otherwise.
    fn on_delete(&self, entity: &str) -> OnDelete {
        self::entity(self.entities(), entity).map_or(OnDelete::Delete, |e| e.on_delete)
    }

    /// Keeps the target's record `id`, marked inactive, for a record the source deleted
    /// (where the entity's table says it can).
    fn archive<'a>(
        &'a self,
        entity: &'a str,
        _id: &'a str,
        _record: &'a Record,
    ) -> Call<'a, Written> {
        let refused = data(format!(
            "`{entity}` cannot be archived here; use on_delete: delete or ignore"
        ));
        Box::pin(std::future::ready(Err(refused)))
    }

    /// Fetches fresh credentials now (the access token may just have expired); an `auth`
    /// error means the credentials themselves are refused. Static credentials have nothing
    /// to refresh.
    fn refresh_credentials(&self) -> Call<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
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

/// Whether `entity` of `connection` can take records of canonical entity `canonical`, and
/// the connection has what writing needs; the message says how to fix it.
pub(crate) fn check_target(
    config: &Config,
    name: &str,
    connection: &dyn System,
    entity: &str,
    canonical: &str,
) -> Result<(), String> {
    if let Some(table) = connection.target_entities()
        && !table
            .iter()
            .any(|e| e.name == entity && e.canonical == canonical)
    {
        let supported: Vec<String> = table
            .iter()
            .map(|e| format!("`{}` from `{}`", e.name, e.canonical))
            .collect();
        return Err(format!(
            "{} targets take {}; not `{entity}` from `{canonical}`",
            connection.system(),
            if supported.is_empty() {
                "nothing".to_owned()
            } else {
                supported.join(", ")
            }
        ));
    }
    connection.target_needs(name, config, entity)
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

    #[test]
    fn archive_is_refused_where_the_target_cannot_archive() {
        let shop = "    type: shopify\n    shop_domain: a.myshopify.com\n    api_version: '2025-01'\n    webhook_secret: ${env:CARGO_PKG_NAME}\n    access_token: ${env:CARGO_PKG_NAME}\n";
        assert!(flow_to(shop, "c.customers, on_delete: archive", "contact").is_ok());
        match flow_to(shop, "c.orders, on_delete: archive", "order").unwrap_err() {
            ConfigError::Invalid { key, message } => {
                assert_eq!(key, "flows[0].sinks[0].on_delete");
                assert!(message.contains("cannot be archived"), "{message}");
            }
            other => panic!("{other}"),
        }
        assert!(flow_to(shop, "c.orders, on_delete: ignore", "order").is_ok());
    }
}
