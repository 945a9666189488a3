//! Creating and changing Accounts and SalesInvoices: request-body reading and the
//! validation rules, shared by the REST routes and the in-process/`/_sandbox/` mutations.
//!
//! Contract facts followed (saas-contracts.md §3.3):
//! - `Code` is a numeric string padded to 18 characters with leading spaces; a new
//!   account without a code gets the highest code used plus one (Exact "Tips and Tricks").
//! - SalesInvoice `Status` is 10 draft, 20 open or 50 processed; `Type` is 8020, 8021,
//!   8023 or 8024 (picqer `SalesInvoice.php`).
//! - An unknown property in a body is a 400, as WCF Data Services answers ("The property
//!   'X' does not exist on type 'Y'"). Read-only properties (keys, `Created`, `Modified`,
//!   `Division`, totals) are ignored, not stored.
//!
//! Stricter-than-known choices (the reference is silent; wording is the emulator's own):
//! an account needs a `Name`, and its `Code` must be numeric and unique in the division;
//! an invoice needs `OrderedBy` (an existing account), `Journal` and at least one line
//! with an `Item` GUID. A PUT may not change the lines. Totals are the sum of the lines'
//! `AmountFC` (or `Quantity` × `NetPrice`), VAT 0.

use serde_json::Value;
use uuid::Uuid;

use super::entities::{ACCOUNTS, EntityDef, SALES_INVOICES, pad_code};
use super::errors::ApiError;
use super::query::Row;
use super::store::{Entity, Store};
use super::values::Val;

/// The entity set definition of an entity kind.
pub(crate) fn def_of(entity: Entity) -> &'static EntityDef {
    match entity {
        Entity::Account => &ACCOUNTS,
        Entity::SalesInvoice => &SALES_INVOICES,
    }
}

/// Reads a JSON body into writable properties (and invoice lines, when present).
fn read_body(def: &EntityDef, body: &Value) -> Result<(Row, Option<Vec<Value>>), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let mut row = Row::new();
    let mut lines = None;
    for (name, value) in object {
        if def.has_deferred(name) {
            let Some(list) = value.as_array() else {
                return Err(ApiError::bad_request(format!(
                    "{name}: expected an array of lines."
                )));
            };
            lines = Some(list.clone());
        } else if let Some(field) = def.writable.iter().find(|w| **w == name) {
            let kind = def.kind_of(field).unwrap_or(super::values::Kind::Str);
            let val = Val::from_json(kind, value).map_err(|e| {
                ApiError::bad_request(format!("Error processing request stream. {name}: {e}."))
            })?;
            row.insert(field, val);
        } else if def.kind_of(name).is_none() && name != "__metadata" {
            return Err(ApiError::bad_request(format!(
                "The property '{name}' does not exist on type '{}'. Make sure to only use property names that are defined by the type.",
                def.type_name
            )));
        }
    }
    Ok((row, lines))
}

fn is_blank(row: &Row, field: &str) -> bool {
    match row.get(field) {
        None | Some(Val::Null) => true,
        Some(Val::Str(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

fn mandatory(field: &str) -> ApiError {
    ApiError::bad_request(format!("Mandatory: {field}"))
}

/// What a create needs besides the body.
pub(crate) struct CreateOptions<'a> {
    /// Local wall-clock ms for `Created`/`Modified`.
    pub now_ms: i64,
    /// Extra mandatory properties (a schema switch).
    pub required: &'a [String],
    /// The key to use; a new one when `None`.
    pub id: Option<Uuid>,
}

/// Creates a record from an API body. Returns the new key.
pub(crate) fn create(
    store: &mut Store,
    division: i32,
    entity: Entity,
    body: &Value,
    options: &CreateOptions<'_>,
) -> Result<Uuid, ApiError> {
    let (mut row, lines) = read_body(def_of(entity), body)?;
    if let Some(missing) = options.required.iter().find(|f| is_blank(&row, f)) {
        return Err(mandatory(missing));
    }
    let now_ms = options.now_ms;
    let id = options.id.unwrap_or_else(Uuid::new_v4);
    let lines = match entity {
        Entity::Account => {
            account_rules(store, division, None, &mut row)?;
            row.entry("IsSupplier").or_insert(Val::Bool(false));
            row.insert("ID", Val::Guid(id));
            Vec::new()
        }
        Entity::SalesInvoice => {
            let lines = lines.unwrap_or_default();
            invoice_rules(store, division, &mut row, Some(&lines))?;
            let number = store.divisions.get_mut(&division).map_or(1, |d| {
                d.next_invoice_number += 1;
                d.next_invoice_number - 1
            });
            row.insert("InvoiceID", Val::Guid(id));
            row.insert("InvoiceNumber", Val::Int(number));
            lines
        }
    };
    row.insert("Division", Val::Int(i64::from(division)));
    row.insert("Created", Val::Date(now_ms));
    row.insert("Modified", Val::Date(now_ms));
    store.insert(division, entity, id, row, lines);
    Ok(id)
}

/// Applies an API body to an existing record (PUT merges the given properties).
pub(crate) fn update(
    store: &mut Store,
    division: i32,
    entity: Entity,
    id: Uuid,
    body: &Value,
    now_ms: i64,
) -> Result<(), ApiError> {
    if store.get(division, entity, id).is_none() {
        return Err(ApiError::not_found());
    }
    let (mut patch, lines) = read_body(def_of(entity), body)?;
    match entity {
        Entity::Account => account_rules(store, division, Some(id), &mut patch)?,
        Entity::SalesInvoice => {
            if lines.is_some() {
                return Err(ApiError::bad_request(
                    "SalesInvoiceLines cannot be changed through the invoice; use SalesInvoiceLines.",
                ));
            }
            invoice_rules(store, division, &mut patch, None)?;
        }
    }
    patch.insert("Modified", Val::Date(now_ms));
    store.update(division, entity, id, patch);
    Ok(())
}

/// Account rules: name, code format and uniqueness, automatic code on create.
fn account_rules(
    store: &Store,
    division: i32,
    existing: Option<Uuid>,
    row: &mut Row,
) -> Result<(), ApiError> {
    let creating = existing.is_none();
    if (creating || row.contains_key("Name")) && is_blank(row, "Name") {
        return Err(mandatory("Name"));
    }
    let accounts = store.divisions.get(&division).map(|d| &d.accounts);
    let codes = || {
        accounts
            .into_iter()
            .flat_map(|a| a.iter())
            .filter(move |(id, _)| Some(**id) != existing)
            .filter_map(|(_, r)| r.fields.get("Code").and_then(Val::as_str).map(str::trim))
    };
    match row.get("Code").cloned() {
        Some(Val::Str(code)) => {
            let padded = pad_code(&code).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Code: '{code}' is not a valid account code (numeric, at most 18 digits)."
                ))
            })?;
            if codes().any(|c| c == padded.trim()) {
                return Err(ApiError::bad_request(format!(
                    "Code: an account with code {} already exists.",
                    padded.trim()
                )));
            }
            row.insert("Code", Val::Str(padded));
        }
        Some(_) if !creating => return Err(mandatory("Code")),
        _ if creating => {
            let next = codes()
                .filter_map(|c| c.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
                + 1;
            row.insert(
                "Code",
                Val::Str(pad_code(&next.to_string()).unwrap_or_default()),
            );
        }
        _ => {}
    }
    Ok(())
}

