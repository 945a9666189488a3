//! The console's own alerts, partial failures and audit trace on the real stack.
//!
//! - A connection whose DLQ grows gets a `dlq_growth` alert in the Telegram sandbox, and
//!   its resolve once the DLQ stopped growing for a window; a pinned API version near its
//!   end of support gets `api_version_eol`; `switchboard status` shows the same state.
//! - A flow instance dead-lettered at one target and delivered at another is listed by
//!   `/api/v1/partial-failures` until the failed target is delivered too; the trace of a
//!   record shows its API calls from `sb.audit` among the other stages, in time order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_core::audit::{ApiCall, DeliveryOutcome, DeliveryState};
use switchboard_core::kafka::{Cleanup, TopicSpec, ensure_topics};
use switchboard_sandbox::telegram::SAMPLE_USER_CHAT;
use switchboard_sandbox::{PipedriveConfig, StatusCode, TelegramConfig, TelegramSandbox};
use switchboard_tests::*;

const BOT: &str = "4242:bot-secret-token-c3d0";

/// The world's YAML plus a Telegram connection and the console with `rules`.
fn console_yaml(world: &World, dir: &std::path::Path, telegram_url: &str, rules: &str) -> String {
    let tg = format!(
        "connections:\n  tg:\n    type: telegram\n    base_url: \"{telegram_url}\"\n    bot_token: \"{}\"\n",
        secret_ref(dir, "bot", BOT)
    );
    let yaml = world.yaml.replacen("connections:\n", &tg, 1);
    format!(
        "{yaml}console:\n  listen: \"127.0.0.1:0\"\n  alerts: {{telegram: tg, chat_id: {SAMPLE_USER_CHAT}}}\n  rules: {rules}\n"
    )
}

/// What the operators' chat received, oldest first.
fn telegram_texts(telegram: &TelegramSandbox) -> Vec<String> {
    telegram
        .messages_to(SAMPLE_USER_CHAT)
        .into_iter()
        .map(|m| m.text)
        .collect()
}

async fn get(url: &str) -> serde_json::Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.json().await.unwrap()
}

