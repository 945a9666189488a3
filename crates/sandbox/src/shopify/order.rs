//! Shopify orders, shaped like Shopify's own `orders/create` test payload.
//!
//! Contract facts followed (saas-contracts.md §1.4):
//! - The sample lists `id, admin_graphql_api_id, email, created_at, updated_at, name,
//!   order_number, currency, total_price, subtotal_price, financial_status,
//!   fulfillment_status, line_items, customer, billing_address, shipping_address` in that
//!   order; the few extra fields the emulator keeps (`cancelled_at`, `closed_at`, `note`,
//!   `tags`, `total_tax`, `source_identifier`) slot in without disturbing it.
//! - Money amounts are strings with two decimals (`"254.98"`); timestamps carry the shop's
//!   UTC offset; IDs go above 2^53 and `admin_graphql_api_id` repeats them as
//!   `gid://shopify/<Type>/<id>`. Line items are `{id, admin_graphql_api_id, title,
//!   quantity, sku, price, product_id, variant_id}`; the nested customer is `{id, email,
//!   first_name, last_name, admin_graphql_api_id}`.
//! - First IDs are the sample's own: order 820982911946154508, line item
//!   487817672276298554.
//!
//! Emulator choices: order names count from `#1001` (a new shop's first order number);
//! totals are the line-item sum (no tax, shipping or discounts are emulated).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::model::{Customer, ser_empty_as_null, ser_time};

/// First order ID: the order ID of Shopify's sample.
pub const SAMPLE_ORDER_ID: u64 = 820_982_911_946_154_508;
/// First line-item ID: the line-item ID of Shopify's sample.
pub const SAMPLE_LINE_ITEM_ID: u64 = 487_817_672_276_298_554;
/// Order number of a new shop's first order.
pub const FIRST_ORDER_NUMBER: u64 = 1001;

/// One order, serialised in the field order of Shopify's sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// Order ID (above 2^53).
    pub id: u64,
    /// `gid://shopify/Order/<id>`.
    pub admin_graphql_api_id: String,
    /// Contact email; empty is written as `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub email: String,
    /// Creation time, with the shop's offset.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// Last change, with the shop's offset.
    #[serde(serialize_with = "ser_time")]
    pub updated_at: OffsetDateTime,
    /// When the order was cancelled (never, in the emulator).
    pub cancelled_at: Option<String>,
    /// When the order was closed (never, in the emulator).
    pub closed_at: Option<String>,
    /// `#<order_number>`.
    pub name: String,
    /// Shop-wide sequential number, from 1001.
    pub order_number: u64,
    /// Free-text note.
    pub note: Option<String>,
    /// Comma-separated tags.
    pub tags: String,
    /// Currency code.
    pub currency: String,
    /// Total, as a decimal string.
    pub total_price: String,
    /// Line-item sum, as a decimal string.
    pub subtotal_price: String,
    /// Tax, as a decimal string (`"0.00"`).
    pub total_tax: String,
    /// `pending`, `paid`, `voided`, ...
    pub financial_status: String,
    /// `null` until fulfilled.
    pub fulfillment_status: Option<String>,
    /// The caller's idempotency-style reference, if it sent one.
    pub source_identifier: Option<String>,
    /// What was bought.
    pub line_items: Vec<LineItem>,
    /// The customer as it is now (rendered at read time), or `null`.
    pub customer: Option<OrderCustomer>,
    /// Billing address as sent, or `null`.
    pub billing_address: Option<Value>,
    /// Shipping address as sent, or `null`.
    pub shipping_address: Option<Value>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    /// Line-item ID (above 2^53).
    pub id: u64,
    /// `gid://shopify/LineItem/<id>`.
    pub admin_graphql_api_id: String,
    /// Product title.
    pub title: String,
    /// Units.
    pub quantity: u64,
    /// SKU, or `null`.
    pub sku: Option<String>,
    /// Unit price, as a decimal string.
    pub price: String,
    /// Product ID, or `null`.
    pub product_id: Option<u64>,
    /// Variant ID, or `null`.
    pub variant_id: Option<u64>,
}

/// The customer summary nested in an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderCustomer {
    /// Customer ID.
    pub id: u64,
    /// Email, or `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub email: String,
    /// First name, or `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub first_name: String,
    /// Last name, or `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub last_name: String,
    /// `gid://shopify/Customer/<id>`.
    pub admin_graphql_api_id: String,
}

impl From<&Customer> for OrderCustomer {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id,
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            admin_graphql_api_id: c.admin_graphql_api_id.clone(),
        }
    }
}

/// Parses a money amount (`"89.99"`, `"5"`, or a JSON number) into cents. Negative
/// amounts, more than two decimals and non-numbers are refused.
pub fn parse_money(value: &Value) -> Option<u64> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents = format!("{frac:0<2}").parse::<u64>().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

/// Cents as Shopify writes money: `"254.98"`.
pub fn format_money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_parses_strictly_and_prints_two_decimals() {
        assert_eq!(parse_money(&json!("89.99")), Some(8999));
        assert_eq!(parse_money(&json!("5")), Some(500));
        assert_eq!(parse_money(&json!("5.5")), Some(550));
        assert_eq!(parse_money(&json!(12.25)), Some(1225));
        for bad in [
            json!("-1"),
            json!("1.999"),
            json!("abc"),
            json!(null),
            json!(".5"),
        ] {
            assert_eq!(parse_money(&bad), None, "{bad}");
        }
        assert_eq!(format_money(25498), "254.98");
        assert_eq!(format_money(5), "0.05");
    }
}
