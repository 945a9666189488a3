//! The target writer of each system a connection can be, chosen by the connection's type.
//! The writers and what they share (`Record`, `Delivered`) live with their system in
//! `switchboard_connectors`.

use switchboard_connectors::Connection;
use switchboard_connectors::exact::target as exact;
use switchboard_connectors::generic::http_target as http;
use switchboard_connectors::pipedrive::target as pipedrive;
use switchboard_connectors::shopify::target as shopify;
pub(crate) use switchboard_connectors::target::{Delivered, Outcome, Record};
use switchboard_connectors::telegram::target as telegram;
use switchboard_core::error::ClassifiedError;

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
