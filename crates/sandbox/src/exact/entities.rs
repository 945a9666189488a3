//! The entity sets the emulator serves and the properties each one has.
//!
//! Contract facts followed (saas-contracts.md §3.3–§3.5):
//! - Accounts (`crm/Accounts`, key `ID`): `Code` is an 18-character numeric string with
//!   leading spaces; a new account without a code gets the highest code used plus one
//!   (Exact's "Tips and Tricks" page, public copy at basvanbeek.nl/exact-online-tips).
//! - SalesInvoices (`salesinvoice/SalesInvoices`, key `InvoiceID`): the documented fields,
//!   `Status` 10/20/50, `Type` 8020/8021/8023/8024, `SalesInvoiceLines` as a deferred
//!   collection (picqer `SalesInvoice.php` docblock).
//! - Sync entities carry `Timestamp` (Int64 rowversion) and are keyed by it (picqer's
//!   `Deleted.php` declares `Timestamp` the primary key), so their `$skiptoken` is `<n>L`.
//! - `sync/Deleted` items: `Timestamp`, `Division`, `EntityKey`, `EntityType`, `ID`.
//!
//! The `__metadata.type` strings are illustrative (the reference says so); field names are
//! as documented. Only a subset of each entity's many properties is emulated.

use super::values::Kind;

/// One entity set as the API exposes it.
#[derive(Debug)]
pub(crate) struct EntityDef {
    /// Entity set name, e.g. `Accounts` (also the name schema switches use).
    pub set: &'static str,
    /// Path below `/api/v1/{division}/`, e.g. `crm/Accounts`.
    pub path: &'static str,
    /// `__metadata.type`.
    pub type_name: &'static str,
    /// The key property.
    pub key: &'static str,
    /// Properties in the order the API lists them.
    pub fields: &'static [(&'static str, Kind)],
    /// Properties a client may send in a POST/PUT body.
    pub writable: &'static [&'static str],
    /// Deferred navigation properties (rendered as `{"__deferred":{"uri":…}}`).
    pub deferred: &'static [&'static str],
}

impl EntityDef {
    pub fn kind_of(&self, field: &str) -> Option<Kind> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, k)| *k)
    }

    pub fn has_deferred(&self, field: &str) -> bool {
        self.deferred.contains(&field)
    }
}

pub(crate) const ACCOUNT_FIELDS: &[(&str, Kind)] = &[
    ("ID", Kind::Guid),
    ("Code", Kind::Str),
    ("Name", Kind::Str),
    ("Email", Kind::Str),
    ("Phone", Kind::Str),
    ("VATNumber", Kind::Str),
    ("ChamberOfCommerce", Kind::Str),
    ("Website", Kind::Str),
    ("City", Kind::Str),
    ("Country", Kind::Str),
    ("Status", Kind::Str),
    ("IsSupplier", Kind::Bool),
    ("StartDate", Kind::DateTime),
    ("EndDate", Kind::DateTime),
    ("Division", Kind::Int32),
    ("Created", Kind::DateTime),
    ("Modified", Kind::DateTime),
];

const ACCOUNT_WRITABLE: &[&str] = &[
    "Code",
    "Name",
    "Email",
    "Phone",
    "VATNumber",
    "ChamberOfCommerce",
    "Website",
    "City",
    "Country",
    "Status",
    "IsSupplier",
    "StartDate",
    "EndDate",
];

pub(crate) const INVOICE_FIELDS: &[(&str, Kind)] = &[
    ("InvoiceID", Kind::Guid),
    ("InvoiceNumber", Kind::Int32),
    ("InvoiceTo", Kind::Guid),
    ("OrderedBy", Kind::Guid),
    ("DeliverTo", Kind::Guid),
    ("Journal", Kind::Str),
    ("InvoiceDate", Kind::DateTime),
    ("DueDate", Kind::DateTime),
    ("OrderNumber", Kind::Int32),
    ("Currency", Kind::Str),
    ("AmountDC", Kind::Double),
    ("AmountFC", Kind::Double),
    ("VATAmountDC", Kind::Double),
    ("YourRef", Kind::Str),
    ("Description", Kind::Str),
    ("Status", Kind::Int32),
    ("Type", Kind::Int32),
    ("Division", Kind::Int32),
    ("Created", Kind::DateTime),
    ("Modified", Kind::DateTime),
];

const INVOICE_WRITABLE: &[&str] = &[
    "InvoiceTo",
    "OrderedBy",
    "DeliverTo",
    "Journal",
    "InvoiceDate",
    "DueDate",
    "OrderNumber",
    "Currency",
    "YourRef",
    "Description",
    "Status",
    "Type",
];

pub(crate) static ACCOUNTS: EntityDef = EntityDef {
    set: "Accounts",
    path: "crm/Accounts",
    type_name: "Exact.Web.Api.Models.Account",
    key: "ID",
    fields: ACCOUNT_FIELDS,
    writable: ACCOUNT_WRITABLE,
    deferred: &[],
};

pub(crate) static SALES_INVOICES: EntityDef = EntityDef {
    set: "SalesInvoices",
    path: "salesinvoice/SalesInvoices",
    type_name: "Exact.Web.Api.Models.SalesInvoice",
    key: "InvoiceID",
    fields: INVOICE_FIELDS,
    writable: INVOICE_WRITABLE,
    deferred: &["SalesInvoiceLines"],
};

