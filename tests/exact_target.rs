//! The sink writing Exact Online accounts and sales invoices: the minutely limit (60 per
//! sandbox minute on a clock running 4× faster) judged from the sandbox's request log, and
//! OAuth with rotating refresh tokens: access tokens expiring every few (real) seconds,
//! a sink restart in the middle, a revoked refresh token that pauses the connection
//! without dead-lettering anything, and delivery resuming once new credentials are written
//! to the `${file:}` secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::targets_support as support;

use std::time::Duration;

use base64::Engine;
use rdkafka::Message;
use serde_json::{Value, json};
use support::*;
use switchboard_sandbox::telegram::SAMPLE_USER_CHAT;
use switchboard_sandbox::{
    Clock, ExactConfig, ExactSandbox, FaultRule, TelegramConfig, TelegramSandbox,
};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const ITEM: &str = "4f1b1c2e-0000-4000-8000-000000000001";

struct Books {
    exact: ExactSandbox,
    yaml: String,
    prefix: String,
    refresh_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn books(test: &str, scale: f64, calls_per_minute: u32) -> Books {
    init_logging();
    ensure_stack();
    let exact = ExactSandbox::start(ExactConfig {
        clock: Clock::scaled(scale),
        ..ExactConfig::new("switchboard-app", "app-secret", "http://127.0.0.1/callback")
    })
    .await
    .unwrap();
    let tokens = exact.issue_tokens();
    // Authorized more than ten (sandbox) minutes ago: the first refresh is allowed.
    exact.clock().advance(Duration::from_secs(601));
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(test);
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let refresh_ref = secret_ref(dir.path(), "refresh", &tokens.refresh_token);
    let connection = format!(
        r#"  books:
    type: exact
    base_url: "{base}"
    division: {division}
    oauth: {{client_id: switchboard-app, client_secret: "{secret}", refresh_token: "{refresh_ref}"}}
    calls_per_minute: {calls_per_minute}
    target: {{journal: "70", sales_item: "{ITEM}"}}
"#,
        base = exact.base_url(),
        division = exact.current_division(),
        secret = secret_ref(dir.path(), "secret", "app-secret"),
    );
    let flows = "  - {name: orgs-to-books, from: src.organizations, mapping: test/org.v1, to: organization, sinks: [{target: books.accounts}]}\n  - {name: invoices-to-books, from: src.deals, mapping: test/invoice.v1, to: invoice, sinks: [{target: books.sales_invoices}]}";
    let extra = format!("secrets_key: \"{}\"", secret_ref(dir.path(), "key", &key));
    let yaml = sink_yaml(&prefix, &connection, flows, &extra);
    Books {
        exact,
        yaml,
        prefix,
        refresh_file: dir.path().join("refresh"),
        _dir: dir,
    }
}

fn organization(i: usize) -> Value {
    canonical(
        "organization",
        "organizations",
        &format!("o{i}"),
        json!({"name": format!("Acme {i} BV"), "vat_number": format!("NL{i:09}B01"), "city": "Utrecht"}),
    )
}

fn invoice(i: usize) -> Value {
    let org = switchboard_core::canonical::canonical_id("src", "organizations", &format!("o{i}"));
    canonical(
        "invoice",
        "deals",
        &format!("i{i}"),
        json!({"number": format!("INV-{i}"), "currency": "EUR", "organization_id": org,
               "lines": [{"sku": "SKU-1", "title": "Widget", "quantity": "2", "unit_price": "12.50",
                          "total": "25.00", "tax_rate": null, "product_id": null}]}),
    )
}

/// Every Exact API call (not the token endpoint) takes 60 ms, as a real one would.
fn slow_api(b: &Books) {
    b.exact.control().add_fault(FaultRule {
        endpoint: "/api/v1/".into(),
        error_rate: 0.0,
        status: 0,
        latency_ms: 60,
        count: None,
    });
}

fn dlq_size(prefix: &str) -> usize {
    read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.dlq.books"),
        10_000,
        Duration::from_secs(2),
        Duration::ZERO,
    )
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_accounts_at_sixty_a_minute_keep_goodput_without_429() {
    const SCALE: f64 = 4.0;
    // The sandbox minute lasts 15 real seconds: 60 calls in it are 240 a real minute; the
    // connection allows itself 98% of that.
    let b = books("exact-rate", SCALE, 235).await;
    const N: usize = 70;
    let records: Vec<_> = (0..N).map(organization).collect();
    produce(&b.prefix, "organization", &records).await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&b.yaml), stop.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(120), || b.exact.accounts().len() >= N).await,
        "every account arrived ({} of {N})",
        b.exact.accounts().len()
    );
    let requests = b.exact.control().requests();
    let report = rate_report(&requests, "/api/v1/");
    let goodput = report.served as f64 / report.span_secs; // the limit is 1 per sandbox second
    println!(
        "exact goodput {:.1}% of 60/min over {:.1} sandbox s, {} of {} calls answered 429 ({report:?})",
        goodput * 100.0,
        report.span_secs,
        report.throttled,
        report.calls
    );
    assert!(report.span_secs >= 30.0, "at least 30 s of sandbox time");
    assert!(goodput >= 0.95, "goodput {goodput:.3}");
    assert!(report.throttled as f64 <= 0.01 * report.calls as f64);
    // Exact sends no Retry-After; a 429 must be followed by nothing before the minute resets.
    let calls: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .collect();
    for pair in calls.windows(2).filter(|w| w[0].status == 429) {
        let (a, b) = (at_secs(pair[0]), at_secs(pair[1]));
        assert!(
            (b / 60.0).floor() > (a / 60.0).floor(),
            "a call after a 429 waited for the reset"
        );
    }
    assert_eq!(b.exact.accounts().len(), N, "no account twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_organization_deletes_its_exact_account_once() {
    let mut b = books("exact-delete", 1.0, 600).await;
    b.yaml = b.yaml.replace(
        "sinks: [{target: books.accounts}]",
        "sinks: [{target: books.accounts, on_delete: delete}]",
    );
    let _stop = deliver_a_deletion(&b).await;
    deleted_once_then_found_gone(b.exact.control(), 204).await;
    let names: Vec<_> = b
        .exact
        .accounts()
        .iter()
        .map(|a| a["Name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["Acme 1 BV"], "Acme 0 deleted, Acme 1 stays");
}

/// Organizations 0 and 1 created, then 0 deleted (delivered twice), through a started sink;
/// the guard stops it.
async fn deliver_a_deletion(b: &Books) -> tokio_util::sync::DropGuard {
    let mut gone = organization(0);
    gone["deleted"] = json!(true);
    produce(
        &b.prefix,
        "organization",
        &[organization(0), organization(1)],
    )
    .await;
    produce(&b.prefix, "organization", &[gone.clone(), gone]).await;
    let stop = CancellationToken::new();
    switchboard_sink::start(load(&b.yaml), stop.clone())
        .await
        .unwrap();
    stop.drop_guard()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_tokens_rotate_across_a_restart_and_a_revoked_token_pauses_until_new_credentials() {
    // 100×: the 10-minute access token lives six real seconds.
    let b = books("exact-tokens", 100.0, 5000).await;
    slow_api(&b);
    const N: usize = 60;
    produce(
        &b.prefix,
        "organization",
        &(0..N).map(organization).collect::<Vec<_>>(),
    )
    .await;

    let first = CancellationToken::new();
    let sink = switchboard_sink::start(load(&b.yaml), first.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len()
            >= N / 2)
        .await,
        "half delivered before the restart"
    );
    first.cancel();
    sink.task.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await; // the access token dies meanwhile

    let second = CancellationToken::new();
    let _guard = second.clone().drop_guard();
    let sink = switchboard_sink::start(load(&b.yaml), second.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(90), || b.exact.accounts().len() >= N).await,
        "every account after the restart ({} of {N})",
        b.exact.accounts().len()
    );
    produce(
        &b.prefix,
        "invoice",
        &(0..5).map(invoice).collect::<Vec<_>>(),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(60), || b.exact.sales_invoices().len()
            >= 5)
        .await,
        "the invoices followed their accounts"
    );
    let token_calls: Vec<_> = b
        .exact
        .control()
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/oauth2/token"))
        .collect();
    println!(
        "token endpoint: {:?}",
        token_calls.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        token_calls.len() >= 3,
        "tokens were refreshed (and rotated) several times"
    );
    assert!(
        token_calls.iter().all(|r| r.status == 200),
        "no refresh was refused"
    );
    assert_eq!(b.exact.accounts().len(), N, "no account twice");
    assert_eq!(dlq_size(&b.prefix), 0, "nothing failed");

    // Revoked: the next expiry makes the refresh fail; the connection pauses and alerts.
    b.exact.revoke_all_refresh_tokens();
    b.exact.expire_access_tokens();
    produce(
        &b.prefix,
        "organization",
        &(N..N + 5).map(organization).collect::<Vec<_>>(),
    )
    .await;
    let status_topic = format!("{}.status", b.prefix);
    let paused = eventually(Duration::from_secs(30), || {
        read_topic(
            &kafka_bootstrap(),
            &status_topic,
            10_000,
            Duration::from_secs(2),
            Duration::ZERO,
        )
        .iter()
        .any(|m| payload(m)["state"] == "paused_auth")
    })
    .await;
    assert!(paused, "paused_auth in the status topic");
    let alerts = read_topic(
        &kafka_bootstrap(),
        &format!("{}.alerts", b.prefix),
        10_000,
        Duration::from_secs(5),
        Duration::ZERO,
    );
    assert!(
        alerts
            .iter()
            .any(|m| payload(m)["kind"] == "auth_failed" && payload(m)["status"] == "firing"),
        "an auth alert fired"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dlq_size(&b.prefix), 0, "nothing dead-lettered while paused");
    assert!(
        b.exact.accounts().len() < N + 5,
        "nothing delivered while paused"
    );

    // New credentials: the operator authorizes again and writes the new refresh token.
    let fresh = b.exact.issue_tokens();
    b.exact.clock().advance(Duration::from_secs(601));
    std::fs::write(&b.refresh_file, &fresh.refresh_token).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len()
            >= N + 5)
        .await,
        "delivery resumed after new credentials"
    );
    assert_eq!(dlq_size(&b.prefix), 0);
    second.cancel();
    sink.task.await.unwrap().unwrap();
}

