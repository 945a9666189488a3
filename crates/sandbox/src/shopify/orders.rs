//! Order operations of the Admin REST API: create, update, delete; each fires its webhooks.
//!
//! Contract facts followed (saas-contracts.md §1.4 for shapes, see `order.rs`):
//! - `POST /orders.json` with `{"order": {"line_items": [...], ...}}` answers 201
//!   `{"order": {...}}`; money comes back as two-decimal strings.
//! - Topics `orders/create`, `orders/updated` (sic: Shopify's order topic is `updated`,
//!   unlike `customers/update`) and `orders/delete`, whose payload is just `{"id": ...}`
//!   (Shopify's webhook reference sample; recalled, not in saas-contracts.md).
//! - An order naming a customer by `id` links to it; one naming it by email links to the
//!   shop's customer with that email or creates one (firing `customers/create`), as
//!   Shopify does when an order arrives for a new buyer.
//!
//! - `GET /orders.json` lists only open orders unless `status=any|closed|cancelled` is
//!   given (Shopify's default is `status=open`); the emulator never closes or cancels an
//!   order, so `closed` and `cancelled` list nothing.
//!
//! Stricter or simplified choices: line items need a `title`, a `price` (string or number,
//! at most two decimals, not negative) and a positive integer `quantity` (default 1) —
//! 422 `{"errors":{"line_items":[...]}}` otherwise; `financial_status` must be one of
//! Shopify's values (default `paid`); updates may change `email`, `note`, `tags` and
//! `shipping_address` only, other keys are ignored as Rails' strong parameters would;
//! an unchanged update fires nothing. `control.count_create` counts each order under its
//! `source_identifier` when the caller sent one (the natural key a sink would use), else
//! its `admin_graphql_api_id`.

use serde_json::{Map, Value, json};

use super::customers::{CustomerInput, create_locked};
use super::errors::{ApiError, FieldErrors};
use super::input::{email_ok, normalize_tags, root, text};
use super::json::Json;
use super::order::{LineItem, Order, OrderCustomer, format_money, parse_money};
use super::schema::Resource;
use super::state::{Shared, State};

const FINANCIAL_STATUSES: [&str; 8] = [
    "pending",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
    "expired",
];

struct NewLine {
    title: String,
    quantity: u64,
    sku: Option<String>,
    cents: u64,
    product_id: Option<u64>,
    variant_id: Option<u64>,
}

fn parse_lines(obj: &Map<String, Value>, errors: &mut FieldErrors) -> Vec<NewLine> {
    let Some(items) = obj
        .get("line_items")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        errors.add("line_items", "can't be blank");
        return Vec::new();
    };
    let mut lines = Vec::new();
    for item in items {
        let Some(item) = item.as_object() else {
            errors.add("line_items", "is invalid");
            continue;
        };
        let title = item.get("title").and_then(Value::as_str).map(str::trim);
        let cents = item.get("price").and_then(parse_money);
        let quantity = match item.get("quantity") {
            None => Some(1),
            Some(q) => q.as_u64().filter(|q| *q > 0),
        };
        let id_field = |key: &str| item.get(key).and_then(Value::as_u64);
        match (title.filter(|t| !t.is_empty()), cents, quantity) {
            (Some(title), Some(cents), Some(quantity)) => lines.push(NewLine {
                title: title.to_owned(),
                quantity,
                sku: item.get("sku").and_then(Value::as_str).map(str::to_owned),
                cents,
                product_id: id_field("product_id"),
                variant_id: id_field("variant_id"),
            }),
            (None, _, _) => errors.add("line_items", "title can't be blank"),
            (_, None, _) => errors.add("line_items", "price is invalid"),
            (_, _, None) => errors.add("line_items", "quantity must be greater than 0"),
        }
    }
    lines
}

fn object_field(
    obj: &Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<Option<Value>> {
    match obj.get(key)? {
        Value::Null => Some(None),
        v @ Value::Object(_) => Some(Some(v.clone())),
        _ => {
            errors.add(key, "is invalid");
            None
        }
    }
}

/// Finds or creates the order's customer; `None` when the order names no buyer at all.
fn resolve_customer(
    shared: &Shared,
    state: &mut State,
    obj: &Map<String, Value>,
    order_email: &str,
) -> Result<Option<OrderCustomer>, ApiError> {
    let given = obj.get("customer").and_then(Value::as_object);
    if let Some(id) = given.and_then(|c| c.get("id")).and_then(Value::as_u64) {
        return state
            .customers
            .get(&id)
            .map(|c| Some(OrderCustomer::from(c)))
            .ok_or_else(|| ApiError::invalid_field("customer", "not found"));
    }
    let mut errors = FieldErrors::default();
    let mut input = CustomerInput::default();
    if let Some(c) = given {
        input.email = text(c, "email", &mut errors);
        input.first_name = text(c, "first_name", &mut errors);
        input.last_name = text(c, "last_name", &mut errors);
    }
    errors.into_result()?;
    let email = input
        .email
        .clone()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| order_email.to_owned());
    if email.is_empty() && input.first_name.is_none() && input.last_name.is_none() {
        return Ok(None);
    }
    if let Some(existing) = state.customer_by_email(&email) {
        return Ok(Some(OrderCustomer::from(existing)));
    }
    input.email = Some(email);
    create_locked(shared, state, &input).map(|c| Some(OrderCustomer::from(&c)))
}

