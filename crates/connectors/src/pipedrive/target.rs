//! Pipedrive as a target: persons from contacts, organizations from organizations, deals
//! from deals.
//!
//! Check-before-create keys: persons by e-mail (exact search, compared again), organizations
//! by name (exact search, compared case-insensitively), deals by title (exact search). The
//! xref's ID always wins over a search.

use crate::pipedrive::PipedriveConnection;
use crate::pipedrive::api::PipedriveClient;
use crate::pipedrive::model::PersonInput;
use serde_json::{Value, json};
use switchboard_core::canonical::Contact;
use switchboard_core::error::ClassifiedError;

use switchboard_core::config::OnDelete;

use crate::target::{
    self, Call, Check, Created, Entity, Record, Writer, Written, data, money, numeric_id,
    unsupported,
};

/// Pipedrive's target entities.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "persons",
        canonical: "contact",
        key: Some("email"),
        check: Check::Search,
        on_delete: OnDelete::Delete,
        archive: false,
    },
    Entity {
        name: "organizations",
        canonical: "organization",
        key: Some("name"),
        check: Check::Search,
        on_delete: OnDelete::Delete,
        archive: false,
    },
    Entity {
        name: "deals",
        canonical: "deal",
        key: Some("title"),
        check: Check::Search,
        on_delete: OnDelete::Delete,
        archive: false,
    },
];

/// The Pipedrive writer of one connection.
pub struct PipedriveTarget {
    client: PipedriveClient,
}

impl PipedriveTarget {
    /// The writer for `connection`.
    pub fn new(connection: PipedriveConnection) -> Result<Self, ClassifiedError> {
        Ok(Self {
            client: PipedriveClient::new(connection)?,
        })
    }

    /// The body of `record` as an organization or deal: the flow's mapping's, else the
    /// built-in one.
    fn body(entity: &str, record: &Record) -> Result<Value, ClassifiedError> {
        if let Some(body) = &record.body {
            return Ok(body.clone());
        }
        match entity {
            "organizations" => organization_from_record(record),
            "deals" => deal_from_record(record),
            other => Err(unsupported("Pipedrive", other)),
        }
    }

    /// The item among the `entity` search results whose `field` equals `key`.
    async fn search(
        &self,
        entity: &str,
        field: &str,
        key: &str,
    ) -> Result<Option<String>, ClassifiedError> {
        Ok(self
            .client
            .search(entity, field, key)
            .await?
            .iter()
            .find(|item| {
                item.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case(key.trim()))
            })
            .and_then(|item| item.get("id").and_then(Value::as_u64))
            .map(|id| id.to_string()))
    }
}

impl Writer for PipedriveTarget {
    fn entities(&self) -> &'static [Entity] {
        ENTITIES
    }

    fn find<'a>(
        &'a self,
        entity: &'a str,
        key: Option<&'a str>,
        _record: &'a Record,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            let (field, what) = match entity {
                "persons" => ("email", "contact has no e-mail"),
                "organizations" => ("name", "organization has no name"),
                "deals" => ("title", "deal has no title"),
                other => return Err(unsupported("Pipedrive", other)),
            };
            let key =
                key.ok_or_else(|| data(format!("{what}, the natural key it is matched on")))?;
            match entity {
                "persons" => Ok(self
                    .client
                    .find_person_by_email(key)
                    .await?
                    .map(|id| id.to_string())),
                _ => self.search(entity, field, key).await,
            }
        })
    }

    fn create<'a>(&'a self, entity: &'a str, record: &'a Record) -> Call<'a, Created> {
        Box::pin(async move {
            let id = match entity {
                "persons" => match &record.body {
                    Some(body) => self.client.create_person(body).await?,
                    None => {
                        let person = PersonInput::from_contact(&record.to::<Contact>()?);
                        self.client.create_person(&person).await?
                    }
                },
                _ => {
                    self.client
                        .create(entity, &Self::body(entity, record)?)
                        .await?
                }
            };
            Ok(Created::New(id.to_string()))
        })
    }

    fn update<'a>(&'a self, entity: &'a str, id: &'a str, record: &'a Record) -> Call<'a, Written> {
        Box::pin(async move {
            let id = numeric_id("Pipedrive", id)?;
            match entity {
                "persons" => match &record.body {
                    Some(body) => self.client.update_person(id, body).await?,
                    None => {
                        let person = PersonInput::from_contact(&record.to::<Contact>()?);
                        self.client.update_person(id, &person).await?
                    }
                },
                _ => {
                    self.client
                        .update(entity, id, &Self::body(entity, record)?)
                        .await?
                }
            }
            Ok(Written::Done)
        })
    }

    /// A soft delete in Pipedrive.
    fn delete<'a>(&'a self, entity: &'a str, id: &'a str) -> Call<'a, Written> {
        Box::pin(async move {
            if target::entity(ENTITIES, entity).is_none() {
                return Err(unsupported("Pipedrive", entity));
            }
            let id = numeric_id("Pipedrive", id)?;
            self.client.delete(entity, id).await?;
            Ok(Written::Done)
        })
    }
}

/// Mapping organization → Pipedrive organization: the name, and the address as one line
/// (`address_line, postal_code city, country`) with its locality and country.
pub fn organization_from_record(record: &Record) -> Result<Value, ClassifiedError> {
    let name = record
        .str("name")
        .ok_or_else(|| data("organization has no name, the natural key it is matched on"))?;
    let mut body = json!({ "name": name });
    let line = [
        record.str("address_line").map(str::to_owned),
        match (record.str("postal_code"), record.str("city")) {
            (Some(p), Some(c)) => Some(format!("{p} {c}")),
            (p, c) => p.or(c).map(str::to_owned),
        },
        record.str("country").map(str::to_owned),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    if !line.is_empty() {
        let mut address = json!({ "value": line });
        if let Some(city) = record.str("city") {
            address["locality"] = Value::from(city);
        }
        if let Some(country) = record.str("country") {
            address["country"] = Value::from(country);
        }
        body["address"] = address;
    }
    Ok(body)
}

/// Mapping deal → Pipedrive deal: title, value (a number in Pipedrive) and currency, and the
/// status when it is one of Pipedrive's (`open`, `won`, `lost`). Organization and person
/// links are not written: their Pipedrive IDs live under other entities of the xref.
pub fn deal_from_record(record: &Record) -> Result<Value, ClassifiedError> {
    let title = record
        .str("title")
        .ok_or_else(|| data("deal has no title, the natural key it is matched on"))?;
    let mut body = json!({ "title": title });
    if let Some(value) = money(record.fields.get("value")) {
        body["value"] = json!(value);
    }
    if let Some(currency) = record.str("currency") {
        body["currency"] = Value::from(currency);
    }
    if let Some(status) = record
        .str("status")
        .filter(|s| ["open", "won", "lost"].contains(s))
    {
        body["status"] = Value::from(status);
    }
    Ok(body)
}