/// Four lanes meet an access token that died under them at once: one of them refreshes, the
/// others go on with the token it got instead of throwing it away and refreshing again,
/// which Exact would refuse as too early (a 400 that reads as revoked credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_lanes_refused_one_expired_token_refresh_it_once_and_never_pause() {
    let b = books("exact-lanes", 1.0, 5000).await;
    slow_api(&b);
    // The sink block is the configuration's last: one more of its keys.
    let yaml = format!("{}  concurrency: 4\n", b.yaml);
    // About three calls each, within the sandbox's 60 calls a (real) minute.
    const N: usize = 15;
    produce(
        &b.prefix,
        "organization",
        &(0..N).map(organization).collect::<Vec<_>>(),
    )
    .await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len() >= 3).await,
        "delivery started"
    );
    // Every lane's next call is refused with 401 at once.
    b.exact.expire_access_tokens();
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len() >= N).await,
        "every account delivered ({} of {N})",
        b.exact.accounts().len()
    );
    let refreshes: Vec<u16> = b
        .exact
        .control()
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/oauth2/token"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        refreshes,
        [200, 200],
        "the first token, and one after the expiry"
    );
    let states: Vec<Value> = read_topic(
        &kafka_bootstrap(),
        &format!("{}.status", b.prefix),
        10_000,
        Duration::from_secs(2),
        Duration::ZERO,
    )
    .iter()
    .map(|m| payload(m)["state"].clone())
    .collect();
    assert!(states.iter().all(|s| s == "ok"), "never paused: {states:?}");
    assert_eq!(dlq_size(&b.prefix), 0, "nothing failed");
}

