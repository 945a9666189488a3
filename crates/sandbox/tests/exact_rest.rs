//! Exact emulator REST contract (saas-contracts.md §3.3): `current/Me`, OData paging by 60
//! with a full-URL `__next`, `__metadata`, `/Date(ms)/` dates, 18-character account codes,
//! the `$filter`/`$select`/`$top`/`$orderby` subset, mandatory filtering, POST with and
//! without `Prefer: return=representation`, PUT, DELETE, Exact's error body, XML by
//! default, injected faults and schema switches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::exact_helpers as helpers;

use std::collections::HashSet;

use helpers::*;
use reqwest::Method;
use serde_json::{Value, json};
use switchboard_sandbox::exact::SchemaChange;
use switchboard_sandbox::{FaultRule, StatusCode};

const ACCOUNTS: &str = "123456/crm/Accounts";
/// Any filter on a listed property satisfies mandatory filtering.
const ALL: &str = "$filter=Modified ge datetime'2000-01-01'";

#[tokio::test]
async fn me_gives_the_current_division() {
    let sb = start(config()).await;
    let api = Api::new(&sb);
    let body = api.get_json("current/Me?$select=CurrentDivision").await;
    let results = body["d"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let me = results[0].as_object().unwrap();
    assert_eq!(me["CurrentDivision"], json!(DIVISION));
    assert_eq!(
        me.len(),
        2,
        "only __metadata and the selected property: {me:?}"
    );
    assert!(
        me["__metadata"]["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/api/v1/current/Me(guid'", sb.base_url()))
    );
}

