//! Exactly once at the targets when canonical records are duplicated: every Pipedrive
//! organization and deal, produced three times (and a changed version once more), is
//! created once and updated after; a sink restart in the middle changes nothing. Telegram
//! sends one notification per order however often the order is redelivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::targets_support as support;

use std::time::Duration;

use serde_json::json;
use support::*;
use switchboard_sandbox::telegram::SAMPLE_GROUP_CHAT;
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox, TelegramConfig, TelegramSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_organizations_and_deals_are_created_once_at_pipedrive() {
    init_logging();
    ensure_stack();
    let crm = PipedriveSandbox::start(PipedriveConfig::new("crm-target-token"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("pd-once");
    let connection = format!(
        "  crm:\n    type: pipedrive\n    base_url: \"{}\"\n    api_token: \"{}\"\n    burst_limit: 40\n",
        crm.base_url(),
        secret_ref(dir.path(), "crm", "crm-target-token")
    );
    let flows = "  - {name: o, from: src.organizations, mapping: test/o.v1, to: organization, sinks: [{target: crm.organizations}]}\n  - {name: d, from: src.deals, mapping: test/d.v1, to: deal, sinks: [{target: crm.deals}]}";
    let yaml = sink_yaml(&prefix, &connection, flows, "");

    const N: usize = 25;
    let org = |i: usize, city: &str| {
        canonical(
            "organization",
            "organizations",
            &format!("o{i}"),
            json!({"name": format!("Org {i}"), "city": city}),
        )
    };
    let deal = |i: usize, value: &str| {
        canonical(
            "deal",
            "deals",
            &format!("d{i}"),
            json!({"title": format!("Deal {i}"), "value": value, "currency": "EUR", "status": "open"}),
        )
    };
    let orgs: Vec<_> = (0..N).map(|i| org(i, "Delft")).collect();
    let deals: Vec<_> = (0..N).map(|i| deal(i, "100.00")).collect();
    // Each record three times, the copies far apart and close together.
    for _ in 0..2 {
        produce(&prefix, "organization", &orgs).await;
        produce(&prefix, "deal", &deals).await;
    }
    let first = CancellationToken::new();
    let sink = switchboard_sink::start(load(&yaml), first.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || crm.organizations().len()
            >= N / 2)
        .await,
        "the first sink made progress"
    );
    first.cancel();
    sink.task.await.unwrap().unwrap();
    produce(&prefix, "organization", &orgs).await;
    produce(&prefix, "deal", &deals).await;
    let changed: Vec<_> = (0..N).map(|i| deal(i, "250.50")).collect();
    produce(&prefix, "deal", &changed).await;

    let second = CancellationToken::new();
    let _guard = second.clone().drop_guard();
    switchboard_sink::start(load(&yaml), second.clone())
        .await
        .unwrap();
    // The two topics are read in whatever order the broker's fetches bring them: wait for
    // both, not for the deals alone.
    let done = eventually(Duration::from_secs(120), || {
        crm.organizations().len() >= N
            && crm.deals().len() >= N
            && crm.deals().iter().all(|d| d.value.as_f64() == Some(250.5))
    })
    .await;
    assert!(
        done,
        "every organization, and every deal with its last value ({} organizations)",
        crm.organizations().len()
    );
    assert_eq!(crm.organizations().len(), N);
    assert_eq!(crm.deals().len(), N);
    for i in 0..N {
        assert_eq!(
            crm.creates_for_organization(&format!("Org {i}")),
            1,
            "Org {i}"
        );
        assert_eq!(crm.creates_for_deal(&format!("Deal {i}")), 1, "Deal {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_order_notifies_telegram_once() {
    init_logging();
    ensure_stack();
    let bot_token = "123456:sandbox-secret";
    let telegram = TelegramSandbox::start(TelegramConfig::new(bot_token))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("tg-once");
    let connection = format!(
        "  ops:\n    type: telegram\n    base_url: \"{}\"\n    bot_token: \"{}\"\n    notify_chat_id: \"{SAMPLE_GROUP_CHAT}\"\n",
        telegram.base_url(),
        secret_ref(dir.path(), "bot", bot_token)
    );
    let flows = "  - {name: orders, from: src.deals, mapping: test/order.v1, to: order, sinks: [{target: ops.messages}]}";
    let yaml = sink_yaml(&prefix, &connection, flows, "");
    let orders: Vec<_> = (0..5)
        .map(|i| {
            canonical(
                "order",
                "deals",
                &format!("order{i}"),
                json!({"number": format!("#100{i}"), "currency": "EUR", "total": "42.00",
                       "lines": [{"sku": null, "title": "Tea", "quantity": "1", "unit_price": "42.00",
                                  "total": "42.00", "tax_rate": null, "product_id": null}]}),
            )
        })
        .collect();
    produce(&prefix, "order", &orders).await;
    produce(&prefix, "order", &orders).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    produce(&prefix, "order", &orders).await;
    let canonical_topic = format!("{prefix}.canonical.order");
    let all = read_topic(
        &kafka_bootstrap(),
        &canonical_topic,
        15,
        Duration::from_secs(20),
        Duration::ZERO,
    );
    assert_eq!(all.len(), 15);
    assert!(
        eventually(Duration::from_secs(60), || group_caught_up(
            &kafka_bootstrap(),
            &format!("{prefix}.sink.ops"),
            &all
        ))
        .await,
        "the sink finished every copy"
    );
    let sent = telegram.messages_to(SAMPLE_GROUP_CHAT);
    assert_eq!(
        sent.len(),
        5,
        "one notification per order: {:?}",
        sent.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    for i in 0..5 {
        assert!(sent.iter().any(|m| m.text.contains(&format!("#100{i}"))));
    }
}

/// A tiny REST API: `POST /things` creates, `PUT /things/{id}` replaces, `DELETE
/// /things/{id}` deletes, `GET /things?switchboard_id=` searches; every call needs the
/// bearer token.
pub(crate) mod rest {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};
    use axum::{Json, Router};
    use serde_json::{Value, json};

    #[derive(Clone, Default)]
    pub struct Api {
        pub things: Arc<Mutex<BTreeMap<u64, Value>>>,
        pub creates: Arc<Mutex<usize>>,
        /// The status of every delete, in order.
        pub deletes: Arc<Mutex<Vec<u16>>>,
    }

    fn authorized(headers: &HeaderMap) -> Result<(), StatusCode> {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer rest-token") => Ok(()),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }

    pub async fn serve(api: Api) -> String {
        let app = Router::new()
            .route("/things", get(search).post(create))
            .route("/things/{id}", put(replace).delete(remove))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn search(
        State(api): State<Api>,
        headers: HeaderMap,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> Result<Json<Value>, StatusCode> {
        authorized(&headers)?;
        let want = q.get("switchboard_id").cloned().unwrap_or_default();
        let items: Vec<Value> = api
            .things
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t["switchboard_id"] == want.as_str())
            .map(|(id, _)| json!({"id": id}))
            .collect();
        Ok(Json(json!({"items": items})))
    }

    async fn create(
        State(api): State<Api>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Result<(StatusCode, Json<Value>), StatusCode> {
        authorized(&headers)?;
        let mut things = api.things.lock().unwrap();
        let id = *api.creates.lock().unwrap() as u64 + 1;
        things.insert(id, body);
        *api.creates.lock().unwrap() += 1;
        Ok((StatusCode::CREATED, Json(json!({"data": {"id": id}}))))
    }

    async fn replace(
        State(api): State<Api>,
        headers: HeaderMap,
        Path(id): Path<u64>,
        Json(body): Json<Value>,
    ) -> Result<StatusCode, StatusCode> {
        authorized(&headers)?;
        match api.things.lock().unwrap().get_mut(&id) {
            Some(thing) => {
                *thing = body;
                Ok(StatusCode::NO_CONTENT)
            }
            None => Err(StatusCode::NOT_FOUND),
        }
    }

    async fn remove(
        State(api): State<Api>,
        headers: HeaderMap,
        Path(id): Path<u64>,
    ) -> Result<StatusCode, StatusCode> {
        authorized(&headers)?;
        let status = match api.things.lock().unwrap().remove(&id) {
            Some(_) => StatusCode::NO_CONTENT,
            None => StatusCode::NOT_FOUND,
        };
        api.deletes.lock().unwrap().push(status.as_u16());
        Ok(status).and_then(|s| if s.is_success() { Ok(s) } else { Err(s) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generic_http_target_upserts_duplicates_once_by_the_switchboard_id() {
    init_logging();
    ensure_stack();
    let api = rest::Api::default();
    let url = rest::serve(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("http-once");
    let connection = format!(
        r#"  things:
    type: http
    target:
      base_url: "{url}"
      path: /things
      update_path: "/things/{{id}}"
      search_path: "/things?switchboard_id={{key}}"
      search_pointer: /items/0/id
      id_pointer: /data/id
      bearer: "{bearer}"
"#,
        bearer = secret_ref(dir.path(), "bearer", "rest-token")
    );
    let flows = "  - {name: c, from: src.persons, mapping: test/c.v1, to: contact, sinks: [{target: things.contacts}]}";
    let yaml = sink_yaml(&prefix, &connection, flows, "");
    let contact = |i: usize, name: &str| {
        canonical(
            "contact",
            "persons",
            &format!("p{i}"),
            json!({"email": format!("c{i}@example.com"), "first_name": name}),
        )
    };
    let first: Vec<_> = (0..10).map(|i| contact(i, "Old")).collect();
    let last: Vec<_> = (0..10).map(|i| contact(i, "New")).collect();
    produce(&prefix, "contact", &first).await;
    produce(&prefix, "contact", &first).await;
    produce(&prefix, "contact", &last).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let done = eventually(Duration::from_secs(60), || {
        let things = api.things.lock().unwrap();
        things.len() == 10 && things.values().all(|t| t["first_name"] == "New")
    })
    .await;
    assert!(done, "every contact arrived with its last version");
    assert_eq!(*api.creates.lock().unwrap(), 10, "each created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generic_http_target_deletes_what_the_source_deleted_unless_it_keeps_deleted_records() {
    init_logging();
    ensure_stack();
    let (api, kept) = (rest::Api::default(), rest::Api::default());
    let (url, kept_url) = (
        rest::serve(api.clone()).await,
        rest::serve(kept.clone()).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("http-delete");
    let bearer = secret_ref(dir.path(), "bearer", "rest-token");
    let connection = |name: &str, url: &str| {
        format!(
            "  {name}:\n    type: http\n    target: {{base_url: \"{url}\", path: /things, update_path: \"/things/{{id}}\", id_pointer: /data/id, bearer: \"{bearer}\"}}\n"
        )
    };
    let connections = connection("things", &url) + &connection("kept", &kept_url);
    let flows = "  - {name: c, from: src.persons, mapping: test/c.v1, to: contact, sinks: [{target: things.contacts}, {target: kept.contacts}]}";
    let yaml = sink_yaml(&prefix, &connections, flows, "") + "  keep_deleted: [kept]\n";
    let contact = |i: usize, deleted: bool| {
        canonical(
            "contact",
            "persons",
            &format!("p{i}"),
            json!({"email": format!("h{i}@example.com"), "deleted": deleted}),
        )
    };
    produce(&prefix, "contact", &[contact(0, false), contact(1, false)]).await;
    produce(&prefix, "contact", &[contact(0, true), contact(0, true)]).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();

    // The deletion's outcome, not p0's create before it (which the topic may hold alone).
    let gone = crate::deletes::outcome_of(&prefix, contact(0, true)["id"].as_str().unwrap(), |o| {
        o.connection == "kept" && o.reason.is_some()
    })
    .await;
    assert!(
        gone.reason
            .as_deref()
            .is_some_and(|r| r.contains("sink.keep_deleted")),
        "{gone:?}"
    );
    assert!(
        eventually(Duration::from_secs(60), || api
            .deletes
            .lock()
            .unwrap()
            .len()
            == 2)
        .await,
        "both deliveries of the deletion reached the API"
    );
    assert_eq!(*api.deletes.lock().unwrap(), [204, 404]);
    let things = api.things.lock().unwrap().clone();
    assert_eq!(things.len(), 1, "p0 deleted, p1 stays: {things:?}");
    assert_eq!(things.values().next().unwrap()["email"], "h1@example.com");
    assert_eq!(
        kept.things.lock().unwrap().len(),
        2,
        "the kept target deleted nothing"
    );
    assert!(kept.deletes.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_of_a_record_gone_at_the_target_is_dead_lettered_when_the_flow_says_so() {
    init_logging();
    ensure_stack();
    let api = rest::Api::default();
    let url = rest::serve(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("http-missing");
    let connection = format!(
        "  things:\n    type: http\n    target: {{base_url: \"{url}\", path: /things, update_path: \"/things/{{id}}\", id_pointer: /data/id, bearer: \"{}\"}}\n",
        secret_ref(dir.path(), "bearer", "rest-token")
    );
    let flows = "  - {name: c, from: src.persons, mapping: test/c.v1, to: contact, sinks: [{target: things.contacts, on_missing: dead_letter}]}";
    let yaml = sink_yaml(&prefix, &connection, flows, "");
    let contact = |name: &str| {
        canonical(
            "contact",
            "persons",
            "p0",
            json!({"email": "m0@example.com", "first_name": name}),
        )
    };
    produce(&prefix, "contact", &[contact("Old")]).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || api.things.lock().unwrap().len()
            == 1)
        .await
    );

    // Someone deletes it at the target; the next change of the record finds it gone.
    api.things.lock().unwrap().clear();
    produce(&prefix, "contact", &[contact("New")]).await;
    let dlq = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.dlq.things"),
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(dlq.len(), 1, "dead-lettered, once");
    let message = header(&dlq[0], "sb.error.message").unwrap();
    assert!(message.contains("on_missing is dead_letter"), "{message}");
    assert!(api.things.lock().unwrap().is_empty(), "not created again");
    assert_eq!(*api.creates.lock().unwrap(), 1);
}
