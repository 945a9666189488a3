//! Unit tests of the record rules (kept apart to keep `records.rs` short).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

fn opts(required: &[String]) -> CreateOptions<'_> {
    CreateOptions {
        now_ms: 0,
        required,
        id: None,
    }
}

#[test]
fn accounts_get_padded_unique_codes() {
    let mut s = Store::new(&[7], 0);
    let a = create(
        &mut s,
        7,
        Entity::Account,
        &json!({"Name": "A", "Code": "25"}),
        &opts(&[]),
    )
    .unwrap();
    let b = create(
        &mut s,
        7,
        Entity::Account,
        &json!({"Name": "B"}),
        &opts(&[]),
    )
    .unwrap();
    let code = |id| s.get(7, Entity::Account, id).unwrap().fields["Code"].clone();
    assert_eq!(code(a), Val::Str("                25".into()));
    assert_eq!(code(b), Val::Str("                26".into()));
    let dup = create(
        &mut s,
        7,
        Entity::Account,
        &json!({"Name": "C", "Code": " 25"}),
        &opts(&[]),
    );
    assert_eq!(dup.unwrap_err().status, 400);
    assert!(
        create(
            &mut s,
            7,
            Entity::Account,
            &json!({"Code": "27"}),
            &opts(&[])
        )
        .is_err()
    );
    assert!(
        create(
            &mut s,
            7,
            Entity::Account,
            &json!({"Name": "D", "Nope": 1}),
            &opts(&[])
        )
        .is_err()
    );
    assert!(
        create(
            &mut s,
            7,
            Entity::Account,
            &json!({"Name": "D"}),
            &opts(&["Email".into()])
        )
        .is_err()
    );
    update(
        &mut s,
        7,
        Entity::Account,
        a,
        &json!({"Code": "25", "Name": "A2"}),
        5,
    )
    .unwrap();
    assert!(update(&mut s, 7, Entity::Account, a, &json!({"Code": "26"}), 5).is_err());
    assert_eq!(
        update(&mut s, 7, Entity::Account, Uuid::nil(), &json!({}), 5)
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn invoices_need_an_account_a_journal_and_lines() {
    let mut s = Store::new(&[7], 0);
    let acc = create(
        &mut s,
        7,
        Entity::Account,
        &json!({"Name": "A"}),
        &opts(&[]),
    )
    .unwrap();
    let item = Uuid::new_v4().to_string();
    let ok = json!({"OrderedBy": acc, "Journal": "70", "YourRef": "ORD-1",
        "SalesInvoiceLines": [{"Item": item, "Quantity": 2, "NetPrice": 10.5}, {"Item": item, "AmountFC": 1}]});
    let id = create(&mut s, 7, Entity::SalesInvoice, &ok, &opts(&[])).unwrap();
    let rec = s.get(7, Entity::SalesInvoice, id).unwrap();
    assert_eq!(rec.fields["AmountDC"], Val::Double(22.0));
    assert_eq!(rec.fields["InvoiceNumber"], Val::Int(1));
    assert_eq!(rec.fields["InvoiceTo"], Val::Guid(acc));
    assert_eq!(
        create_key(Entity::SalesInvoice, &rec.fields),
        "SalesInvoices/ORD-1"
    );
    for bad in [
        json!({"Journal": "70", "SalesInvoiceLines": [{"Item": item}]}),
        json!({"OrderedBy": Uuid::new_v4(), "Journal": "70", "SalesInvoiceLines": [{"Item": item}]}),
        json!({"OrderedBy": acc, "SalesInvoiceLines": [{"Item": item}]}),
        json!({"OrderedBy": acc, "Journal": "70", "SalesInvoiceLines": []}),
        json!({"OrderedBy": acc, "Journal": "70", "SalesInvoiceLines": [{"Quantity": 1}]}),
        json!({"OrderedBy": acc, "Journal": "70", "Type": 1, "SalesInvoiceLines": [{"Item": item}]}),
    ] {
        assert!(
            create(&mut s, 7, Entity::SalesInvoice, &bad, &opts(&[])).is_err(),
            "{bad}"
        );
    }
}
