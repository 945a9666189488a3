//! The console on the real stack.
//!
//! - Roles: reads need the read token when one is set; redrive, discard and replay are 401
//!   without a credential and 403 with the read-only one; the admin token works.
//! - No configured secret (webhook secret, API token, bot token, console tokens) appears in
//!   any page or API answer, with a real flow, a DLQ entry and a trace on screen.
//! - An alert firing in `sb.alerts` reaches the Telegram sandbox once even when written
//!   twice, and its resolve too (the time each took is printed; a timed assertion failed
//!   under a loaded CI, and timings belong in `make bench`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use switchboard_sandbox::telegram::SAMPLE_USER_CHAT;
use switchboard_sandbox::{PipedriveConfig, StatusCode, TelegramConfig, TelegramSandbox};
use switchboard_tests::*;

const ADMIN: &str = "console-admin-secret-7d1f";
const READ: &str = "console-read-secret-2b9c";
const BOT: &str = "4242:bot-secret-token-a81e";

/// The world's YAML plus a Telegram connection and the console section.
fn console_yaml(world: &World, dir: &std::path::Path, telegram_url: &str, read: bool) -> String {
    let tg = format!(
        "connections:\n  tg:\n    type: telegram\n    base_url: \"{telegram_url}\"\n    bot_token: \"{}\"\n",
        secret_ref(dir, "bot", BOT)
    );
    let read_token = if read {
        format!("  read_token: \"{}\"\n", secret_ref(dir, "read", READ))
    } else {
        String::new()
    };
    let yaml = world.yaml.replacen("connections:\n", &tg, 1);
    format!(
        "{yaml}console:\n  listen: \"127.0.0.1:0\"\n  admin_token: \"{}\"\n{read_token}  alerts: {{telegram: tg, chat_id: {SAMPLE_USER_CHAT}}}\n",
        secret_ref(dir, "admin", ADMIN)
    )
}