fn payload(m: &rdkafka::message::OwnedMessage) -> Value {
    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null)
}

/// The poller and the sink of one Exact connection rotate one refresh-token chain: once the
/// poller has used (and so killed) the configured refresh token, a sink started afterwards
/// goes on with the poller's stored tokens instead of the dead configured one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_and_the_sink_of_one_exact_connection_share_the_rotated_token() {
    let b = books("exact-shared-chain", 1.0, 60).await;
    b.exact.generate_accounts(3);
    let yaml = b.yaml.replacen(
        "    target: {",
        "    poll: {entities: [accounts], every_secs: 1}\n    target: {",
        1,
    ) + "poller: {admin_listen: \"127.0.0.1:0\"}\n";
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_ingest_poller::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    let raw = format!("{}.raw.books.accounts", b.prefix);
    assert!(
        eventually(Duration::from_secs(60), || topic_size(
            &kafka_bootstrap(),
            &raw
        ) >= 3)
        .await,
        "the poller refreshed the configured token and polled"
    );

    produce(&b.prefix, "organization", &[organization(1)]).await;
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || b
            .exact
            .accounts()
            .iter()
            .any(|a| a["Name"] == "Acme 1 BV"))
        .await,
        "the sink delivered with the poller's rotated tokens"
    );
    assert_eq!(dlq_size(&b.prefix), 0);
}

