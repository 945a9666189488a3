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

use switchboard_core::config::OnDelete;

use crate::target::{
    self, Call, Check, Created, Entity, Record, Writer, Written, data, money, numeric_id,
    unsupported,
};

/// Shopify's target entities.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "customers",
        canonical: "contact",
        key: Some("email"),
        check: Check::OnConflict,
        on_delete: OnDelete::Delete,
        archive: true,
    },
    Entity {
        name: "orders",
        canonical: "order",
        key: None,
        check: Check::Search,
        on_delete: OnDelete::Delete,
        archive: false,
    },
];

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
}

impl Writer for ShopifyTarget {
    fn entities(&self) -> &'static [Entity] {
        ENTITIES
    }

    /// Customers by e-mail; orders by the canonical ID in `source_identifier`, among those
    /// created since a day before the order date.
    fn find<'a>(
        &'a self,
        entity: &'a str,
        key: Option<&'a str>,
        record: &'a Record,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            let found = match entity {
                "customers" => match key {
                    Some(email) => self.writer.find_customer_by_email(email).await?,
                    None => None,
                },
                "orders" => {
                    self.writer
                        .find_order_by_switchboard_id(&record.id, &orders_since(record))
                        .await?
                }
                other => return Err(unsupported("Shopify", other)),
            };
            Ok(found.map(|id| id.to_string()))
        })
    }

    fn create<'a>(&'a self, entity: &'a str, record: &'a Record) -> Call<'a, Created> {
        Box::pin(async move {
            let id = match entity {
                "customers" => {
                    let body = match &record.body {
                        Some(body) => body.clone(),
                        None => customer_from_contact(&record.to()?),
                    };
                    match self.writer.create_customer(&body).await {
                        Ok(id) => id,
                        Err(e)
                            if e.class == ErrorClass::Data
                                && e.message.contains("already been taken") =>
                        {
                            return Ok(Created::Taken(e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                "orders" => {
                    self.writer
                        .create_order(&order_from_record(record)?)
                        .await?
                }
                other => return Err(unsupported("Shopify", other)),
            };
            Ok(Created::New(id.to_string()))
        })
    }

    /// Customers get their fields; orders get a note naming the canonical ID.
    fn update<'a>(&'a self, entity: &'a str, id: &'a str, record: &'a Record) -> Call<'a, Written> {
        Box::pin(async move {
            let id = numeric_id("Shopify", id)?;
            match entity {
                "customers" => {
                    let body = match &record.body {
                        Some(body) => body.clone(),
                        None => customer_from_contact(&record.to()?),
                    };
                    self.writer.update_customer(id, &body).await?;
                }
                "orders" => {
                    let note = json!({ "note": format!("switchboard {}", record.id) });
                    self.writer.update_order(id, &note).await?;
                }
                other => return Err(unsupported("Shopify", other)),
            }
            Ok(Written::Done)
        })
    }

    /// A customer is tagged `deleted-at-source` (Shopify refuses to delete a customer with
    /// orders).
    fn archive<'a>(
        &'a self,
        entity: &'a str,
        id: &'a str,
        _record: &'a Record,
    ) -> Call<'a, Written> {
        Box::pin(async move {
            if entity != "customers" {
                return Err(unsupported("Shopify archive", entity));
            }
            let id = numeric_id("Shopify", id)?;
            let body = json!({ "tags": "switchboard, deleted-at-source" });
            self.writer.update_customer(id, &body).await?;
            Ok(Written::Done)
        })
    }

    fn delete<'a>(&'a self, entity: &'a str, id: &'a str) -> Call<'a, Written> {
        Box::pin(async move {
            if target::entity(ENTITIES, entity).is_none() {
                return Err(unsupported("Shopify", entity));
            }
            let id = numeric_id("Shopify", id)?;
            self.writer.delete(entity, id).await?;
            Ok(Written::Done)
        })
    }
}

/// A day before the order's date, as Shopify's `created_at_min` takes it.
fn orders_since(record: &Record) -> String {
    let since_ms = record
        .fields
        .get("ordered_at")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        - 86_400_000;
    time::OffsetDateTime::from_unix_timestamp(since_ms.max(0) / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
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
