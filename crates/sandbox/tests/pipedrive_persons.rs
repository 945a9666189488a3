//! The Pipedrive emulator over real HTTP, in-process: auth, create/get/update/delete, list,
//! search and the per-email create counter, as a connector meets them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

#[tokio::test]
async fn missing_or_wrong_token_gets_the_live_401_body() {
    let sb = sandbox().await;
    let client = Client::new();
    let live = json!({"success":false,"error":"unauthorized access","errorCode":401,"error_info":"Please check developers.pipedrive.com"});
    for token in [None, Some("wrong"), Some("")] {
        let mut req = client.get(url(&sb, "/api/v2/persons/1"));
        if let Some(token) = token {
            req = req.header("x-api-token", token);
        }
        let response = req.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "token {token:?}"
        );
        assert_eq!(body(response).await, live);
    }
    // The v1-era query parameter is not accepted (strict choice on an unconfirmed point).
    let response = client
        .get(format!(
            "{}?api_token={TOKEN}",
            url(&sb, "/api/v2/persons/1")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sb.request_count(), 4);
}

#[tokio::test]
async fn create_get_and_search_by_email() {
    let sb = sandbox().await;
    let client = Client::new();
    let response = create(
        &client,
        &sb,
        json!({"name": "Bob Biller", "emails": [{"value": "bob@biller.com", "primary": true, "label": "work"}],
               "phones": [{"value": "+15550001", "primary": true, "label": "mobile"}]}),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "v2 addPerson answers 200 per the OpenAPI document"
    );
    let created = body(response).await;
    assert_eq!(created["success"], json!(true));
    let person = &created["data"];
    assert_eq!(person["id"], json!(1));
    assert_eq!(person["first_name"], json!("Bob"));
    assert_eq!(person["last_name"], json!("Biller"));
    assert_eq!(person["is_deleted"], json!(false));
    assert_eq!(
        person["emails"],
        json!([{"value": "bob@biller.com", "primary": true, "label": "work"}])
    );
    let add_time = person["add_time"].as_str().unwrap();
    assert_eq!(add_time.len(), "2022-11-24T13:18:55Z".len());
    assert!(
        add_time.ends_with('Z') && add_time.as_bytes()[10] == b'T',
        "{add_time}"
    );

    let got = client
        .get(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(body(got).await, created);

    let search = client
        .get(search_url(
            &sb,
            &[
                ("term", "BOB@biller.com"),
                ("fields", "email"),
                ("exact_match", "true"),
            ],
        ))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), StatusCode::OK);
    let found = body(search).await;
    assert_eq!(found["success"], json!(true));
    assert_eq!(found["additional_data"], json!({"next_cursor": null}));
    let items = found["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["result_score"], json!(1.0));
    let item = &items[0]["item"];
    assert_eq!(item["id"], json!(1));
    assert_eq!(item["type"], json!("person"));
    assert_eq!(
        item["emails"],
        json!(["bob@biller.com"]),
        "search items carry plain strings"
    );
    assert_eq!(item["phones"], json!(["+15550001"]));
    assert_eq!(item["owner"], json!({"id": 1}));

    // A name search does not look at emails; a near-miss email finds nothing.
    for params in [
        [
            ("term", "bob@biller.com"),
            ("fields", "name"),
            ("exact_match", "true"),
        ],
        [
            ("term", "bob@biller.co"),
            ("fields", "email"),
            ("exact_match", "true"),
        ],
    ] {
        let none = client
            .get(search_url(&sb, &params))
            .header("x-api-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(body(none).await["data"]["items"], json!([]), "{params:?}");
    }
    assert_eq!(sb.person_by_email("Bob@Biller.com").unwrap().id, 1);
}

#[tokio::test]
async fn search_term_rules_and_unknown_person() {
    let sb = sandbox().await;
    let client = Client::new();
    let short = client
        .get(search_url(&sb, &[("term", "b")]))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let envelope = body(short).await;
    assert_eq!(envelope["success"], json!(false));
    assert_eq!(envelope["data"], Value::Null);
    let one_exact = client
        .get(search_url(&sb, &[("term", "b"), ("exact_match", "true")]))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(one_exact.status(), StatusCode::OK);
    let missing = client
        .get(url(&sb, "/api/v2/persons/99"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(missing).await["error"], json!("Person not found"));
}

#[tokio::test]
async fn patch_updates_only_what_was_sent() {
    let sb = sandbox().await;
    let client = Client::new();
    let key = "946947d1b02fd3ef20798d6112ec5d895a686a21";
    create(&client, &sb, json!({"name": "Ada Lovelace", "emails": [{"value": "ada@old.example"}], "custom_fields": {key: "sb-1"}}))
        .await;
    let before = sb.person(1).unwrap();
    let response = client
        .patch(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .json(
            &json!({"name": "Ada King", "emails": [{"value": "ada@new.example", "primary": true}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated = body(response).await["data"].clone();
    assert_eq!(updated["name"], json!("Ada King"));
    assert_eq!(updated["last_name"], json!("King"));
    assert_eq!(updated["emails"][0]["value"], json!("ada@new.example"));
    assert_eq!(
        updated["custom_fields"],
        json!({key: "sb-1"}),
        "untouched fields stay"
    );
    assert_eq!(updated["add_time"], json!(before.add_time));
    let after = sb.person(1).unwrap();
    assert_eq!(after.name, "Ada King");
    assert!(sb.person_by_email("ada@old.example").is_none());
    assert_eq!(sb.person_by_email("ada@new.example").unwrap().id, 1);
    assert_eq!(sb.total_creates(), 1, "an update is not a create");

    let forbidden = client
        .patch(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .json(&json!({"job_title": "Countess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn creates_are_counted_per_email_and_rejections_are_not() {
    let sb = sandbox().await;
    let client = Client::new();
    let person = json!({"name": "Dup Licate", "emails": [{"value": "dup@example.com"}]});
    assert_eq!(
        create(&client, &sb, person.clone()).await.status(),
        StatusCode::OK
    );
    assert_eq!(sb.creates_for_email("dup@example.com"), 1);
    assert_eq!(create(&client, &sb, person).await.status(), StatusCode::OK);
    assert_eq!(
        sb.creates_for_email("DUP@example.com"),
        2,
        "the duplicate a sink must never make"
    );
    assert_eq!(sb.creates_for_email("other@example.com"), 0);

    let rejected = [
        (
            json!({"emails": [{"value": "dup@example.com"}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "", "emails": [{"value": "dup@example.com"}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "X", "email": "dup@example.com"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "X", "notes": "hi", "emails": [{"value": "dup@example.com"}]}),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (body_json, status) in rejected {
        let response = create(&client, &sb, body_json.clone()).await;
        assert_eq!(response.status(), status, "{body_json}");
        let envelope = body(response).await;
        assert_eq!(envelope["success"], json!(false));
        assert!(envelope.as_object().unwrap().contains_key("error_info"));
    }
    let not_json = client
        .post(url(&sb, "/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .body(r#"{"name":"X"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(sb.creates_for_email("dup@example.com"), 2);
    assert_eq!(sb.total_creates(), 2);
    assert_eq!(sb.persons().len(), 2);
}

#[tokio::test]
async fn delete_is_soft_and_hides_the_person_from_search() {
    let sb = sandbox().await;
    let client = Client::new();
    create(
        &client,
        &sb,
        json!({"name": "Gone Soon", "emails": [{"value": "gone@example.com"}]}),
    )
    .await;
    let deleted = client
        .delete(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        body(deleted).await,
        json!({"success": true, "data": {"id": 1}})
    );
    assert!(sb.persons().is_empty());
    assert!(sb.person_by_email("gone@example.com").is_none());
    let got = client
        .get(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(body(got).await["data"]["is_deleted"], json!(true));
    let search = client
        .get(search_url(
            &sb,
            &[
                ("term", "gone@example.com"),
                ("fields", "email"),
                ("exact_match", "true"),
            ],
        ))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(body(search).await["data"]["items"], json!([]));
    let again = client
        .delete(url(&sb, "/api/v2/persons/1"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        sb.creates_for_email("gone@example.com"),
        1,
        "history survives the delete"
    );
}

#[tokio::test]
async fn list_paginates_live_persons_with_a_cursor() {
    let sb = sandbox().await;
    let client = Client::new();
    for name in ["A One", "B Two", "C Three"] {
        create(&client, &sb, json!({"name": name})).await;
    }
    client
        .delete(url(&sb, "/api/v2/persons/2"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    let page1 = body(
        client
            .get(url(&sb, "/api/v2/persons?limit=1"))
            .header("x-api-token", TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page1["data"][0]["id"], json!(1));
    let cursor = page1["additional_data"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let page2_url = Url::parse_with_params(
        &url(&sb, "/api/v2/persons"),
        &[("limit", "1"), ("cursor", cursor.as_str())],
    )
    .unwrap();
    let page2 = body(
        client
            .get(page2_url)
            .header("x-api-token", TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        page2["data"][0]["id"],
        json!(3),
        "the deleted person is skipped"
    );
    assert_eq!(page2["additional_data"]["next_cursor"], Value::Null);
}