/// `POST /orders.json`.
pub(crate) fn create(shared: &Shared, body: &Value) -> Result<Order, ApiError> {
    let obj = root(body, "order")?;
    let mut errors = FieldErrors::default();
    let lines = parse_lines(obj, &mut errors);
    let email = text(obj, "email", &mut errors).unwrap_or_default();
    if !email.is_empty() && !email_ok(&email) {
        errors.add("email", "is invalid");
    }
    let financial_status = match text(obj, "financial_status", &mut errors) {
        None => "paid".to_owned(),
        Some(s) if FINANCIAL_STATUSES.contains(&s.as_str()) => s,
        Some(_) => {
            errors.add("financial_status", "is not included in the list");
            String::new()
        }
    };
    let billing = object_field(obj, "billing_address", &mut errors).flatten();
    let shipping = object_field(obj, "shipping_address", &mut errors).flatten();
    let note = text(obj, "note", &mut errors).filter(|n| !n.is_empty());
    let tags = text(obj, "tags", &mut errors).map(|t| normalize_tags(&t));
    let source_identifier = text(obj, "source_identifier", &mut errors).filter(|s| !s.is_empty());
    let currency = text(obj, "currency", &mut errors).filter(|c| !c.is_empty());
    errors.into_result()?;

    let mut state = shared.lock();
    let customer = resolve_customer(shared, &mut state, obj, &email)?;
    let email = if email.is_empty() {
        customer
            .as_ref()
            .map(|c| c.email.clone())
            .unwrap_or_default()
    } else {
        email
    };
    let now = shared.shop_now();
    let mut line_items = Vec::with_capacity(lines.len());
    let mut subtotal: u64 = 0;
    for line in lines {
        let id = state.line_item_ids.next_id();
        subtotal = subtotal.saturating_add(line.cents.saturating_mul(line.quantity));
        line_items.push(LineItem {
            id,
            admin_graphql_api_id: format!("gid://shopify/LineItem/{id}"),
            title: line.title,
            quantity: line.quantity,
            sku: line.sku,
            price: format_money(line.cents),
            product_id: line.product_id,
            variant_id: line.variant_id,
        });
    }
    let id = state.order_ids.next_id();
    let order_number = state.next_order_number;
    state.next_order_number += 1;
    let order = Order {
        id,
        admin_graphql_api_id: format!("gid://shopify/Order/{id}"),
        email,
        created_at: now,
        updated_at: now,
        cancelled_at: None,
        closed_at: None,
        name: format!("#{order_number}"),
        order_number,
        note,
        tags: tags.unwrap_or_default(),
        currency: currency.unwrap_or_else(|| shared.config.currency.clone()),
        total_price: format_money(subtotal),
        subtotal_price: format_money(subtotal),
        total_tax: format_money(0),
        financial_status,
        fulfillment_status: None,
        source_identifier,
        line_items,
        customer,
        billing_address: billing,
        shipping_address: shipping,
    };
    state.orders.insert(id, order.clone());
    let key = order
        .source_identifier
        .clone()
        .unwrap_or_else(|| order.admin_graphql_api_id.clone());
    shared.control.count_create(&key);
    let doc = state.order_doc(&order);
    shared.emit(&mut state, "orders/create", Resource::Order, &doc);
    Ok(order)
}

/// `PUT /orders/{id}.json`.
pub(crate) fn update(shared: &Shared, id: u64, body: &Value) -> Result<Order, ApiError> {
    let obj = root(body, "order")?;
    let mut errors = FieldErrors::default();
    let email = text(obj, "email", &mut errors);
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty())
        && !email_ok(e)
    {
        errors.add("email", "is invalid");
    }
    let note = text(obj, "note", &mut errors);
    let tags = text(obj, "tags", &mut errors).map(|t| normalize_tags(&t));
    let shipping = object_field(obj, "shipping_address", &mut errors);
    errors.into_result()?;

    let mut state = shared.lock();
    let before = state
        .orders
        .get(&id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let mut order = before.clone();
    if let Some(e) = email {
        order.email = e;
    }
    if let Some(n) = note {
        order.note = (!n.is_empty()).then_some(n);
    }
    if let Some(t) = tags {
        order.tags = t;
    }
    if let Some(s) = shipping {
        order.shipping_address = s;
    }
    if order == before {
        return Ok(order);
    }
    order.updated_at = shared.shop_now();
    state.orders.insert(id, order.clone());
    let doc = state.order_doc(&order);
    shared.emit(&mut state, "orders/updated", Resource::Order, &doc);
    Ok(order)
}

/// `DELETE /orders/{id}.json`; fires `orders/delete` with `{"id": ...}`.
pub(crate) fn delete(shared: &Shared, id: u64) -> Result<(), ApiError> {
    let mut state = shared.lock();
    state.orders.remove(&id).ok_or_else(ApiError::not_found)?;
    let payload = Json::from(json!({ "id": id }));
    shared.emit(&mut state, "orders/delete", Resource::Order, &payload);
    Ok(())
}
