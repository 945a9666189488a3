//! The canonical → target mappings of every target module, on hand-written records.

#![allow(clippy::unwrap_used)]

use crate::exact::ExactConnection;
use serde_json::{Value, json};

use crate::target::Record;
use crate::{
    exact::target as exact, pipedrive::target as pipedrive, shopify::target as shopify,
    telegram::target as telegram,
};

fn record(fields: Value) -> Record {
    let mut all = json!({"id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "deleted": false,
        "source_connection": "src", "source_entity": "x", "source_id": "1",
        "source_event_id": "e", "mapping": "m"});
    for (k, v) in fields.as_object().unwrap() {
        all[k] = v.clone();
    }
    Record::from_json(all).unwrap()
}

#[test]
fn an_organization_becomes_a_pipedrive_organization_with_one_address_line() {
    let body = pipedrive::organization_from_record(&record(json!({"name": "Acme BV",
        "address_line": "Main St 1", "postal_code": "1234 AB", "city": "Delft", "country": "NL"})))
    .unwrap();
    assert_eq!(body["name"], "Acme BV");
    assert_eq!(body["address"]["value"], "Main St 1, 1234 AB Delft, NL");
    assert_eq!(body["address"]["locality"], "Delft");
    assert!(pipedrive::organization_from_record(&record(json!({}))).is_err());
}

#[test]
fn a_deal_keeps_its_value_as_a_number_and_only_pipedrive_statuses() {
    let body = pipedrive::deal_from_record(&record(
        json!({"title": "Big", "value": "1250.50", "currency": "EUR", "status": "negotiating"}),
    ))
    .unwrap();
    assert_eq!(body["value"], json!(1250.5));
    assert!(body.get("status").is_none());
}

#[test]
fn an_organization_becomes_an_exact_account_and_its_code_is_stable() {
    let r = record(json!({"name": "Acme BV", "vat_number": "NL001B01", "email": "a@acme.nl"}));
    let body = exact::account_from_record(&r).unwrap();
    assert_eq!(body["VATNumber"], "NL001B01");
    assert!(body.get("Code").is_none(), "the code is set on create only");
    let code = exact::switchboard_code(&r.id);
    assert_eq!(code.len(), 15);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(code, exact::switchboard_code(&r.id));
    assert_ne!(code, exact::switchboard_code("another"));
}

#[test]
fn an_invoice_books_every_line_on_the_configured_item() {
    let connection: ExactConnection = serde_json::from_value(json!({"division": 1,
        "oauth": {"client_id": "c", "client_secret": "${env:CARGO_PKG_NAME}",
            "refresh_token": "${env:CARGO_PKG_NAME}"},
        "target": {"journal": "70", "sales_item": "item-guid"}}))
    .unwrap();
    let r = record(json!({"number": "INV-1", "currency": "EUR", "lines": [
        {"sku": "S1", "title": "Widget", "quantity": "2", "unit_price": "12.50"}]}));
    let body = exact::invoice_from_record(&r, "account-guid", &connection).unwrap();
    assert_eq!(body["OrderedBy"], "account-guid");
    assert_eq!(body["YourRef"], "INV-1");
    assert_eq!(body["SalesInvoiceLines"][0]["Item"], "item-guid");
    assert_eq!(body["SalesInvoiceLines"][0]["Quantity"], json!(2.0));
    assert_eq!(body["SalesInvoiceLines"][0]["Description"], "Widget (S1)");
    let empty = record(json!({"number": "INV-2", "lines": []}));
    assert!(exact::invoice_from_record(&empty, "a", &connection).is_err());
}

#[test]
fn orders_become_shopify_orders_with_whole_quantities_only() {
    let r = record(json!({"number": "1001", "currency": "EUR", "lines": [
        {"sku": "S", "title": "Tea", "quantity": "3", "unit_price": "4.00"}]}));
    let body = shopify::order_from_record(&r).unwrap();
    assert_eq!(body["line_items"][0]["quantity"], 3);
    assert_eq!(body["source_identifier"], r.id.as_str());
    let half = record(json!({"lines": [{"title": "Tea", "quantity": "0.5", "unit_price": "4"}]}));
    assert!(shopify::order_from_record(&half).is_err());
}

#[test]
fn an_order_notification_names_number_total_and_marker() {
    let text = telegram::order_message(&record(
        json!({"number": "#1001", "total": "42.00", "currency": "EUR", "lines": [{}, {}]}),
    ));
    assert_eq!(text, "New order #1001: 42.00 EUR, 2 line(s) [sb:6f9619ff]");
}
