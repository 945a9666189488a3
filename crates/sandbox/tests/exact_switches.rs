//! The Exact emulator's `/_sandbox/exact/` data switches over HTTP: upsert, generate and
//! delete accounts and invoices, read the change log and the rate-limit state. (Token and
//! schema switches are covered in `exact_oauth.rs` and `exact_rest.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::exact_helpers as helpers;

use helpers::*;
use serde_json::{Value, json};
use switchboard_sandbox::exact::ExactConfig;

#[tokio::test]
async fn data_switches_change_records_and_fill_the_change_log() {
    let sb = start(ExactConfig {
        minutely_limit: 60,
        ..config()
    })
    .await;
    let http = client();
    let url = |path: &str| format!("{}/_sandbox/exact/{path}", sb.base_url());

    let generated: Value = http
        .post(url("accounts/generate"))
        .json(&json!({"count": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(generated, json!({"created": 3}));

    let created = http
        .post(url("accounts"))
        .json(&json!({"Name": "Acme BV", "Code": "25"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let account: Value = created.json().await.unwrap();
    assert_eq!(account["Code"], "                25");
    let id = account["ID"].as_str().unwrap().to_owned();
    let first_ts = account["Timestamp"].as_i64().unwrap();

    let updated: Value = http
        .post(url("accounts"))
        .json(&json!({"ID": id, "Name": "Acme Holding"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["ID"], json!(id));
    assert_eq!(updated["Name"], "Acme Holding");
    assert!(updated["Timestamp"].as_i64().unwrap() > first_ts);

    let refused = http
        .post(url("accounts"))
        .json(&json!({"Name": "Dup", "Code": "25"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    error_value(&refused.json().await.unwrap());

    let invoice: Value = http
        .post(url("sales-invoices"))
        .json(&json!({"OrderedBy": id, "Journal": "70",
            "SalesInvoiceLines": [{"Item": "0f8fad5b-d9cb-469f-a165-70867728950e", "AmountFC": 5}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(invoice["AmountDC"], json!(5.0));
    let invoice_id = invoice["InvoiceID"].as_str().unwrap();
    let gone = http
        .delete(url(&format!("sales-invoices/{invoice_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(
        http.delete(url(&format!("accounts/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        http.delete(url(&format!("accounts/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let log: Vec<Value> = http
        .get(url("changes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = log.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Insert", "Insert", "Insert", "Insert", "Update", "Insert", "Delete", "Delete"
        ]
    );
    let stamps: Vec<i64> = log
        .iter()
        .map(|c| c["timestamp"].as_i64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert_eq!(log[7]["entity"], "Account");
    assert_eq!(log[6]["entity"], "SalesInvoice");
    assert_eq!(
        sb.control().counters().creates.len(),
        0,
        "switch writes are not API creates"
    );

    let api = Api::new(&sb);
    assert_eq!(api.get("current/Me").await.status(), 200);
    let limits: Value = http
        .get(url("rate-limits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["minutely_remaining"], json!(59));
    assert_eq!(limits["throttled"], json!(0));
}
