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

use crate::target::{Delivered, Outcome, Record, data, money, numeric_id, unsupported};

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

    /// Writes `record` as an `entity`, updating `known` if linked.
    pub async fn deliver(
        &self,
        entity: &str,
        record: &Record,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        let known = known.and_then(|id| id.parse::<u64>().ok());
        let (outcome, id) = match entity {
            "persons" => self.person(record, known).await?,
            "organizations" => {
                let body = organization_from_record(record)?;
                let name = body["name"].as_str().unwrap_or_default().to_owned();
                self.upsert("organizations", "name", "name", &name, &body, known)
                    .await?
            }
            "deals" => {
                let body = deal_from_record(record)?;
                let title = body["title"].as_str().unwrap_or_default().to_owned();
                self.upsert("deals", "title", "title", &title, &body, known)
                    .await?
            }
            other => {
                return Err(unsupported("Pipedrive", other));
            }
        };
        Ok(Delivered::new(outcome, id.to_string()))
    }

    /// Deletes `entity` `id` (a soft delete in Pipedrive).
    pub async fn delete(&self, entity: &str, id: &str) -> Result<(), ClassifiedError> {
        if !["persons", "organizations", "deals"].contains(&entity) {
            return Err(unsupported("Pipedrive", entity));
        }
        let id = numeric_id("Pipedrive", id)?;
        self.client.delete(entity, id).await
    }

    /// A contact becomes a person: the one the xref knows, else the one with the same
    /// e-mail, else a new one. A redelivered record updates the person it created.
    async fn person(
        &self,
        record: &Record,
        known: Option<u64>,
    ) -> Result<(Outcome, u64), ClassifiedError> {
        let contact: Contact = record.to()?;
        let person = PersonInput::from_contact(&contact);
        let existing = match known {
            Some(id) => Some(id),
            None => {
                let email = contact
                    .email
                    .as_deref()
                    .filter(|e| !e.is_empty())
                    .ok_or_else(|| {
                        data("contact has no e-mail, the natural key persons are matched on")
                    })?;
                self.client.find_person_by_email(email).await?
            }
        };
        Ok(match existing {
            Some(id) => {
                self.client.update_person(id, &person).await?;
                (Outcome::Updated, id)
            }
            None => (Outcome::Created, self.client.create_person(&person).await?),
        })
    }

    /// Update the known record, else the one whose `field` equals `key` (search `fields`),
    /// else create.
    async fn upsert(
        &self,
        entity: &str,
        fields: &str,
        field: &str,
        key: &str,
        body: &Value,
        known: Option<u64>,
    ) -> Result<(Outcome, u64), ClassifiedError> {
        let existing = match known {
            Some(id) => Some(id),
            None => self
                .client
                .search(entity, fields, key)
                .await?
                .iter()
                .find(|item| {
                    item.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case(key.trim()))
                })
                .and_then(|item| item.get("id").and_then(Value::as_u64)),
        };
        Ok(match existing {
            Some(id) => {
                self.client.update(entity, id, body).await?;
                (Outcome::Updated, id)
            }
            None => (Outcome::Created, self.client.create(entity, body).await?),
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
