//! Webhooks from every source, sent by the sandboxes as the real systems send them (Shopify
//! HMAC, Pipedrive Basic auth, Telegram secret token) plus a generic Standard-Webhooks
//! source, are verified and published to their raw topics; a delivery with a wrong
//! signature or credential from each is answered 401 and counted by reason.
//! Its own test binary: the metrics it reads are process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_sandbox::shopify::CustomerChange;
use switchboard_sandbox::telegram::SAMPLE_USER_CHAT;
use switchboard_sandbox::{
    PipedriveConfig, PipedriveSandbox, ShopifyConfig, ShopifySandbox, TelegramConfig,
    TelegramSandbox,
};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const SHOP_SECRET: &str = "shop-app-secret";
const CRM_TOKEN: &str = "crm-token";
const CRM_HOOK_PASSWORD: &str = "hook-password";
const BOT_TOKEN: &str = "4242:bot-token";
const BOT_SECRET: &str = "bot_secret-token";
const HOOK_KEY: &[u8] = b"generic-signing-key-0123456789ab";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_source_is_verified_and_published_and_every_forgery_is_refused() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("four");
    let pipedrive = PipedriveSandbox::start(PipedriveConfig::new(CRM_TOKEN))
        .await
        .unwrap();
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}"}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: "2026-01", webhook_secret: "{shop}"}}
  crm:
    type: pipedrive
    base_url: "{crm_url}"
    api_token: "{crm_token}"
    webhook_auth: {{username: switchboard, password: "{crm_hook}"}}
  bot: {{type: telegram, webhook_secret_token: "{bot}"}}
  hooks:
    type: http
    webhook: {{scheme: standard_webhooks, secret: "{hook}", entity: orders, id_pointer: /data/id}}
ingest: {{listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        shop = secret_ref(dir.path(), "shop", SHOP_SECRET),
        crm_url = pipedrive.base_url(),
        crm_token = secret_ref(dir.path(), "crm", CRM_TOKEN),
        crm_hook = secret_ref(dir.path(), "crm-hook", CRM_HOOK_PASSWORD),
        bot = secret_ref(dir.path(), "bot", BOT_SECRET),
        hook = secret_ref(
            dir.path(),
            "hook",
            &format!("whsec_{}", STANDARD.encode(HOOK_KEY))
        ),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let url = |connection: &str| format!("http://{}/webhooks/{connection}", ingest.addr);
    let http = reqwest::Client::new();

    // Shopify: a subscription of the shop, and one of an impostor signing with another secret.
    let shop = ShopifySandbox::start(ShopifyConfig {
        api_secret: SHOP_SECRET.into(),
        ..ShopifyConfig::new("shpat_x")
    })
    .await
    .unwrap();
    shop.subscribe("customers/create", &url("shop")).unwrap();
    let impostor = ShopifySandbox::start(ShopifyConfig {
        api_secret: "guessed".into(),
        ..ShopifyConfig::new("shpat_y")
    })
    .await
    .unwrap();
    impostor
        .subscribe("customers/create", &url("shop"))
        .unwrap();
    let change = CustomerChange {
        email: "ada@example.com".into(),
        first_name: Some("Ada".into()),
        last_name: None,
        phone: None,
        tags: None,
    };
    shop.trigger_customer_change(&change).unwrap();
    impostor.trigger_customer_change(&change).unwrap();

    // Pipedrive: a subscription with the right Basic credentials and one with a wrong password.
    for password in [CRM_HOOK_PASSWORD, "wrong-password"] {
        let created = http
            .post(format!("{}/v1/webhooks", pipedrive.base_url()))
            .header("x-api-token", CRM_TOKEN)
            .json(&serde_json::json!({"subscription_url": url("crm"), "event_action": "create", "event_object": "person",
                "http_auth_user": "switchboard", "http_auth_password": password}))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "{}",
            created.text().await.unwrap()
        );
    }
    let person = http
        .post(format!("{}/api/v2/persons", pipedrive.base_url()))
        .header("x-api-token", CRM_TOKEN)
        .json(&serde_json::json!({"name": "Grace Hopper", "emails": [{"value": "grace@example.com", "primary": true, "label": "work"}]}))
        .send()
        .await
        .unwrap();
    assert!(person.status().is_success());

    // Telegram: the bot's webhook with the right secret token, and a second bot with a wrong one.
    let mut bots = Vec::new();
    for (token, secret) in [
        (BOT_TOKEN, BOT_SECRET),
        ("4343:other-bot", "not_the_secret"),
    ] {
        let bot = TelegramSandbox::start(TelegramConfig::new(token))
            .await
            .unwrap();
        let set = http
            .post(bot.method_url("setWebhook"))
            .json(&serde_json::json!({"url": url("bot"), "secret_token": secret}))
            .send()
            .await
            .unwrap();
        assert!(set.status().is_success(), "{}", set.text().await.unwrap());
        bot.inject_message(SAMPLE_USER_CHAT, "hello").unwrap();
        bots.push(bot); // keeps delivering until the test ends
    }

    // Generic: a Standard Webhooks delivery signed with the key, and one signed with another.
    let body = br#"{"type":"order.created","data":{"id":"ord_1"}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    for (id, key) in [("msg_1", HOOK_KEY), ("msg_2", b"some-other-key".as_slice())] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{now}.").as_bytes());
        mac.update(body);
        let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        let status = http
            .post(url("hooks"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", &now)
            .header("webhook-signature", signature)
            .body(&body[..])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), if id == "msg_1" { 200 } else { 401 });
    }

    let bootstrap = kafka_bootstrap();
    for topic in [
        "shop.customers",
        "crm.persons",
        "bot.messages",
        "hooks.orders",
    ] {
        let topic = format!("{prefix}.raw.{topic}");
        assert!(
            eventually(Duration::from_secs(30), || topic_size(&bootstrap, &topic)
                >= 1)
            .await,
            "{topic} got its event"
        );
        assert_eq!(
            read_topic(
                &bootstrap,
                &topic,
                1,
                Duration::from_secs(10),
                Duration::from_secs(1)
            )
            .len(),
            1,
            "only the genuine delivery on {topic}"
        );
    }
    let metrics_url = format!("http://{}/metrics", ingest.addr);
    let refused = |connection: &'static str| {
        let metrics_url = metrics_url.clone();
        async move {
            let text = reqwest::get(&metrics_url)
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines().any(|l| {
                l.starts_with("switchboard_webhooks_rejected_total")
                    && l.contains(&format!("connection=\"{connection}\""))
                    && l.contains("reason=\"signature\"")
                    && !l.ends_with(" 0")
            })
        }
    };
    for connection in ["shop", "crm", "bot", "hooks"] {
        let mut counted = false;
        for _ in 0..100 {
            if refused(connection).await {
                counted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            counted,
            "a forged {connection} delivery was counted as a signature rejection"
        );
    }
    assert!(
        impostor.deliveries().iter().any(|d| d.status == Some(401)),
        "the impostor shop got 401"
    );
    assert!(
        pipedrive.deliveries().iter().any(|d| d.status == Some(401)),
        "the wrong Basic password got 401"
    );
}
