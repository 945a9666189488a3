//! Exact Online as a target: accounts from organizations, sales invoices from invoices.
//!
//! OAuth: the access token comes from core's `TokenManager`, whose rotated refresh tokens
//! are stored encrypted in `<prefix>.tokens` and acknowledged before use, so a rotation
//! survives a restart. The chain is keyed by connection and a digest of the configured
//! refresh token (`exact::token_key`): new credentials in the configuration start a new
//! chain instead of going on with the stored, possibly revoked one.
//! A 401 drops the access token it was refused (if still current); `refresh_credentials`
//! then refreshes, or takes the token a concurrent lane already got.
//!
//! Check-before-create keys. Accounts: the xref's GUID; else the account whose `Code` is the
//! Switchboard code of the canonical ID (a stable 15-digit number written on create); else
//! an account with the same name and the same VAT number or chamber-of-commerce number.
//! Invoices: the xref's GUID; else the invoice whose `YourRef` is the canonical number.

use crate::exact::ExactConnection;
use crate::exact::api::ExactClient;
use crate::exact::write::odata_string;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_core::ErrorClass;
use switchboard_core::error::ClassifiedError;
use tokio::sync::OnceCell;

use switchboard_core::config::OnDelete;

use crate::target::{
    Call, Check, Created, Entity, Record, Writer, Written, data, money, unsupported,
};

/// Exact's target entities.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "accounts",
        canonical: "organization",
        key: Some("name"),
        check: Check::Search,
        on_delete: OnDelete::Archive,
        archive: true,
    },
    Entity {
        name: "sales_invoices",
        canonical: "invoice",
        key: Some("number"),
        check: Check::Search,
        on_delete: OnDelete::Delete,
        archive: false,
    },
];

const ACCOUNTS: &str = "crm/Accounts";
const INVOICES: &str = "salesinvoice/SalesInvoices";

/// The Exact Online writer of one connection.
pub struct ExactTarget {
    name: String,
    connection: ExactConnection,
    client: OnceCell<ExactClient>,
}

impl ExactTarget {
    /// The writer of connection `name`; its token chain is opened on first use.
    pub fn new(name: &str, connection: &ExactConnection) -> anyhow::Result<Self> {
        if connection.token_store.is_none() {
            anyhow::bail!("connection `{name}` (exact) needs secrets_key to keep its tokens");
        }
        Ok(Self {
            name: name.to_owned(),
            connection: connection.clone(),
            client: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&ExactClient, ClassifiedError> {
        self.client
            .get_or_try_init(|| super::open_client(&self.name, &self.connection))
            .await
    }

    /// The entity set `entity` is written to.
    fn set(entity: &str) -> Result<&'static str, ClassifiedError> {
        match entity {
            "accounts" => Ok(ACCOUNTS),
            "sales_invoices" => Ok(INVOICES),
            other => Err(unsupported("Exact", other)),
        }
    }
}

impl Writer for ExactTarget {
    fn entities(&self) -> &'static [Entity] {
        ENTITIES
    }

    /// Accounts by their Switchboard code, else by name with the same VAT or
    /// chamber-of-commerce number; invoices by `YourRef`, the canonical number.
    fn find<'a>(
        &'a self,
        entity: &'a str,
        key: Option<&'a str>,
        record: &'a Record,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            match entity {
                "accounts" => find_account(client, record).await,
                "sales_invoices" => {
                    let number = key.ok_or_else(|| {
                        data("invoice has no number, the natural key it is matched on")
                    })?;
                    let filter = format!("YourRef eq {}", odata_string(number));
                    Ok(client
                        .find_one(INVOICES, &filter, "InvoiceID")
                        .await?
                        .and_then(|row| {
                            row.get("InvoiceID")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        }))
                }
                other => Err(unsupported("Exact", other)),
            }
        })
    }

    /// An account with its Switchboard code; an invoice ordered by its organization's
    /// account, which must be delivered first.
    fn create<'a>(&'a self, entity: &'a str, record: &'a Record) -> Call<'a, Created> {
        Box::pin(async move {
            let client = self.client().await?;
            let id = match entity {
                "accounts" => {
                    let mut body = match &record.body {
                        Some(body) => body.clone(),
                        None => account_from_record(record)?,
                    };
                    body["Code"] = Value::from(switchboard_code(&record.id));
                    client.create(ACCOUNTS, "ID", &body).await?
                }
                "sales_invoices" => {
                    let organization = record.str("organization_id").ok_or_else(|| {
                        data("invoice has no organization_id: Exact needs the account")
                    })?;
                    let account = client
                        .find_one(ACCOUNTS, &code_filter(organization), "ID")
                        .await?
                        .and_then(|row| row.get("ID").and_then(Value::as_str).map(str::to_owned))
                        .ok_or_else(|| {
                            // Its organization may simply not be delivered yet: try again later.
                            ClassifiedError::new(
                                ErrorClass::Transient,
                                "the invoice's organization is not an Exact account yet",
                            )
                        })?;
                    let body = invoice_from_record(record, &account, &self.connection)?;
                    client.create(INVOICES, "InvoiceID", &body).await?
                }
                other => return Err(unsupported("Exact", other)),
            };
            Ok(Created::New(id))
        })
    }

    /// Exact refuses changed lines on an invoice: only its header follows.
    fn update<'a>(&'a self, entity: &'a str, id: &'a str, record: &'a Record) -> Call<'a, Written> {
        Box::pin(async move {
            let body = match entity {
                "accounts" => match &record.body {
                    Some(body) => body.clone(),
                    None => account_from_record(record)?,
                },
                "sales_invoices" => json!({ "Description": description(record) }),
                other => return Err(unsupported("Exact", other)),
            };
            self.client()
                .await?
                .update(Self::set(entity)?, id, &body)
                .await?;
            Ok(Written::Done)
        })
    }

    /// Exact refuses to delete an account that is in use or an invoice that is no longer a
    /// draft: a `data` error, with its answer.
    fn delete<'a>(&'a self, entity: &'a str, id: &'a str) -> Call<'a, Written> {
        Box::pin(async move {
            let set = Self::set(entity)?;
            self.client().await?.delete(set, id).await?;
            Ok(Written::Done)
        })
    }

    /// An account gets an end date of now, which makes it inactive in Exact (an account
    /// in use cannot be deleted).
    fn archive<'a>(
        &'a self,
        entity: &'a str,
        id: &'a str,
        _record: &'a Record,
    ) -> Call<'a, Written> {
        Box::pin(async move {
            if entity != "accounts" {
                return Err(unsupported("Exact archive", entity));
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            let body = json!({ "EndDate": format!("/Date({now})/") });
            self.client().await?.update(ACCOUNTS, id, &body).await?;
            Ok(Written::Done)
        })
    }

    fn refresh_credentials(&self) -> Call<'_, ()> {
        // The refused call already dropped its token (unless another lane had replaced it
        // meanwhile): this refreshes, or takes the token that lane got.
        Box::pin(async move { self.client().await?.refresh_token().await })
    }
}