async fn alert(prefix: &str, status: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    let value = serde_json::json!({"kind": "auth_failed", "connection": "crm", "status": status,
        "message": "credentials refused twice", "at": switchboard_core::lag::now_millis()});
    producer
        .send(
            FutureRecord::to(&format!("{prefix}.alerts"))
                .key("crm")
                .payload(&value.to_string()),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_reach_telegram_once_and_resolve() {
    let world = World::new("console-alerts", PipedriveConfig::new(CRM_TOKEN)).await;
    let telegram = TelegramSandbox::start(TelegramConfig::new(BOT))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = console_yaml(&world, dir.path(), &telegram.base_url(), true);
    let config = load(&yaml);
    switchboard_core::kafka::ensure_topics(
        &config.kafka,
        &[switchboard_core::kafka::TopicSpec::new(
            format!("{}.alerts", world.prefix),
            switchboard_core::kafka::Cleanup::Delete(Duration::from_secs(86_400)),
        )],
    )
    .await
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _console = switchboard_console::start(config, shutdown.clone())
        .await
        .unwrap();

    let texts = || -> Vec<String> {
        telegram
            .messages_to(SAMPLE_USER_CHAT)
            .into_iter()
            .map(|m| m.text)
            .collect()
    };
    let fired = Instant::now();
    alert(&world.prefix, "firing").await;
    alert(&world.prefix, "firing").await; // a repeat: not sent again
    assert!(
        eventually(Duration::from_secs(60), || !texts().is_empty()).await,
        "the firing alert reached Telegram"
    );
    eprintln!("firing alert in Telegram after {:?}", fired.elapsed());
    assert!(
        texts()[0].starts_with("[FIRING] auth_failed on crm"),
        "{:?}",
        texts()
    );

    let resolved = Instant::now();
    alert(&world.prefix, "resolved").await;
    assert!(
        eventually(Duration::from_secs(60), || texts().len() >= 2).await,
        "the resolve reached Telegram: {:?}",
        texts()
    );
    eprintln!("resolve in Telegram after {:?}", resolved.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = texts();
    assert_eq!(all.len(), 2, "deduplicated: {all:?}");
    assert!(all[1].starts_with("[RESOLVED] auth_failed on crm"));
    assert!(all.iter().all(|t| !t.contains(BOT)));
    shutdown.cancel();
}

/// Starts a flow with traffic: `n` customers delivered, and one without e-mail in the DLQ.
pub async fn traffic(world: &World, n: u64) {
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;
    for i in 0..n {
        let email = format!("grace{i}@example.com");
        let status = shop
            .send(
                "customers/create",
                &customer_body(7000 + i, Some(&email), "Grace", "Hopper"),
                &format!("wh-{i}"),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    let status = shop
        .send(
            "customers/create",
            &customer_body(7999, None, "Grace", "Hopper"),
            "wh-poison",
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let last = format!("grace{}@example.com", n - 1);
    assert!(
        eventually(Duration::from_secs(120), || world
            .pipedrive
            .person_by_email(&last)
            .is_some())
        .await
    );
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = http.request(method, url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request
        .header("content-type", "application/json")
        .body("{\"dry_run\": true, \"group\": \"g\", \"topics\": []}")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_actions_need_the_admin_role_and_no_secret_is_shown() {
    let world = World::new("console-auth", PipedriveConfig::new(CRM_TOKEN)).await;
    let telegram = TelegramSandbox::start(TelegramConfig::new(BOT))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    traffic(&world, 3).await;
    let yaml = console_yaml(&world, dir.path(), &telegram.base_url(), true);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let console = switchboard_console::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", console.addr);
    let http = reqwest::Client::new();
    use reqwest::Method;

    // The overview shows the crm delivery once gathered.
    let mut overview = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, body) = call(
            &http,
            Method::GET,
            &format!("{base}/api/v1/connections"),
            Some(READ),
        )
        .await;
        assert_eq!(status, 200);
        overview = serde_json::from_str(&body).unwrap();
        let crm = overview["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "crm")
            .cloned();
        if crm.is_some_and(|c| c["last_sync_at"].is_i64() && c["dlq_depth"] == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let names: Vec<&str> = overview["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crm", "shop", "tg"]);
    let crm = &overview["connections"][0];
    assert_eq!(crm["dlq_depth"], 1, "{overview}");
    assert_eq!(crm["state"], "degraded", "a DLQ entry waits: {overview}");

    // Reads: 401 without a credential, 200 with either token.
    assert_eq!(
        call(&http, Method::GET, &format!("{base}/"), None).await.0,
        401
    );
    assert_eq!(
        call(
            &http,
            Method::GET,
            &format!("{base}/api/v1/lag"),
            Some("wrong")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(&http, Method::GET, &format!("{base}/"), Some(ADMIN))
            .await
            .0,
        200
    );

    // Admin actions: 401 without, 403 read-only, allowed for admin (as dry runs).
    let actions = [
        (Method::POST, format!("{base}/api/v1/dlq/crm/redrive")),
        (Method::POST, format!("{base}/api/v1/dlq/crm/discard")),
        (Method::POST, format!("{base}/api/v1/replay")),
        (Method::POST, format!("{base}/dlq/crm/redrive")),
        (
            Method::GET,
            format!("{base}/dlq/crm/confirm?id=0/0&action=redrive"),
        ),
    ];
    for (method, url) in &actions {
        assert_eq!(call(&http, method.clone(), url, None).await.0, 401, "{url}");
        assert_eq!(
            call(&http, method.clone(), url, Some(READ)).await.0,
            403,
            "{url}"
        );
    }
    let (status, body) = call(&http, Method::POST, &actions[0].1, Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    let planned: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            planned["sent"].as_u64(),
            planned["records"].as_array().map(Vec::len)
        ),
        (Some(0), Some(1))
    );

    // Every page and answer, read as admin: no secret anywhere.
    let dlq: serde_json::Value = serde_json::from_str(
        &call(
            &http,
            Method::GET,
            &format!("{base}/api/v1/dlq/crm"),
            Some(READ),
        )
        .await
        .1,
    )
    .unwrap();
    let dlq_id = format!(
        "{}/{}",
        dlq["records"][0]["partition"], dlq["records"][0]["offset"]
    );
    let pages = [
        "/".to_owned(),
        "/connections/crm".to_owned(),
        "/connections/shop".to_owned(),
        "/connections/tg".to_owned(),
        "/dlq/crm".to_owned(),
        format!("/dlq/crm/confirm?id={dlq_id}&action=discard"),
        "/trace?id=7000".to_owned(),
        "/trace?id=7999".to_owned(),
        "/api/v1/connections".to_owned(),
        "/api/v1/lag".to_owned(),
        "/api/v1/dlq/crm".to_owned(),
        "/api/v1/trace/7000".to_owned(),
        "/metrics".to_owned(),
    ];
    let secrets = [ADMIN, READ, BOT, SHOP_SECRET, CRM_TOKEN];
    for page in &pages {
        let (status, body) = call(&http, Method::GET, &format!("{base}{page}"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{page}: {body}");
        for s in secrets {
            assert!(!body.contains(s), "{page} shows a secret");
        }
    }
    let (_, metrics) = call(&http, Method::GET, &format!("{base}/metrics"), None).await;
    assert!(
        metrics.contains("switchboard_consumergroup_lag{"),
        "lag gauge exported"
    );
    assert!(metrics.contains("switchboard_consumergroup_lag_seconds{"));
    let (_, trace) = call(
        &http,
        Method::GET,
        &format!("{base}/api/v1/trace/7000"),
        Some(READ),
    )
    .await;
    let trace: serde_json::Value = serde_json::from_str(&trace).unwrap();
    let stages: Vec<&str> = trace["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        // API calls from `sb.audit` come in between, once the sink writes them.
        .filter(|s| *s != "call")
        .collect();
    assert_eq!(stages, ["raw", "canonical", "target"], "{trace}");
    let (_, poison) = call(
        &http,
        Method::GET,
        &format!("{base}/api/v1/trace/7999"),
        Some(READ),
    )
    .await;
    assert!(poison.contains("\"stage\":\"dlq\""), "{poison}");
    shutdown.cancel();
}