/// Invoice rules; `lines` is `Some` on create.
fn invoice_rules(
    store: &Store,
    division: i32,
    row: &mut Row,
    lines: Option<&[Value]>,
) -> Result<(), ApiError> {
    let creating = lines.is_some();
    for field in ["OrderedBy", "Journal"] {
        if (creating || row.contains_key(field)) && is_blank(row, field) {
            return Err(mandatory(field));
        }
    }
    for field in ["OrderedBy", "InvoiceTo", "DeliverTo"] {
        if let Some(Val::Guid(account)) = row.get(field)
            && store.get(division, Entity::Account, *account).is_none()
        {
            return Err(ApiError::bad_request(format!(
                "{field}: account {account} not found."
            )));
        }
    }
    if let Some(Val::Int(status)) = row.get("Status")
        && ![10, 20, 50].contains(status)
    {
        return Err(ApiError::bad_request(format!(
            "Status: {status} is not a valid invoice status."
        )));
    }
    if let Some(Val::Int(kind)) = row.get("Type")
        && ![8020, 8021, 8023, 8024].contains(kind)
    {
        return Err(ApiError::bad_request(format!(
            "Type: {kind} is not a valid invoice type."
        )));
    }
    let Some(lines) = lines else {
        return Ok(());
    };
    if lines.is_empty() {
        return Err(mandatory("SalesInvoiceLines"));
    }
    let mut total = 0.0;
    for line in lines {
        let item = line
            .get("Item")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        if item.is_none() {
            return Err(mandatory("SalesInvoiceLines.Item"));
        }
        let amount = line
            .get("AmountFC")
            .and_then(Value::as_f64)
            .unwrap_or_else(|| {
                let q = line.get("Quantity").and_then(Value::as_f64).unwrap_or(1.0);
                q * line.get("NetPrice").and_then(Value::as_f64).unwrap_or(0.0)
            });
        total += amount;
    }
    let ordered_by = row.get("OrderedBy").cloned().unwrap_or(Val::Null);
    row.entry("InvoiceTo").or_insert_with(|| ordered_by.clone());
    row.entry("DeliverTo").or_insert(ordered_by);
    row.entry("Currency")
        .or_insert_with(|| Val::Str("EUR".to_owned()));
    row.entry("Status").or_insert(Val::Int(10));
    row.entry("Type").or_insert(Val::Int(8020));
    row.insert("AmountFC", Val::Double(total));
    row.insert("AmountDC", Val::Double(total));
    row.insert("VATAmountDC", Val::Double(0.0));
    Ok(())
}

/// The natural key the control layer counts creates under: `Accounts/<email>` (lower
/// case) or `Accounts/code:<code>`; `SalesInvoices/<YourRef>` or `SalesInvoices/number:<n>`.
pub(crate) fn create_key(entity: Entity, row: &Row) -> String {
    match entity {
        Entity::Account => match row
            .get("Email")
            .and_then(Val::as_str)
            .filter(|e| !e.trim().is_empty())
        {
            Some(email) => format!("Accounts/{}", email.trim().to_ascii_lowercase()),
            None => format!(
                "Accounts/code:{}",
                row.get("Code").and_then(Val::as_str).unwrap_or("").trim()
            ),
        },
        Entity::SalesInvoice => match row
            .get("YourRef")
            .and_then(Val::as_str)
            .filter(|r| !r.is_empty())
        {
            Some(reference) => format!("SalesInvoices/{reference}"),
            None => format!(
                "SalesInvoices/number:{}",
                row.get("InvoiceNumber").and_then(Val::as_int).unwrap_or(0)
            ),
        },
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