/// `sync/CRM/Accounts`: the account properties plus `Timestamp`.
pub(crate) static SYNC_ACCOUNTS: EntityDef = EntityDef {
    set: "Accounts",
    path: "sync/CRM/Accounts",
    type_name: "Exact.Web.Api.Models.Sync.CRM.Account",
    key: "Timestamp",
    fields: SYNC_ACCOUNT_FIELDS,
    writable: &[],
    deferred: &[],
};

const SYNC_ACCOUNT_FIELDS: &[(&str, Kind)] = &[
    ("Timestamp", Kind::Int64),
    ("ID", Kind::Guid),
    ("Code", Kind::Str),
    ("Name", Kind::Str),
    ("Email", Kind::Str),
    ("Phone", Kind::Str),
    ("VATNumber", Kind::Str),
    ("ChamberOfCommerce", Kind::Str),
    ("Website", Kind::Str),
    ("City", Kind::Str),
    ("Country", Kind::Str),
    ("Status", Kind::Str),
    ("IsSupplier", Kind::Bool),
    ("StartDate", Kind::DateTime),
    ("EndDate", Kind::DateTime),
    ("Division", Kind::Int32),
    ("Created", Kind::DateTime),
    ("Modified", Kind::DateTime),
];

/// `sync/SalesInvoice/SalesInvoices`: the invoice properties plus `Timestamp`.
pub(crate) static SYNC_SALES_INVOICES: EntityDef = EntityDef {
    set: "SalesInvoices",
    path: "sync/SalesInvoice/SalesInvoices",
    type_name: "Exact.Web.Api.Models.Sync.SalesInvoice.SalesInvoice",
    key: "Timestamp",
    fields: SYNC_INVOICE_FIELDS,
    writable: &[],
    deferred: &[],
};

const SYNC_INVOICE_FIELDS: &[(&str, Kind)] = &[
    ("Timestamp", Kind::Int64),
    ("InvoiceID", Kind::Guid),
    ("InvoiceNumber", Kind::Int32),
    ("InvoiceTo", Kind::Guid),
    ("OrderedBy", Kind::Guid),
    ("DeliverTo", Kind::Guid),
    ("Journal", Kind::Str),
    ("InvoiceDate", Kind::DateTime),
    ("DueDate", Kind::DateTime),
    ("OrderNumber", Kind::Int32),
    ("Currency", Kind::Str),
    ("AmountDC", Kind::Double),
    ("AmountFC", Kind::Double),
    ("VATAmountDC", Kind::Double),
    ("YourRef", Kind::Str),
    ("Description", Kind::Str),
    ("Status", Kind::Int32),
    ("Type", Kind::Int32),
    ("Division", Kind::Int32),
    ("Created", Kind::DateTime),
    ("Modified", Kind::DateTime),
];

/// `sync/Deleted` (§3.5).
pub(crate) static SYNC_DELETED: EntityDef = EntityDef {
    set: "Deleted",
    path: "sync/Deleted",
    type_name: "Exact.Web.Api.Models.Sync.Deleted",
    key: "Timestamp",
    fields: &[
        ("Timestamp", Kind::Int64),
        ("Division", Kind::Int32),
        ("EntityKey", Kind::Guid),
        ("EntityType", Kind::Int32),
        ("ID", Kind::Guid),
    ],
    writable: &[],
    deferred: &[],
};

/// `current/Me` (§3.3: find the division with `$select=CurrentDivision`).
pub(crate) static ME: EntityDef = EntityDef {
    set: "Me",
    path: "current/Me",
    type_name: "Exact.Web.Api.System.Me",
    key: "UserID",
    fields: &[
        ("UserID", Kind::Guid),
        ("UserName", Kind::Str),
        ("FullName", Kind::Str),
        ("Email", Kind::Str),
        ("LanguageCode", Kind::Str),
        ("CurrentDivision", Kind::Int32),
    ],
    writable: &[],
    deferred: &[],
};

/// `system/Divisions`, for `DivisionMoveDate` (§3.4: detect a division move).
pub(crate) static DIVISIONS: EntityDef = EntityDef {
    set: "Divisions",
    path: "system/Divisions",
    type_name: "Exact.Web.Api.System.Division",
    key: "Code",
    fields: &[
        ("Code", Kind::Int32),
        ("Description", Kind::Str),
        ("DivisionMoveDate", Kind::DateTime),
    ],
    writable: &[],
    deferred: &[],
};

/// `EntityType` of deleted Accounts in `sync/Deleted` (§3.5).
pub const ENTITY_TYPE_ACCOUNTS: i64 = 2;
/// `EntityType` of deleted SalesInvoices in `sync/Deleted` (§3.5).
pub const ENTITY_TYPE_SALES_INVOICES: i64 = 13;

/// Width of the `Code` property of Accounts.
pub(crate) const CODE_WIDTH: usize = 18;

/// Pads a numeric account code to 18 characters with leading spaces; `None` when the code
/// is not a number that fits.
pub(crate) fn pad_code(code: &str) -> Option<String> {
    let trimmed = code.trim();
    if trimmed.is_empty()
        || trimmed.len() > CODE_WIDTH
        || !trimmed.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(format!("{trimmed:>CODE_WIDTH$}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eighteen_characters_with_leading_spaces() {
        assert_eq!(pad_code("25").unwrap(), "                25");
        assert_eq!(pad_code("  25 ").unwrap().len(), 18);
        assert_eq!(pad_code("ABC"), None);
        assert_eq!(pad_code("1234567890123456789"), None);
    }

    #[test]
    fn every_writable_field_is_a_field() {
        for def in [&ACCOUNTS, &SALES_INVOICES] {
            for w in def.writable {
                assert!(def.kind_of(w).is_some(), "{}.{w}", def.set);
            }
        }
    }
}