/// The chain an operator relies on: a refresh token revoked at Exact → the sink's next call
/// is refused, its one refresh fails → the connection pauses and fires `auth_failed` →
/// the console sends it to the operators' Telegram chat, within 5 s of the record that met
/// the revoked credentials; new credentials resolve it, and the chat hears that too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_refresh_token_reaches_the_operators_telegram_within_five_seconds() {
    const BOT: &str = "4242:alert-bot-token";
    let b = books("exact-auth-alert", 1.0, 60).await;
    let telegram = TelegramSandbox::start(TelegramConfig::new(BOT))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tg = format!(
        "connections:\n  tg: {{type: telegram, base_url: \"{}\", bot_token: \"{}\"}}\n",
        telegram.base_url(),
        secret_ref(dir.path(), "bot", BOT)
    );
    let yaml = b.yaml.replacen("connections:\n", &tg, 1)
        + &format!(
            "console: {{listen: \"127.0.0.1:0\", alerts: {{telegram: tg, chat_id: {SAMPLE_USER_CHAT}}}}}\n"
        );
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    switchboard_console::start(load(&yaml), stop.clone())
        .await
        .unwrap();
    produce(&b.prefix, "organization", &[organization(1)]).await;
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len() == 1).await,
        "delivering before the revocation"
    );

    b.exact.revoke_all_refresh_tokens();
    b.exact.expire_access_tokens();
    let revoked_at = std::time::Instant::now();
    produce(&b.prefix, "organization", &[organization(2)]).await;
    let texts = || -> Vec<String> {
        telegram
            .messages_to(SAMPLE_USER_CHAT)
            .into_iter()
            .map(|m| m.text)
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(30), || texts()
            .iter()
            .any(|t| t.starts_with("[FIRING] auth_failed on books")))
        .await,
        "the auth alert reached Telegram: {:?}",
        texts()
    );
    let took = revoked_at.elapsed();
    println!("revoked refresh token → Telegram alert in {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(b.exact.accounts().len(), 1, "nothing written while paused");
    assert_eq!(dlq_size(&b.prefix), 0, "nothing dead-lettered");
    // Paused within 1 s of the first refused call, by the audit's and the status's clocks.
    let refused_at = topic_json(&format!("{}.audit", b.prefix))
        .iter()
        .filter(|c| c["status"] == 401)
        .filter_map(|c| c["at"].as_i64())
        .min()
        .expect("the refused call is audited");
    let paused_at = topic_json(&format!("{}.status", b.prefix))
        .iter()
        .filter(|s| s["state"] == "paused_auth")
        .filter_map(|s| s["at"].as_i64())
        .min()
        .expect("paused_auth in the status topic");
    println!(
        "first refused call → paused_auth in {} ms",
        paused_at - refused_at
    );
    assert!(
        (0..=1000).contains(&(paused_at - refused_at)),
        "paused {} ms after the refused call",
        paused_at - refused_at
    );

    // The operator authorizes again: delivery resumes and the chat hears it resolved.
    let fresh = b.exact.issue_tokens();
    b.exact.clock().advance(Duration::from_secs(601));
    std::fs::write(&b.refresh_file, &fresh.refresh_token).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || b.exact.accounts().len() == 2).await,
        "delivery resumed with the new credentials"
    );
    assert!(
        eventually(Duration::from_secs(10), || texts()
            .iter()
            .any(|t| t.starts_with("[RESOLVED] auth_failed on books")))
        .await,
        "the resolve reached Telegram: {:?}",
        texts()
    );
    let all = texts();
    assert!(
        all.iter()
            .all(|t| !t.contains(BOT) && !t.contains(&fresh.refresh_token))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_organization_archives_its_exact_account_by_default() {
    let b = books("exact-archive", 1.0, 600).await;
    let _stop = deliver_a_deletion(&b).await;
    let ended = || {
        b.exact
            .accounts()
            .iter()
            .filter(|a| !a["EndDate"].is_null())
            .map(|a| a["Name"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(60), || ended() == ["Acme 0 BV"]).await,
        "Acme 0 got an end date: {:?}",
        b.exact.accounts()
    );
    // Both deliveries of the deletion archived the one linked account, and nothing was
    // deleted: both accounts are still there.
    let puts = || calls(b.exact.control(), "PUT");
    assert!(eventually(Duration::from_secs(60), || puts().len() == 2).await);
    let puts = puts();
    assert_eq!(puts[0].path, puts[1].path, "the same account: {puts:?}");
    assert!(calls(b.exact.control(), "DELETE").is_empty());
    assert_eq!(b.exact.accounts().len(), 2);
}
