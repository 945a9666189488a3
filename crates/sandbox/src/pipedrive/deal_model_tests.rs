//! Unit tests for deal-body validation and the status rules (see `deal_model.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use axum::http::StatusCode;
use serde_json::json;

fn blank() -> Deal {
    Deal {
        id: 1,
        title: "T".to_owned(),
        creator_user_id: 1,
        owner_id: 1,
        person_id: None,
        org_id: None,
        pipeline_id: PIPELINE_ID,
        stage_id: 1,
        value: Number::from(0),
        currency: "USD".to_owned(),
        add_time: "2025-01-01T00:00:00Z".to_owned(),
        update_time: "2025-01-01T00:00:00Z".to_owned(),
        stage_change_time: None,
        is_deleted: false,
        is_archived: false,
        archive_time: None,
        status: "open".to_owned(),
        probability: None,
        lost_reason: None,
        visible_to: 3,
        close_time: None,
        won_time: None,
        lost_time: None,
        expected_close_date: None,
        label_ids: vec![],
        origin: "API".to_owned(),
        origin_id: None,
        channel: None,
        channel_id: None,
        arr: None,
        mrr: None,
        acv: None,
        custom_fields: Map::new(),
    }
}

fn update(body: Value) -> Result<DealInput, Rejection> {
    parse_deal_input(&body, Mode::Update)
}

#[test]
fn create_requires_a_title() {
    let err = parse_deal_input(&json!({"value": 5}), Mode::Create).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(err.message.contains("title"));
    assert!(parse_deal_input(&json!({"title": ""}), Mode::Create).is_err());
    assert!(parse_deal_input(&json!({"title": "Big one"}), Mode::Create).is_ok());
}

#[test]
fn fields_are_type_checked() {
    for bad in [
        json!({"value": "100"}),
        json!({"currency": "eur"}),
        json!({"status": "deleted"}),
        json!({"probability": 101}),
        json!({"stage_id": 9}),
        json!({"pipeline_id": 2}),
        json!({"expected_close_date": "2025-13-01"}),
        json!({"archive_time": "2025-01-01T00:00:00Z"}),
        json!({"is_deleted": true}),
        json!({"weighted_value": 1}),
    ] {
        assert!(update(bad.clone()).is_err(), "{bad}");
    }
    let ok = update(
        json!({"value": 1500.5, "currency": "EUR", "probability": null,
        "archive_time": "2025-01-02 03:04:05", "expected_close_date": "2025-06-30"}),
    )
    .unwrap();
    assert_eq!(ok.value, Some(Number::from_f64(1500.5).unwrap()));
    assert_eq!(ok.probability, Some(None));
    assert_eq!(
        ok.archive_time,
        Some(Some("2025-01-02T03:04:05Z".to_owned()))
    );
}

#[test]
fn lost_reason_needs_status_lost() {
    let mut deal = blank();
    let err = deal
        .apply(
            update(json!({"lost_reason": "Too pricey"})).unwrap(),
            "2025-02-01T00:00:00Z",
        )
        .unwrap_err();
    assert!(err.message.contains("lost_reason"), "{err:?}");
    assert_eq!(deal, blank(), "a refused update changes nothing");
    deal.apply(
        update(json!({"status": "lost", "lost_reason": "Too pricey"})).unwrap(),
        "2025-02-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(deal.status, "lost");
    assert_eq!(deal.lost_reason.as_deref(), Some("Too pricey"));
    assert_eq!(deal.lost_time.as_deref(), Some("2025-02-01T00:00:00Z"));
    assert_eq!(deal.close_time.as_deref(), Some("2025-02-01T00:00:00Z"));
}

#[test]
fn winning_stamps_times_and_reopening_clears_them() {
    let mut deal = blank();
    deal.apply(
        update(json!({"status": "won"})).unwrap(),
        "2025-03-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(deal.won_time.as_deref(), Some("2025-03-01T00:00:00Z"));
    assert_eq!(deal.close_time.as_deref(), Some("2025-03-01T00:00:00Z"));
    assert!(update(json!({"won_time": "x"})).is_err());
    deal.apply(
        update(json!({"status": "open"})).unwrap(),
        "2025-03-02T00:00:00Z",
    )
    .unwrap();
    assert_eq!((deal.won_time, deal.close_time), (None, None));
}

#[test]
fn stage_changes_stamp_stage_change_time() {
    let mut deal = blank();
    deal.apply(
        update(json!({"stage_id": 3})).unwrap(),
        "2025-04-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(
        deal.stage_change_time.as_deref(),
        Some("2025-04-01T00:00:00Z")
    );
    assert_eq!(stage_name(deal.stage_id), Some("Demo Scheduled"));
}
