//! Shopify as a target: customers from contacts, orders from orders.
//!
//! Customers: the xref's ID is updated; without one a create is tried, and Shopify's own
//! uniqueness of e-mail (422 "has already been taken") is the check: the customer with that
//! e-mail is found (`customers/search.json`, else the list) and updated. This costs one call
//! per new customer instead of a search and a create, which doubles goodput under the
//! bucket, and cannot duplicate, because Shopify refuses a second customer with the e-mail.
//! Orders carry the canonical ID in `source_identifier`; without an xref the orders created
//! since a day before the order date are searched for it before a create.

use crate::shopify::ShopifyConnection;
use crate::shopify::write::ShopifyWriter;
use serde_json::{Map, Value, json};
use switchboard_core::ErrorClass;
use switchboard_core::canonical::Contact;
use switchboard_core::error::ClassifiedError;

use crate::target::{Delivered, Outcome, Record, data, money, numeric_id, unsupported};

/// The Shopify writer of one connection.
pub struct ShopifyTarget {
    writer: ShopifyWriter,
}

impl ShopifyTarget {
    /// The writer for `connection`.
    pub fn new(connection: &ShopifyConnection) -> Result<Self, ClassifiedError> {
        Ok(Self {
            writer: ShopifyWriter::new(connection)?,
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
            "customers" => self.customer(record, known).await?,
            "orders" => self.order(record, known).await?,
            other => {
                return Err(unsupported("Shopify", other));
            }
        };
        Ok(Delivered::new(outcome, id.to_string()))
    }

    /// Deletes customer or order `id`.
    pub async fn delete(&self, entity: &str, id: &str) -> Result<(), ClassifiedError> {
        if !["customers", "orders"].contains(&entity) {
            return Err(unsupported("Shopify", entity));
        }
        let id = numeric_id("Shopify", id)?;
        self.writer.delete(entity, id).await
    }

    async fn customer(
        &self,
        record: &Record,
        known: Option<u64>,
    ) -> Result<(Outcome, u64), ClassifiedError> {
        let contact: Contact = record.to()?;
        let body = customer_from_contact(&contact);
        if let Some(id) = known {
            self.writer.update_customer(id, &body).await?;
            return Ok((Outcome::Updated, id));
        }
        let email = contact.email.as_deref().filter(|e| !e.is_empty());
        match self.writer.create_customer(&body).await {
            Ok(id) => Ok((Outcome::Created, id)),
            Err(e) if e.class == ErrorClass::Data && e.message.contains("already been taken") => {
                let found = match email {
                    Some(email) => self.writer.find_customer_by_email(email).await?,
                    None => None,
                };
                let id = found.ok_or(e)?;
                self.writer.update_customer(id, &body).await?;
                Ok((Outcome::Updated, id))
            }
            Err(e) => Err(e),
        }
    }

    async fn order(
        &self,
        record: &Record,
        known: Option<u64>,
    ) -> Result<(Outcome, u64), ClassifiedError> {
        let update = json!({ "note": format!("switchboard {}", record.id) });
        if let Some(id) = known {
            self.writer.update_order(id, &update).await?;
            return Ok((Outcome::Updated, id));
        }
        let since_ms = record
            .fields
            .get("ordered_at")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            - 86_400_000;
        let since = time::OffsetDateTime::from_unix_timestamp(since_ms.max(0) / 1000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
        if let Some(id) = self
            .writer
            .find_order_by_switchboard_id(&record.id, &since)
            .await?
        {
            self.writer.update_order(id, &update).await?;
            return Ok((Outcome::Updated, id));
        }
        let id = self
            .writer
            .create_order(&order_from_record(record)?)
            .await?;
        Ok((Outcome::Created, id))
    }
}

/// Mapping contact → Shopify customer: e-mail, first and last name, phone; tagged
/// `switchboard` so a shop owner sees where it came from.
pub fn customer_from_contact(contact: &Contact) -> Value {
    let mut body = Map::new();
    for (key, value) in [
        ("email", &contact.email),
        ("first_name", &contact.first_name),
        ("last_name", &contact.last_name),
        ("phone", &contact.phone),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            body.insert(key.to_owned(), Value::from(v));
        }
    }
    body.insert("tags".to_owned(), Value::from("switchboard"));
    Value::Object(body)
}

/// Mapping order → Shopify order: the lines (title, SKU, whole quantity, unit price), the
/// currency, the canonical ID in `source_identifier`, and the order number in the note.
pub fn order_from_record(record: &Record) -> Result<Value, ClassifiedError> {
    let lines = record
        .fields
        .get("lines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut items = Vec::new();
    for line in &lines {
        let quantity = money(line.get("quantity"))
            .filter(|q| q.fract() == 0.0 && *q >= 1.0)
            .ok_or_else(|| data("order line quantity must be a whole number ≥ 1 for Shopify"))?;
        let mut item = json!({
            "title": line.get("title").and_then(Value::as_str).unwrap_or("item"),
            "quantity": quantity as u64,
            "price": line.get("unit_price").and_then(Value::as_str).unwrap_or("0"),
        });
        if let Some(sku) = line.get("sku").and_then(Value::as_str) {
            item["sku"] = Value::from(sku);
        }
        items.push(item);
    }
    Ok(json!({
        "line_items": items,
        "currency": record.str("currency").unwrap_or("EUR"),
        "source_identifier": record.id,
        "note": format!("order {}", record.str("number").unwrap_or_default()),
    }))
}
