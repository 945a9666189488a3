//! Two-way sync without ping-pong: the sink writes a person to Pipedrive, Pipedrive's
//! webhook reports that write back to Switchboard, and no new canonical change comes of it.
//! The same for a deletion: a customer deleted in Shopify is deleted in Pipedrive, once,
//! and Pipedrive's report of that deletion is an echo too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_sandbox::pipedrive::{PipedriveConfig, PipedriveSandbox};
use switchboard_sandbox::shopify::ShopifyWebhooks;
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

const SHOP_SECRET: &str = "echo-shop-secret";
const CRM_TOKEN: &str = "echo-crm-token";
const CRM_HOOK_PASSWORD: &str = "echo-hook-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_reported_back_by_the_target_is_not_a_new_change() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("echo");
    let pipedrive = PipedriveSandbox::start(PipedriveConfig::new(CRM_TOKEN))
        .await
        .unwrap();
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: acme.myshopify.com, api_version: "2025-01", webhook_secret: "{shop}"}}
  crm:
    type: pipedrive
    base_url: "{pipedrive}"
    api_token: "{crm}"
    webhook_auth: {{username: switchboard, password: "{hook}"}}
flows:
  - name: shop-customers-to-crm
    from: shop.customers
    mapping: shopify/customer-to-contact.v1
    to: contact
    sinks: [{{target: crm.persons, match_on: email}}]
  - {{name: crm-persons-to-contacts, from: crm.persons, mapping: pipedrive/person-to-contact.v1, to: contact}}
ingest: {{listen: "127.0.0.1:0"}}
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{root}/mappings", schemas_dir: "{root}/schemas", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 2000}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        shop = secret_ref(dir.path(), "shop", SHOP_SECRET),
        crm = secret_ref(dir.path(), "crm", CRM_TOKEN),
        hook = secret_ref(dir.path(), "hook", CRM_HOOK_PASSWORD),
        pipedrive = pipedrive.base_url(),
        root = workspace_root().display(),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ingest = switchboard_ingest_webhook::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    switchboard_transformer::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();

    // Pipedrive reports every person change to Switchboard, as a two-way sync needs.
    subscribe_to_persons(&pipedrive, CRM_TOKEN, ingest.addr, CRM_HOOK_PASSWORD).await;

    let shop = ShopifyWebhooks::new(
        format!("http://{}/webhooks/shop", ingest.addr),
        SHOP_SECRET,
        "acme.myshopify.com",
        "2025-01",
    )
    .unwrap();
    let customer = ShopifyWebhooks::customer_payload(
        4242,
        "echo@example.com",
        "Ada",
        "Lovelace",
        time::OffsetDateTime::now_utc(),
    );
    let body = serde_json::to_vec(&customer).unwrap();
    assert_eq!(
        shop.send("customers/create", &body, "wh-echo-1")
            .await
            .unwrap(),
        StatusCode::OK
    );

    // The sink creates the person; Pipedrive's webhook about it comes back in.
    assert!(
        eventually(Duration::from_secs(60), || pipedrive.persons().len() == 1).await,
        "the person was created"
    );
    let echo_topic = format!("{prefix}.raw.crm.persons");
    // Pipedrive reported the write, and the transformer processed that echo.
    let group = format!("{prefix}.transformer");
    transformed(&echo_topic, 1, &group).await;

    let canonical = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.canonical.contact"),
        usize::MAX,
        Duration::from_secs(3),
        Duration::ZERO,
    );
    assert_eq!(canonical.len(), 1, "the echo made no new canonical change");
    let dlq = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.dlq.transformer"),
        usize::MAX,
        Duration::from_secs(1),
        Duration::ZERO,
    );
    assert!(dlq.is_empty(), "the echo was understood, not dead-lettered");
    assert_eq!(pipedrive.total_creates(), 1);

    // A real edit in Pipedrive is not an echo: it becomes a canonical change.
    let person = pipedrive.persons()[0].clone();
    let edited = reqwest::Client::new()
        .patch(format!("{}/api/v2/persons/{}", pipedrive.base_url(), person.id))
        .header("x-api-token", CRM_TOKEN)
        .json(&serde_json::json!({"phones": [{"value": "+31 20 555 0199", "primary": true, "label": "work"}]}))
        .send()
        .await
        .unwrap();
    assert!(edited.status().is_success());
    let canonical = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.canonical.contact"),
        2,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(canonical.len(), 2, "the edit in Pipedrive is a change");

    // The customer is deleted in Shopify (its webhook carries only the ID): the person goes.
    let deletion = serde_json::to_vec(&serde_json::json!({"id": 4242, "phone": null,
        "addresses": [], "tax_exemptions": [], "email_marketing_consent": null,
        "sms_marketing_consent": null, "admin_graphql_api_id": "gid://shopify/Customer/4242"}))
    .unwrap();
    for delivery in ["wh-echo-delete", "wh-echo-delete-again"] {
        assert_eq!(
            shop.send("customers/delete", &deletion, delivery)
                .await
                .unwrap(),
            StatusCode::OK
        );
    }
    assert!(
        eventually(Duration::from_secs(60), || pipedrive.persons().is_empty()).await,
        "the person was deleted in Pipedrive"
    );
    assert!(pipedrive.person(person.id).unwrap().is_deleted);
    // Pipedrive reported the create, the edit and the deletion, and the transformer
    // processed the deletion's echo.
    transformed(&echo_topic, 3, &group).await;
    let canonical = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.canonical.contact"),
        usize::MAX,
        Duration::from_secs(3),
        Duration::ZERO,
    );
    assert_eq!(
        canonical.len(),
        3,
        "one deletion: the second delivery and Pipedrive's echo changed nothing"
    );
    assert_eq!(
        calls(pipedrive.control(), "DELETE").len(),
        1,
        "Pipedrive was asked to delete once"
    );
    assert_eq!(pipedrive.total_creates(), 1);
}