async fn find_account(
    client: &ExactClient,
    record: &Record,
) -> Result<Option<String>, ClassifiedError> {
    let id_of = |row: Value| row.get("ID").and_then(Value::as_str).map(str::to_owned);
    if let Some(row) = client
        .find_one(ACCOUNTS, &code_filter(&record.id), "ID")
        .await?
    {
        return Ok(id_of(row));
    }
    let (vat, coc) = (record.str("vat_number"), record.str("chamber_of_commerce"));
    let (Some(name), true) = (record.str("name"), vat.is_some() || coc.is_some()) else {
        return Ok(None);
    };
    let rows = client
        .find_all(
            ACCOUNTS,
            &format!("Name eq {}", odata_string(name)),
            "ID,VATNumber,ChamberOfCommerce",
        )
        .await?;
    let same = |row: &Value, key: &str, want: Option<&str>| {
        want.is_some_and(|w| row.get(key).and_then(Value::as_str).map(str::trim) == Some(w.trim()))
    };
    Ok(rows
        .into_iter()
        .find(|r| same(r, "VATNumber", vat) || same(r, "ChamberOfCommerce", coc))
        .and_then(id_of))
}

/// The account code Switchboard gives the organization with canonical ID `id`: 15 digits
/// from a digest of the ID, stable across replays (Exact codes are numeric, ≤ 18 digits).
pub fn switchboard_code(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let mut n = 0u64;
    for b in &digest[..8] {
        n = (n << 8) | u64::from(*b);
    }
    format!("{}", 100_000_000_000_000 + n % 900_000_000_000_000)
}

fn code_filter(canonical_id: &str) -> String {
    // Codes are stored padded to 18 characters; trim() compares the digits (§3.3).
    format!("trim(Code) eq '{}'", switchboard_code(canonical_id))
}

/// Mapping organization → Exact account: name, e-mail, phone, website, VAT and
/// chamber-of-commerce numbers, city and country (`Code` is added on create only).
pub fn account_from_record(record: &Record) -> Result<Value, ClassifiedError> {
    let name = record
        .str("name")
        .ok_or_else(|| data("organization has no name: an Exact account needs one"))?;
    let mut body = json!({ "Name": name });
    for (field, property) in [
        ("email", "Email"),
        ("phone", "Phone"),
        ("website", "Website"),
        ("vat_number", "VATNumber"),
        ("chamber_of_commerce", "ChamberOfCommerce"),
        ("city", "City"),
        ("country", "Country"),
    ] {
        if let Some(value) = record.str(field) {
            body[property] = Value::from(value);
        }
    }
    Ok(body)
}

fn description(record: &Record) -> String {
    format!("Invoice {}", record.str("number").unwrap_or_default())
}

/// Mapping invoice → Exact sales invoice: `OrderedBy` the organization's account, the
/// configured journal, `YourRef` the canonical number, the currency, and one line per
/// canonical line on the configured sales item (description = title and SKU, quantity and
/// unit price as numbers).
pub fn invoice_from_record(
    record: &Record,
    account: &str,
    connection: &ExactConnection,
) -> Result<Value, ClassifiedError> {
    let item = connection
        .target
        .sales_item
        .as_deref()
        .ok_or_else(|| data("connection has no target.sales_item"))?;
    let lines: Vec<Value> = record
        .fields
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|line| {
            let title = line.get("title").and_then(Value::as_str).unwrap_or("line");
            let description = match line.get("sku").and_then(Value::as_str) {
                Some(sku) => format!("{title} ({sku})"),
                None => title.to_owned(),
            };
            json!({
                "Item": item,
                "Description": description,
                "Quantity": money(line.get("quantity")).unwrap_or(1.0),
                "NetPrice": money(line.get("unit_price")).unwrap_or(0.0),
            })
        })
        .collect();
    if lines.is_empty() {
        return Err(data("invoice has no lines: Exact needs at least one"));
    }
    Ok(json!({
        "OrderedBy": account,
        "Journal": connection.target.journal.as_deref().unwrap_or("70"),
        "YourRef": record.str("number").unwrap_or_default(),
        "Currency": record.str("currency").unwrap_or("EUR"),
        "Description": description(record),
        "SalesInvoiceLines": lines,
    }))
}