#[tokio::test]
async fn lists_page_by_60_with_a_full_next_url_until_it_is_absent() {
    let sb = start(config()).await;
    sb.generate_accounts(130);
    let api = Api::new(&sb);
    let mut url = format!("{ACCOUNTS}?{ALL}&$select=ID,Code");
    let mut sizes = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let body = api.get_json(&url).await;
        let results = body["d"]["results"].as_array().unwrap();
        sizes.push(results.len());
        for r in results {
            assert_eq!(r.as_object().unwrap().len(), 3, "__metadata, ID, Code: {r}");
            assert_eq!(r["__metadata"]["type"], "Exact.Web.Api.Models.Account");
            assert!(
                ids.insert(r["ID"].as_str().unwrap().to_owned()),
                "repeated {r}"
            );
        }
        match body["d"].get("__next") {
            Some(next) => {
                let next = next.as_str().unwrap();
                assert!(
                    next.starts_with(&format!("{}/api/v1/{ACCOUNTS}?", sb.base_url())),
                    "{next}"
                );
                assert!(next.contains("$skiptoken=guid'"), "{next}");
                assert!(next.contains("$select=ID,Code"), "options survive: {next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![60, 60, 10]);
    assert_eq!(ids.len(), 130);
}

#[tokio::test]
async fn collections_need_a_filter_and_errors_use_exacts_body() {
    let sb = start(config()).await;
    let api = Api::new(&sb);
    let unfiltered = api.get(ACCOUNTS).await;
    assert_eq!(unfiltered.status(), 400);
    let message = error_value(&unfiltered.json().await.unwrap());
    assert!(
        message.starts_with("This endpoint has mandatory filtering applied."),
        "{message}"
    );

    for bad in [
        "$filter=ID eq '5d0c6d0f-0000-0000-0000-000000000000'",
        "$filter=Nope eq 1",
        "$filter=substringof('a', Name)",
        "$filter=Name eq 'x'&$expand=Contacts",
        "$filter=Name eq 'x'&$nonsense=1",
        "$filter=Name eq 'x'&$select=Nope",
    ] {
        let response = api.get(&format!("{ACCOUNTS}?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        error_value(&response.json().await.unwrap());
    }
    let missing = api
        .get(&format!(
            "{ACCOUNTS}(guid'5d0c6d0f-0000-0000-0000-000000000000')"
        ))
        .await;
    assert_eq!(missing.status(), 404);
    error_value(&missing.json().await.unwrap());
}

#[tokio::test]
async fn filters_select_top_and_orderby() {
    let sb = start(config()).await;
    let acme = sb
        .upsert_account(json!({"Name": "Acme BV", "Code": "25", "Email": "info@acme.example"}))
        .unwrap();
    sb.upsert_account(json!({"Name": "Zeta", "Code": "250"}))
        .unwrap();
    sb.upsert_account(json!({"Name": "Beta", "Code": "7"}))
        .unwrap();
    let api = Api::new(&sb);
    let names = |body: &Value| -> Vec<String> {
        body["d"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_trim = api
        .get_json(&format!(
            "{ACCOUNTS}?$filter=trim(Code) eq '25'&$select=ID,Code,Name"
        ))
        .await;
    assert_eq!(names(&by_trim), ["Acme BV"]);
    let code = by_trim["d"]["results"][0]["Code"].as_str().unwrap();
    assert_eq!(code, "                25", "18 characters, leading spaces");
    let unpadded = api
        .get_json(&format!("{ACCOUNTS}?$filter=Code eq '25'&$select=Name"))
        .await;
    assert!(
        names(&unpadded).is_empty(),
        "without the spaces nothing matches"
    );
    let padded = api
        .get_json(&format!("{ACCOUNTS}?$filter=Code eq '{code}'&$select=Name"))
        .await;
    assert_eq!(names(&padded), ["Acme BV"]);
    let by_guid = api
        .get_json(&format!(
            "{ACCOUNTS}?$filter=ID eq guid'{acme}'&$select=Name"
        ))
        .await;
    assert_eq!(names(&by_guid), ["Acme BV"]);
    let combined = api.get_json(&format!("{ACCOUNTS}?$filter=Name ne 'Zeta' and Modified ge datetime'2000-01-01T00:00:00'&$orderby=Name desc&$select=Name")).await;
    assert_eq!(names(&combined), ["Beta", "Acme BV"]);
    let future = api
        .get_json(&format!(
            "{ACCOUNTS}?$filter=Modified gt datetime'2999-01-01'&$select=Name"
        ))
        .await;
    assert!(names(&future).is_empty());
    let top = api
        .get_json(&format!(
            "{ACCOUNTS}?{ALL}&$orderby=Name&$top=2&$select=Name"
        ))
        .await;
    assert_eq!(names(&top), ["Acme BV", "Beta"]);
    assert!(top["d"].get("__next").is_none());

    let one = api
        .get_json(&format!("{ACCOUNTS}(guid'{acme}')?$select=Name,Email"))
        .await;
    assert!(
        one["d"].get("results").is_none(),
        "by key: no results array"
    );
    assert_eq!(one["d"]["Email"], "info@acme.example");
    assert_eq!(
        one["d"]["__metadata"]["uri"],
        format!("{}/api/v1/{ACCOUNTS}(guid'{acme}')", sb.base_url())
    );
}

#[tokio::test]
async fn post_without_prefer_answers_null_properties_and_with_prefer_the_record() {
    let sb = start(config()).await;
    let api = Api::new(&sb);
    let plain = api
        .send(
            Method::POST,
            ACCOUNTS,
            &json!({"Name": "Acme BV", "Email": "info@acme.example"}),
            false,
        )
        .await;
    assert_eq!(plain.status(), 201);
    let location = header(&plain, "location").unwrap();
    let body: Value = plain.json().await.unwrap();
    let d = body["d"].as_object().unwrap();
    assert_eq!(d["__metadata"]["uri"], json!(location));
    for (name, value) in d.iter().filter(|(k, _)| *k != "__metadata") {
        assert!(
            value.is_null(),
            "{name} should be null without Prefer: {value}"
        );
    }
    assert!(d.contains_key("Name") && d.contains_key("ID"));
    let stored = api.get_json(&location).await;
    assert_eq!(stored["d"]["Name"], "Acme BV");
    assert_eq!(
        stored["d"]["Code"], "                 1",
        "first code is 1, padded"
    );

    let rich = api
        .send(
            Method::POST,
            ACCOUNTS,
            &json!({"Name": "Beta", "Code": "25"}),
            true,
        )
        .await;
    assert_eq!(rich.status(), 201);
    let d = rich.json::<Value>().await.unwrap()["d"].clone();
    assert_eq!(d["Name"], "Beta");
    assert_eq!(d["Code"], "                25");
    assert_eq!(d["Division"], json!(DIVISION));
    let modified = d["Modified"].as_str().unwrap();
    let ms: i64 = modified
        .strip_prefix("/Date(")
        .unwrap()
        .strip_suffix(")/")
        .unwrap()
        .parse()
        .unwrap();
    // Amsterdam wall-clock time: one (CET) or two (CEST) hours ahead of UTC.
    let ahead = ms - sb.clock().now_millis();
    assert!(
        ahead == 3_600_000 || ahead == 7_200_000,
        "{modified} vs UTC {}",
        sb.clock().now_millis()
    );

    assert_eq!(sb.control().creates_for("Accounts/info@acme.example"), 1);
    assert_eq!(sb.control().creates_for("Accounts/code:25"), 1);
    let duplicate = api
        .send(
            Method::POST,
            ACCOUNTS,
            &json!({"Name": "Gamma", "Code": "25"}),
            true,
        )
        .await;
    assert_eq!(duplicate.status(), 400);
    error_value(&duplicate.json().await.unwrap());
}

#[tokio::test]
async fn put_and_delete_by_key() {
    let sb = start(config()).await;
    let id = sb.upsert_account(json!({"Name": "Acme BV"})).unwrap();
    let before = sb.account(id).unwrap()["Timestamp"].as_i64().unwrap();
    let api = Api::new(&sb);
    let key = format!("{ACCOUNTS}(guid'{id}')");
    let put = api
        .send(Method::PUT, &key, &json!({"Name": "Acme Holding"}), false)
        .await;
    assert_eq!(put.status(), 204);
    assert_eq!(put.text().await.unwrap(), "");
    let account = sb.account(id).unwrap();
    assert_eq!(account["Name"], "Acme Holding");
    assert!(account["Timestamp"].as_i64().unwrap() > before);
    let unknown = api
        .send(Method::PUT, &key, &json!({"Nickname": "x"}), false)
        .await;
    assert_eq!(unknown.status(), 400, "unknown properties are refused");
    assert_eq!(
        api.send(Method::DELETE, &key, &json!({}), false)
            .await
            .status(),
        204
    );
    assert_eq!(api.get(&key).await.status(), 404);
    assert_eq!(
        api.send(Method::DELETE, &key, &json!({}), false)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn sales_invoices_are_created_with_lines_and_totals() {
    let sb = start(config()).await;
    let customer = sb.upsert_account(json!({"Name": "Acme BV"})).unwrap();
    let api = Api::new(&sb);
    let path = "123456/salesinvoice/SalesInvoices";
    let item = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let body = json!({"OrderedBy": customer, "Journal": "70", "YourRef": "ORDER-1001",
        "SalesInvoiceLines": [{"Item": item, "Quantity": 2, "NetPrice": 12.5}]});
    let created = api.send(Method::POST, path, &body, true).await;
    assert_eq!(created.status(), 201);
    let d = created.json::<Value>().await.unwrap()["d"].clone();
    assert_eq!(d["AmountDC"], json!(25.0));
    assert_eq!(d["Status"], json!(10));
    assert_eq!(d["Type"], json!(8020));
    assert_eq!(d["InvoiceTo"], json!(customer.to_string()));
    let lines = d["SalesInvoiceLines"]["__deferred"]["uri"]
        .as_str()
        .unwrap();
    assert!(lines.ends_with(&format!(
        "SalesInvoices(guid'{}')/SalesInvoiceLines",
        d["InvoiceID"].as_str().unwrap()
    )));
    assert_eq!(sb.control().creates_for("SalesInvoices/ORDER-1001"), 1);
    let listed = api
        .get_json(&format!(
            "{path}?$filter=YourRef eq 'ORDER-1001'&$select=InvoiceID,InvoiceNumber"
        ))
        .await;
    assert_eq!(listed["d"]["results"].as_array().unwrap().len(), 1);
    let orphan = json!({"OrderedBy": "0f8fad5b-d9cb-469f-a165-000000000000", "Journal": "70",
        "SalesInvoiceLines": [{"Item": item}]});
    assert_eq!(
        api.send(Method::POST, path, &orphan, true).await.status(),
        400
    );
}

#[tokio::test]
async fn without_accept_json_the_answer_is_xml() {
    let sb = start(config()).await;
    let token = sb.issue_tokens().access_token;
    let response = client()
        .get(format!("{}/api/v1/current/Me", sb.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("application/atom+xml")
    );
    assert!(response.text().await.unwrap().starts_with("<?xml"));
}

#[tokio::test]
async fn injected_faults_and_schema_switches_reach_the_client() {
    let sb = start(config()).await;
    sb.upsert_account(json!({"Name": "Acme BV", "Code": "25"}))
        .unwrap();
    let api = Api::new(&sb);
    sb.control().add_fault(FaultRule::fail_next(
        "GET /api/v1",
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
    ));
    let failed = api.get("current/Me").await;
    assert_eq!(failed.status(), 500);
    error_value(&failed.json().await.unwrap());
    sb.control().add_fault(FaultRule::fail_next(
        "GET /api/v1",
        1,
        StatusCode::SERVICE_UNAVAILABLE,
    ));
    let gateway = api.get("current/Me").await;
    assert_eq!(gateway.status(), 503);
    assert!(
        header(&gateway, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(api.get("current/Me").await.status(), 200);

    sb.add_schema_change(SchemaChange::RenameField {
        entity: "Accounts".into(),
        from: "Name".into(),
        to: "AccountName".into(),
    });
    let sw = client()
        .post(format!("{}/_sandbox/exact/schema", sb.base_url()))
        .json(&json!({"change": "change_type", "entity": "Accounts", "field": "Code", "to": "number"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sw.status(), 204);
    let body = api
        .get_json(&format!("{ACCOUNTS}?$filter=trim(Code) eq '25'"))
        .await;
    let account = &body["d"]["results"][0];
    assert!(account.get("Name").is_none());
    assert_eq!(account["AccountName"], "Acme BV");
    assert_eq!(account["Code"], json!(25));
    let logged = sb.control().requests();
    assert!(
        logged
            .iter()
            .any(|r| r.path.starts_with("/api/v1/123456/crm/Accounts?") && r.status == 200)
    );
}