fn crm(overview: &serde_json::Value) -> serde_json::Value {
    overview["connections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "crm").cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_growing_dlq_and_a_retiring_api_version_alert_on_telegram_and_resolve() {
    let world = World::new("console-rules", PipedriveConfig::new(CRM_TOKEN)).await;
    let telegram = TelegramSandbox::start(TelegramConfig::new(BOT))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;
    let send = |id: u64, email: Option<&'static str>| {
        let shop = &shop;
        async move {
            let status = shop
                .send(
                    "customers/create",
                    &customer_body(id, email, "Grace", "Hopper"),
                    &format!("wh-{id}"),
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
        }
    };
    send(7000, Some("grace@example.com")).await;
    send(7998, None).await;
    // In the DLQ before the console starts, so its first depth is 1 (not a growth from 0).
    let kafka = load(&world.yaml).kafka;
    let mut found = 0;
    for _ in 0..240 {
        if let Ok(dlq) = switchboard_core::dlq::Dlq::load(&kafka, "crm").await {
            found = dlq.entries().len();
            if found > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(found, 1, "the first poison record reached the DLQ");

    let retiring = (time::OffsetDateTime::now_utc() + time::Duration::days(10)).date();
    let rules = format!(
        "{{dlq_window_secs: 8, api_version_warn_days: 30, api_versions: {{shopify: {{'2025-01': '{retiring}'}}}}}}"
    );
    let yaml = console_yaml(&world, dir.path(), &telegram.base_url(), &rules);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let console = switchboard_console::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", console.addr);
    let texts = || telegram_texts(&telegram);
    let has = |prefix: &str| texts().iter().any(|t| t.starts_with(prefix));

    // The console has seen the first DLQ entry before the DLQ grows.
    let mut seen = false;
    for _ in 0..240 {
        if crm(&get(&format!("{base}/api/v1/connections")).await)["dlq_depth"] == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(seen, "the first poison record reached the DLQ");
    assert!(
        eventually(Duration::from_secs(30), || has(
            "[FIRING] api_version_eol on shop"
        ))
        .await,
        "{:?}",
        texts()
    );
    assert!(!has("[FIRING] dlq_growth"), "no growth yet: {:?}", texts());

    send(7999, None).await;
    assert!(
        eventually(Duration::from_secs(120), || has(
            "[FIRING] dlq_growth on crm"
        ))
        .await,
        "the DLQ growth reached Telegram: {:?}",
        texts()
    );
    let fired = texts()
        .into_iter()
        .find(|t| t.starts_with("[FIRING] dlq_growth on crm"))
        .unwrap();
    assert!(fired.contains("from 1 to 2"), "{fired}");
    assert!(
        eventually(Duration::from_secs(60), || has(
            "[RESOLVED] dlq_growth on crm"
        ))
        .await,
        "resolved once the DLQ stopped growing: {:?}",
        texts()
    );
    let all = texts();
    assert_eq!(
        all.iter().filter(|t| t.contains("dlq_growth")).count(),
        2,
        "one firing, one resolve: {all:?}"
    );
    assert!(all.iter().all(|t| !t.contains(BOT)));

    // `switchboard status` shows what the dashboard shows.
    let report = switchboard_cli::status::run(&switchboard_cli::status::StatusArgs {
        console: base.clone(),
    })
    .await
    .unwrap();
    let row = report.connections.iter().find(|c| c.name == "crm").unwrap();
    assert_eq!((row.state.as_str(), row.dlq_depth), ("degraded", Some(2)));
    use switchboard_cli::output::Report;
    assert!(!report.passed(), "a degraded connection fails the command");
    assert!(
        report
            .text()
            .lines()
            .any(|l| l.starts_with("crm") && l.contains("degraded"))
    );
    shutdown.cancel();
}

async fn produce(prefix: &str, topic: &str, key: &str, value: &impl serde::Serialize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&format!("{prefix}.{topic}"))
                .key(key)
                .payload(&serde_json::to_string(value).unwrap()),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .unwrap();
}

fn outcome(connection: &str, state: DeliveryState, at: i64) -> DeliveryOutcome {
    DeliveryOutcome {
        at,
        canonical_id: "c-42".into(),
        entity: "order".into(),
        record_id: Some("ord-42".into()),
        connection: connection.into(),
        state,
        native_id: (state == DeliveryState::Delivered).then(|| format!("{connection}-native-1")),
        reason: (state == DeliveryState::DeadLettered).then(|| "data: VAT code unknown".into()),
        source_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_failures_are_listed_until_redelivered_and_calls_are_traced() {
    let world = World::new("console-partial", PipedriveConfig::new(CRM_TOKEN)).await;
    let config = load(&world.yaml);
    let p = world.prefix.clone();
    ensure_topics(
        &config.kafka,
        &[
            TopicSpec::new(format!("{p}.deliveries"), Cleanup::Compact),
            TopicSpec::new(
                format!("{p}.audit"),
                Cleanup::Delete(Duration::from_secs(86_400)),
            ),
        ],
    )
    .await
    .unwrap();
    let now = switchboard_core::lag::now_millis();
    for o in [
        outcome("crm", DeliveryState::Delivered, now - 3000),
        outcome("erp", DeliveryState::DeadLettered, now - 2000),
    ] {
        produce(&p, "deliveries", &o.key(), &o).await;
    }
    for (attempt, status) in [(1, 422), (2, 201)] {
        let call = ApiCall {
            at: now - 2500 + attempt as i64 * 100,
            service: "sink".into(),
            connection: "crm".into(),
            record_id: Some("ord-42".into()),
            canonical_id: Some("c-42".into()),
            attempt,
            method: "POST".into(),
            url: "http://127.0.0.1:9/api/v2/persons?api_token=***".into(),
            status: Some(status),
            duration_ms: 12,
            // A slipped secret: the console masks it again.
            request_body: Some(format!(
                "{{\"name\":\"Grace\",\"api_token\":\"{CRM_TOKEN}\"}}"
            )),
            response_body: Some("{\"success\":true}".into()),
            error: None,
        };
        produce(&p, "audit", "ord-42", &call).await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let console = switchboard_console::start(load(&world.yaml), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", console.addr);

    let listed =
        || async { get(&format!("{base}/api/v1/partial-failures")).await["flows"].clone() };
    let mut flows = serde_json::Value::Null;
    for _ in 0..120 {
        flows = listed().await;
        if flows.as_array().is_some_and(|f| !f.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(flows[0]["canonical_id"], "c-42", "{flows}");
    assert_eq!(flows[0]["delivered"][0]["native_id"], "crm-native-1");
    assert_eq!(flows[0]["failed"][0]["connection"], "erp");
    assert_eq!(flows[0]["failed"][0]["reason"], "data: VAT code unknown");
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("c-42") && page.contains("VAT code unknown"),
        "on the dashboard"
    );

    let trace = get(&format!("{base}/api/v1/trace/ord-42")).await;
    let calls: Vec<(i64, i64)> = trace["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == "call")
        .map(|s| {
            (
                s["detail"]["attempt"].as_i64().unwrap(),
                s["detail"]["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(calls, [(1, 422), (2, 201)], "{trace}");
    let page = reqwest::get(format!("{base}/trace?id=ord-42"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("stage-call") && page.contains("Grace"),
        "{page}"
    );
    assert!(!page.contains(CRM_TOKEN) && !trace.to_string().contains(CRM_TOKEN));

    // The redrive delivered it at erp: the instance no longer needs review.
    let redelivered = outcome("erp", DeliveryState::Delivered, now);
    produce(&p, "deliveries", &redelivered.key(), &redelivered).await;
    let mut gone = false;
    for _ in 0..120 {
        if listed().await.as_array().is_some_and(Vec::is_empty) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "the redelivered instance left the list");
    shutdown.cancel();
}

/// The retry backlog the dashboard shows is the records waiting in the connection's tiers:
/// a record that failed its in-place attempts with a 500 sits in a one-hour tier, and the
/// crm row counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_waiting_in_a_retry_tier_is_the_retry_backlog() {
    let world = World::new("console-backlog", unthrottled_pipedrive(CRM_TOKEN)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = pipedrive_sink_yaml(
        &world.prefix,
        dir.path(),
        &world.pipedrive.base_url(),
        CRM_TOKEN,
        UNPACED_PIPEDRIVE,
        "in_place_attempts: 1, retry_tiers_secs: [3600], circuit_after_records: 100",
    );
    let config = load(&yaml);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_sink::start(config.clone(), shutdown.clone())
        .await
        .unwrap();
    let writer = ContactWriter::new(&world.prefix);
    writer
        .send(&shop_contact(1, "ok@example.com", "Ada", "Ok"), 1)
        .await;
    assert!(
        eventually(Duration::from_secs(60), || world.pipedrive.persons().len()
            == 1)
        .await
    );
    let backlog = || {
        switchboard_console::overview::collect(&config)
            .unwrap()
            .connections
            .into_iter()
            .find(|c| c.name == "crm")
            .unwrap()
            .retry_backlog
    };
    assert_eq!(backlog(), Some(0));

    world
        .pipedrive
        .control()
        .add_fault(switchboard_sandbox::control::FaultRule::fail_next(
            "POST /api/v2/persons",
            1,
            StatusCode::INTERNAL_SERVER_ERROR,
        ));
    writer
        .send(&shop_contact(2, "later@example.com", "Ada", "Later"), 1)
        .await;
    let mut seen = None;
    for _ in 0..60 {
        seen = backlog();
        if seen == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(seen, Some(1), "the record waiting in the one-hour tier");
    assert_eq!(world.pipedrive.persons().len(), 1);
}

/// A transformer held on purpose (a fault hook of debug builds) while webhooks keep coming:
/// its `/readyz` fails naming the stall, the console shows the Shopify connection `stalled`
/// and the `stalled` alert reaches Telegram, all within the configured bounds; released,
/// the record flows and everything clears.
#[cfg(debug_assertions)] // the hook is not in release builds
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_transformer_fails_readiness_and_the_console_alerts() {
    let world = World::new("console-stall", PipedriveConfig::new(CRM_TOKEN)).await;
    let telegram = TelegramSandbox::start(TelegramConfig::new(BOT))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}health: {{stall_after_secs: 4}}\n",
        console_yaml(
            &world,
            dir.path(),
            &telegram.base_url(),
            "{no_sync_minutes: 0, stalled_secs: 4}"
        )
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let shop = switchboard_sandbox::ShopifyWebhooks::new(
        format!("http://{}/webhooks/shop", ingest.addr),
        SHOP_SECRET,
        "acme.myshopify.com",
        "2025-01",
    )
    .unwrap();
    let transformer = switchboard_transformer::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let console = switchboard_console::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let send = |id: u64, email: &'static str| {
        let shop = &shop;
        async move {
            let status = shop
                .send(
                    "customers/create",
                    &customer_body(id, Some(email), "Stan", "Still"),
                    &format!("wh-{id}"),
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
        }
    };
    send(8100, "moving@example.com").await;
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email("moving@example.com")
            .is_some())
        .await,
        "the flow works before the stall"
    );
    let readyz = format!("http://{}/readyz", transformer.admin);
    let ready = || async {
        let r = reqwest::get(&readyz).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);

    switchboard_transformer::faults::hold(&world.prefix, true);
    send(8101, "stuck@example.com").await;
    let mut answer = (0, String::new());
    for _ in 0..240 {
        answer = ready().await;
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        answer.0, 503,
        "readiness fails while the transformer is held"
    );
    assert!(answer.1.contains("stalled"), "{}", answer.1);

    let base = format!("http://{}", console.addr);
    let mut state = String::new();
    for _ in 0..240 {
        let overview = get(&format!("{base}/api/v1/connections")).await;
        state = overview["connections"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "shop"))
            .map(|c| c["state"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if state == "stalled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "stalled", "the console shows the stall");
    let texts = || telegram_texts(&telegram);
    let has = |prefix: &str| texts().iter().any(|t| t.starts_with(prefix));
    assert!(
        eventually(Duration::from_secs(60), || has("[FIRING] stalled on shop")).await,
        "{:?}",
        texts()
    );

    switchboard_transformer::faults::hold(&world.prefix, false);
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email("stuck@example.com")
            .is_some())
        .await,
        "released, the held record flows"
    );
    let mut back = 0;
    for _ in 0..240 {
        back = ready().await.0;
        if back == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(back, 200, "ready again once it moves");
    assert!(
        eventually(Duration::from_secs(60), || has(
            "[RESOLVED] stalled on shop"
        ))
        .await,
        "{:?}",
        texts()
    );
}
