//! Targets: where a canonical record is written, one module per system.
//!
//! Every target does check-before-create: given the native ID the xref already knows (the
//! sink passes it), it updates that record; without one it searches the target by the
//! record's natural key (or by the Switchboard ID stored on the target record) and updates
//! what it finds; only then does it create. It returns the native ID so the sink can record
//! the link, and a redelivery after a crash between create and that write is closed by the
//! search. Errors are classified here, at the connector boundary.

mod exact;
mod http;
mod pipedrive;
mod shopify;
mod telegram;

#[cfg(test)]
mod mapping_tests;

use serde_json::{Map, Value};
use switchboard_connectors::Connection;
use switchboard_core::ErrorClass;
use switchboard_core::error::ClassifiedError;

/// A canonical record as the sink reads it: every field of the Avro record as JSON.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Canonical ID.
    pub id: String,
    /// Every field, envelope included.
    pub fields: Map<String, Value>,
}

impl Record {
    /// A record from its decoded Avro value.
    pub(crate) fn from_json(value: Value) -> Result<Self, ClassifiedError> {
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
    pub(crate) fn str(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Whether the source deleted the record.
    pub(crate) fn deleted(&self) -> bool {
        self.fields
            .get("deleted")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `<source connection>.<source entity>`.
    pub(crate) fn source(&self) -> String {
        format!(
            "{}.{}",
            self.str("source_connection").unwrap_or_default(),
            self.str("source_entity").unwrap_or_default()
        )
    }

    /// The record as a typed struct (e.g. `Contact`), or a `data` error.
    pub(crate) fn to<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClassifiedError> {
        serde_json::from_value(Value::Object(self.fields.clone()))
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("canonical record: {e}")))
    }
}

/// What a delivery did at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct Delivered {
    /// What happened.
    pub outcome: Outcome,
    /// The target's ID of the record, to link in the xref.
    pub native_id: Option<String>,
    /// Why nothing was done, for the outcome on `sb.deliveries` and the log.
    pub note: Option<&'static str>,
}

impl Delivered {
    /// `outcome` for the target's record `native_id`.
    pub(crate) fn new(outcome: Outcome, native_id: impl Into<String>) -> Self {
        Self {
            outcome,
            native_id: Some(native_id.into()),
            note: None,
        }
    }

    /// Nothing done, because of `note`; the known native ID stays linked.
    pub(crate) fn skipped(known: Option<&str>, note: &'static str) -> Self {
        Self {
            outcome: Outcome::Skipped,
            native_id: known.map(str::to_owned),
            note: Some(note),
        }
    }
}

/// A `data` error: the record itself cannot be written.
pub(crate) fn data(message: impl Into<String>) -> ClassifiedError {
    ClassifiedError::new(ErrorClass::Data, message)
}

/// The `data` error of an entity `system`'s target does not write.
pub(crate) fn unsupported(system: &str, entity: &str) -> ClassifiedError {
    data(format!(
        "{system} target entity `{entity}` is not supported"
    ))
}

/// A linked native ID that `system` numbers (Pipedrive, Shopify), or a `data` error.
pub(crate) fn numeric_id(system: &str, id: &str) -> Result<u64, ClassifiedError> {
    id.parse()
        .map_err(|_| data(format!("linked {system} ID `{id}` is not a number")))
}

