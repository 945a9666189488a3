//! The generic REST poller end to end on the real broker, against a small REST API served by
//! this test: `orders` changed since a time (Unix ms, records under `/data`, newest first,
//! two per page, further pages by `Link` header, bearer token), and an `events` feed paged by
//! an opaque cursor that is null at the end. Every record and every change is published,
//! changes made between polls are picked up, and nothing is published again once caught up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use switchboard_core::avro::AvroCodec;
use switchboard_core::config::RegistryConfig;
use switchboard_core::envelope::ChangeEvent;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "generic-api-token";

#[derive(Default)]
struct Api {
    base: String,
    orders: Mutex<Vec<(u64, i64, String)>>,
    events: Mutex<Vec<u64>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str())
}

async fn orders(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let since: i64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let page: usize = q.get("page").and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut matching: Vec<_> = api
        .orders
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, updated, _)| *updated >= since)
        .cloned()
        .collect();
    matching.sort_by_key(|o| std::cmp::Reverse(o.0)); // newest ID first: not by change time
    let data: Vec<_> = matching
        .iter()
        .skip(page * 2)
        .take(2)
        .map(|(id, updated, status)| serde_json::json!({"id": id, "updated_ms": updated, "status": status}))
        .collect();
    let mut out = HeaderMap::new();
    if matching.len() > (page + 1) * 2 {
        let link = format!(
            "<{}/orders?since={since}&page={}>; rel=\"next\"",
            api.base,
            page + 1
        );
        out.insert("link", link.parse().unwrap());
    }
    (out, axum::Json(serde_json::json!({ "data": data }))).into_response()
}

async fn events(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let after: u64 = q.get("after").and_then(|s| s.parse().ok()).unwrap_or(0);
    let all = api.events.lock().unwrap().clone();
    let page: Vec<u64> = all.iter().copied().filter(|s| *s > after).take(3).collect();
    let more = all.iter().filter(|s| **s > after).count() > page.len();
    let next = page.last().filter(|_| more).map(|s| s.to_string());
    let items: Vec<_> = page
        .iter()
        .map(|s| serde_json::json!({"seq": s, "kind": "note"}))
        .collect();
    axum::Json(serde_json::json!({ "items": items, "next": next })).into_response()
}

async fn decode(codec: &AvroCodec, topic: &str) -> Vec<ChangeEvent> {
    let bootstrap = kafka_bootstrap();
    let size = usize::try_from(topic_size(&bootstrap, topic)).unwrap();
    let mut out = Vec::new();
    for r in read_topic(
        &bootstrap,
        topic,
        size,
        Duration::from_secs(20),
        Duration::ZERO,
    ) {
        out.push(
            codec
                .decode(rdkafka::Message::payload(&r).unwrap())
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_generic_poller_follows_time_and_cursor_feeds_without_gaps_or_repeats() {
    init_logging();
    ensure_stack();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    let api = Arc::new(Api {
        base: base.clone(),
        ..Api::default()
    });
    for id in 1..=5 {
        api.orders
            .lock()
            .unwrap()
            .push((id, 1_000 * i64::try_from(id).unwrap(), "open".into()));
    }
    api.events.lock().unwrap().extend(1..=4);
    let app = Router::new()
        .route("/api/orders", get(orders))
        .route("/api/events", get(events))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("generic");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  api:
    type: http
    poll:
      base_url: "{base}"
      every_secs: 1
      auth: {{bearer: "{token}"}}
      entities:
        orders: {{path: /orders, mode: updated_since, since_param: since, time_format: unix_ms,
                  records_pointer: /data, updated_pointer: /updated_ms, link_pagination: true}}
        events: {{path: /events, mode: page_cursor, records_pointer: /items, id_pointer: /seq,
                  next_cursor_pointer: /next, cursor_param: after}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        token = secret_ref(dir.path(), "token", TOKEN),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let bootstrap = kafka_bootstrap();
    let (orders_topic, events_topic) = (
        format!("{prefix}.raw.api.orders"),
        format!("{prefix}.raw.api.events"),
    );
    assert!(
        eventually(Duration::from_secs(120), || {
            topic_size(&bootstrap, &orders_topic) >= 5 && topic_size(&bootstrap, &events_topic) >= 4
        })
        .await,
        "the first walk published every order and event"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        topic_size(&bootstrap, &orders_topic),
        5,
        "caught up: no repeats"
    );
    assert_eq!(
        topic_size(&bootstrap, &events_topic),
        4,
        "the feed's end is not re-published"
    );

    // Changes between polls: two orders change, two events are added.
    for (id, updated, status) in api.orders.lock().unwrap().iter_mut() {
        if *id == 2 || *id == 4 {
            *updated += 10_000;
            *status = "paid".into();
        }
    }
    api.events.lock().unwrap().extend([5, 6]);
    assert!(
        eventually(Duration::from_secs(30), || {
            topic_size(&bootstrap, &orders_topic) >= 7 && topic_size(&bootstrap, &events_topic) >= 6
        })
        .await,
        "the changes arrived"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let codec = AvroCodec::new(&RegistryConfig {
        url: registry_url(),
        basic_auth: None,
    })
    .unwrap();
    let orders = decode(&codec, &orders_topic).await;
    assert_eq!(
        orders.len(),
        7,
        "five orders and two changes, nothing twice"
    );
    let versions: HashSet<(String, i64)> = orders
        .iter()
        .map(|e| (e.record_id.clone(), e.source_timestamp.unwrap()))
        .collect();
    for (id, updated, _) in api.orders.lock().unwrap().iter() {
        assert!(versions.contains(&(id.to_string(), *updated)), "order {id}");
    }
    assert!(
        versions.contains(&("2".to_owned(), 2_000)),
        "the first version too"
    );
    let events = decode(&codec, &events_topic).await;
    let mut seqs: Vec<u64> = events
        .iter()
        .map(|e| e.record_id.parse().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "every event of the feed, once");
    assert!(events.iter().all(|e| e.system == "http"));

    let cursors = switchboard_core::kafka::read_table(
        &load(&yaml).kafka,
        &format!("{prefix}.cursors"),
        Duration::from_secs(30),
    )
    .unwrap();
    let orders_cursor: serde_json::Value = serde_json::from_slice(&cursors["api/orders"]).unwrap();
    assert_eq!(orders_cursor["changed_at"], 14_000);
    let events_cursor: serde_json::Value = serde_json::from_slice(&cursors["api/events"]).unwrap();
    assert_eq!(events_cursor["token"], "3");
}
