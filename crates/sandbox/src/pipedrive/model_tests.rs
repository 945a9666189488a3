//! Unit tests for person-body validation and formatting (see `model.rs`).

use super::*;
use crate::pipedrive::common::{error_body, format_time, unauthorized_body};
use axum::http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn create(body: Value) -> Result<PersonInput, Rejection> {
    parse_person_input(&body, Mode::Create)
}

#[test]
fn create_requires_a_non_empty_name() {
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"name": "  "}),
        json!({"name": 5}),
    ] {
        let err = create(body).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.message, "Name must be given.");
    }
    assert_eq!(
        create(json!({"name": " Ada Lovelace "}))
            .unwrap()
            .name
            .as_deref(),
        Some("Ada Lovelace")
    );
}

#[test]
fn update_allows_missing_name_but_not_empty_or_add_time() {
    let ok = parse_person_input(&json!({"visible_to": 7}), Mode::Update).unwrap();
    assert_eq!(ok.name, None);
    assert_eq!(ok.visible_to, Some(7));
    let err = parse_person_input(&json!({"name": ""}), Mode::Update).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    let err =
        parse_person_input(&json!({"add_time": "2024-01-01T00:00:00Z"}), Mode::Update).unwrap_err();
    assert!(err.message.contains("add_time"), "{err:?}");
}

#[test]
fn contact_sync_fields_are_forbidden() {
    for field in CONTACT_SYNC_FIELDS {
        let mut body = json!({"name": "A B"});
        body[field] = json!("x");
        let err = create(body).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN, "{field}");
        assert!(err.message.contains(field));
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let err = create(json!({"name": "A", "email": "a@b.c"})).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(err.message.contains("email"));
    let err =
        create(json!({"name": "A", "emails": [{"value": "a@b.c", "kind": "x"}]})).unwrap_err();
    assert!(err.message.contains("kind"));
}

#[test]
fn emails_are_validated_and_get_exactly_one_primary() {
    let input = create(json!({
        "name": "A",
        "emails": [
            {"value": "one@x.io"},
            {"value": "two@x.io", "primary": true, "label": "home"},
            {"value": "three@x.io", "primary": true},
        ]
    }))
    .unwrap();
    let emails = input.emails.unwrap();
    let primaries: Vec<_> = emails
        .iter()
        .filter(|e| e.primary)
        .map(|e| e.value.as_str())
        .collect();
    assert_eq!(primaries, ["two@x.io"]);
    assert_eq!(emails[0].label, "work");
    assert_eq!(emails[1].label, "home");

    let first_becomes_primary =
        create(json!({"name": "A", "phones": [{"value": "+1"}, {"value": "+2"}]})).unwrap();
    assert!(first_becomes_primary.phones.unwrap()[0].primary);

    for bad in [
        json!("a@b.c"),
        json!(["a@b.c"]),
        json!([{"value": ""}]),
        json!([{"value": "a", "primary": "yes"}]),
    ] {
        assert_eq!(
            create(json!({"name": "A", "emails": bad}))
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }
}

#[test]
fn scalar_fields_are_type_checked() {
    assert!(create(json!({"name": "A", "owner_id": "1"})).is_err());
    assert!(create(json!({"name": "A", "owner_id": 0})).is_err());
    assert!(create(json!({"name": "A", "visible_to": 2})).is_err());
    assert!(create(json!({"name": "A", "label_ids": [1, "x"]})).is_err());
    assert!(create(json!({"name": "A", "marketing_status": "maybe"})).is_err());
    assert!(create(json!({"name": "A", "add_time": "2024-01-01 00:00:00"})).is_err());
    let input =
        create(json!({"name": "A", "org_id": null, "add_time": "2024-01-01T02:00:00+02:00"}))
            .unwrap();
    assert_eq!(input.org_id, Some(None));
    assert_eq!(input.add_time.as_deref(), Some("2024-01-01T00:00:00Z"));
}

#[test]
fn custom_field_keys_must_be_hashes() {
    let key = "946947d1b02fd3ef20798d6112ec5d895a686a21";
    let ok = create(json!({"name": "A", "custom_fields": {key: "sb-123"}})).unwrap();
    assert_eq!(ok.custom_fields.unwrap()[key], json!("sb-123"));
    assert!(create(json!({"name": "A", "custom_fields": {"switchboard_id": "x"}})).is_err());
    assert!(create(json!({"name": "A", "custom_fields": {key: []}})).is_err());
}

#[test]
fn names_split_into_first_word_and_rest() {
    assert_eq!(
        split_name("Bob Biller"),
        (Some("Bob".into()), Some("Biller".into()))
    );
    assert_eq!(
        split_name("Mary Ann Smith"),
        (Some("Mary".into()), Some("Ann Smith".into()))
    );
    assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
}

#[test]
fn times_use_the_v2_format() {
    let t = OffsetDateTime::parse("2022-11-24T15:18:35.616+02:00", &Rfc3339).unwrap();
    assert_eq!(format_time(t), "2022-11-24T13:18:35Z");
}

#[test]
fn envelopes_match_the_reference() {
    let live: Value = serde_json::from_str(
        r#"{"success":false,"error":"unauthorized access","errorCode":401,"error_info":"Please check developers.pipedrive.com"}"#,
    )
    .unwrap();
    assert_eq!(unauthorized_body(), live);
    let err = error_body("Person not found");
    assert_eq!(err["success"], json!(false));
    assert_eq!(err["data"], Value::Null);
    assert!(err.as_object().unwrap().contains_key("additional_data"));
}