/// A canonical decimal string (money, quantities) as a number, for targets that take one.
pub(crate) fn money(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A target connection's writer.
pub(crate) enum Target {
    Pipedrive(pipedrive::PipedriveTarget),
    Shopify(shopify::ShopifyTarget),
    Exact(Box<exact::ExactTarget>),
    Telegram(telegram::TelegramTarget),
    Http(http::HttpTarget),
}

impl Target {
    /// The writer for `connection`, or an error saying it cannot be a target (yet).
    pub(crate) fn new(name: &str, connection: &Connection) -> anyhow::Result<Self> {
        match connection {
            Connection::Pipedrive(p) => {
                Ok(Self::Pipedrive(pipedrive::PipedriveTarget::new(p.clone())?))
            }
            Connection::Shopify(s) => Ok(Self::Shopify(shopify::ShopifyTarget::new(s)?)),
            Connection::Exact(e) => Ok(Self::Exact(Box::new(exact::ExactTarget::new(name, e)?))),
            Connection::Telegram(t) => Ok(Self::Telegram(telegram::TelegramTarget::new(t)?)),
            Connection::Generic(g) => match &g.target {
                Some(settings) => Ok(Self::Http(http::HttpTarget::new((**settings).clone())?)),
                None => anyhow::bail!("connection `{name}` (http) has no `target:` block"),
            },
        }
    }

    /// Fetches fresh credentials now (the access token may just have expired); an `auth`
    /// error means the credentials themselves are refused. Targets with static credentials
    /// have nothing to refresh.
    pub(crate) async fn refresh_credentials(&self) -> Result<(), ClassifiedError> {
        match self {
            Self::Exact(t) => t.refresh_credentials().await,
            Self::Pipedrive(_) | Self::Shopify(_) | Self::Telegram(_) | Self::Http(_) => Ok(()),
        }
    }

    /// The natural key this target matches `record` on before creating it as an `entity`,
    /// when it matches on one besides the canonical ID (see `claims.rs`).
    pub(crate) fn claim(&self, entity: &str, record: &Record) -> Option<String> {
        let field = match (self, entity) {
            (Self::Pipedrive(_), "persons") | (Self::Shopify(_), "customers") => "email",
            (Self::Pipedrive(_), "organizations") | (Self::Exact(_), "accounts") => "name",
            (Self::Pipedrive(_), "deals") => "title",
            (Self::Exact(_), "sales_invoices") => "number",
            (Self::Http(t), _) => t.match_field(),
            _ => return None,
        };
        let value = record.str(field)?.trim().to_lowercase();
        Some(format!("{entity}/{value}"))
    }

    /// Writes `record` as a `entity` of this target (e.g. `persons`). `known` is the
    /// native ID the xref links to the record, if any. A record the source deleted deletes
    /// the linked one ([`Target::delete`]).
    pub(crate) async fn deliver(
        &self,
        entity: &str,
        record: &Record,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        if record.deleted() {
            return self.delete(entity, known).await;
        }
        match self {
            Self::Pipedrive(t) => t.deliver(entity, record, known).await,
            Self::Shopify(t) => t.deliver(entity, record, known).await,
            Self::Exact(t) => t.deliver(entity, record, known).await,
            Self::Telegram(t) => t.deliver(entity, record, known).await,
            Self::Http(t) => t.deliver(record, known).await,
        }
    }

    /// A record the source deleted: the target's record linked to it is deleted, and one
    /// already gone (deleted there too, or by an earlier delivery of this deletion) counts
    /// as deleted. The link stays, so a redelivery deletes nothing else. Without a link
    /// nothing is deleted: a record found only by its natural key was not written for
    /// this one, and may be someone else's.
    async fn delete(
        &self,
        entity: &str,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        let Some(id) = known else {
            return Ok(Delivered::skipped(
                None,
                "deleted at the source; no record here is linked to it",
            ));
        };
        let done = match self {
            Self::Pipedrive(t) => t.delete(entity, id).await,
            Self::Shopify(t) => t.delete(entity, id).await,
            Self::Exact(t) => t.delete(entity, id).await,
            Self::Http(t) => t.delete(id).await,
            Self::Telegram(_) => {
                return Ok(Delivered::skipped(
                    known,
                    "deleted at the source; a sent message is not taken back",
                ));
            }
        };
        match done {
            Ok(()) => Ok(Delivered::new(Outcome::Deleted, id)),
            Err(e) if e.is_not_found() => Ok(Delivered::new(Outcome::Deleted, id)),
            Err(e) => Err(e),
        }
    }
}
