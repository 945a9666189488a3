//! Flows end to end beyond the first one, each from the source's own event (a webhook, or a
//! change the poller finds) to the target's record, through creates, updates and deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use serde_json::json;
use switchboard_sandbox::{ExactConfig, ExactSandbox, PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

/// Exact Online accounts, polled through the sync API, become Pipedrive organizations (at
/// Pipedrive's documented limits): three created, one renamed in Exact (the organization
/// follows, nothing created), one deleted in Exact (its `sync/Deleted` entry deletes the
/// organization).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_accounts_become_pipedrive_organizations_through_creates_updates_and_deletes() {
    init_logging();
    ensure_stack();
    let exact = ExactSandbox::start(ExactConfig::new(
        "switchboard-app",
        "app-secret",
        "http://127.0.0.1/callback",
    ))
    .await
    .unwrap();
    let accounts: Vec<_> = (0..3)
        .map(|i| {
            exact
                .upsert_account(json!({"Name": format!("Flow {i} BV"), "VATNumber": format!("NL00000000{i}B01"), "City": "Utrecht", "Country": "NL"}))
                .unwrap()
        })
        .collect();
    let tokens = exact.issue_tokens();
    exact.clock().advance(Duration::from_secs(601));
    let crm = PipedriveSandbox::start(PipedriveConfig::new("flow-crm-token"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("flow-books");
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
secrets_key: "{key_ref}"
connections:
  books:
    type: exact
    base_url: "{base}"
    division: {division}
    oauth: {{client_id: switchboard-app, client_secret: "{secret_ref}", refresh_token: "{refresh_ref}"}}
    poll: {{entities: [accounts], every_secs: 1}}
  crm: {{type: pipedrive, base_url: "{crm_url}", api_token: "{crm_ref}"}}
flows:
  - name: books-accounts-to-crm
    from: books.accounts
    mapping: exact/account-to-organization.v1
    to: organization
    sinks: [{{target: crm.organizations}}]
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{root}/mappings", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 2000}}
poller: {{admin_listen: "127.0.0.1:0"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        key_ref = secret_ref(dir.path(), "key", &key),
        base = exact.base_url(),
        division = exact.current_division(),
        secret_ref = secret_ref(dir.path(), "secret", "app-secret"),
        refresh_ref = secret_ref(dir.path(), "refresh", &tokens.refresh_token),
        crm_url = crm.base_url(),
        crm_ref = secret_ref(dir.path(), "crm", "flow-crm-token"),
        root = workspace_root().display(),
    );
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    switchboard_transformer::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_sink::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();
    switchboard_ingest_poller::start(load(&yaml), shutdown.clone())
        .await
        .unwrap();

    let names = || {
        let mut names: Vec<String> = crm.organizations().into_iter().map(|o| o.name).collect();
        names.sort();
        names
    };
    assert!(
        eventually(Duration::from_secs(90), || names().len() == 3).await,
        "three organizations created: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 BV", "Flow 2 BV"]);

    exact
        .upsert_account(json!({"ID": accounts[1].to_string(), "Name": "Flow 1 Renamed BV"}))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || names()
            .contains(&"Flow 1 Renamed BV".to_owned()))
        .await,
        "the rename reached Pipedrive: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 Renamed BV", "Flow 2 BV"]);

    assert!(exact.delete_account(accounts[2]));
    assert!(
        eventually(Duration::from_secs(60), || names().len() == 2).await,
        "the deletion reached Pipedrive: {:?}",
        names()
    );
    assert_eq!(names(), ["Flow 0 BV", "Flow 1 Renamed BV"]);
    for i in 0..3 {
        let name = format!("Flow {i} BV");
        assert_eq!(
            crm.creates_for_organization(&name),
            1,
            "{name} created once"
        );
    }
    assert_eq!(
        crm.creates_for_organization("Flow 1 Renamed BV"),
        0,
        "the rename updated the organization"
    );
}

/// Shopify customers ↔ Pipedrive persons, two-way, from each side's own webhooks: a
/// customer created in Shopify becomes a person; a phone added in Pipedrive reaches the
/// Shopify customer; a rename in Shopify reaches the person. Each edit reaches the other
/// side once, and every webhook that reports Switchboard's own write back is an echo: three
/// canonical changes in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shopify_customers_and_pipedrive_persons_stay_in_sync_both_ways_without_ping_pong() {
    use switchboard_sandbox::shopify::CustomerChange;
    use switchboard_sandbox::{ShopifyConfig, ShopifySandbox};

    const SHOP_SECRET: &str = "two-way-shop-secret";
    const SHOP_TOKEN: &str = "shpat_two_way";
    const CRM_TOKEN: &str = "two-way-crm-token";
    const HOOK_PASSWORD: &str = "two-way-hook-password";
    init_logging();
    ensure_stack();
    let shop = ShopifySandbox::start(ShopifyConfig {
        api_secret: SHOP_SECRET.into(),
        ..ShopifyConfig::new(SHOP_TOKEN)
    })
    .await
    .unwrap();
    let crm = PipedriveSandbox::start(PipedriveConfig::new(CRM_TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("flow-two-way");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 3}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: "{domain}", api_version: "2025-01", webhook_secret: "{shop_secret}", access_token: "{shop_token}", base_url: "{shop_url}"}}
  crm:
    type: pipedrive
    base_url: "{crm_url}"
    api_token: "{crm_token}"
    webhook_auth: {{username: switchboard, password: "{hook}"}}
flows:
  - name: shop-customers-to-crm
    from: shop.customers
    mapping: shopify/customer-to-contact.v1
    to: contact
    sinks: [{{target: crm.persons, match_on: email}}]
  - name: crm-persons-to-shop
    from: crm.persons
    mapping: pipedrive/person-to-contact.v1
    to: contact
    sinks: [{{target: shop.customers}}]
ingest: {{listen: "127.0.0.1:0"}}
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{root}/mappings", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 2000}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        domain = shop.shop_domain(),
        shop_secret = secret_ref(dir.path(), "shop", SHOP_SECRET),
        shop_token = secret_ref(dir.path(), "shop-token", SHOP_TOKEN),
        shop_url = shop.base_url(),
        crm_url = crm.base_url(),
        crm_token = secret_ref(dir.path(), "crm", CRM_TOKEN),
        hook = secret_ref(dir.path(), "hook", HOOK_PASSWORD),
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
    // Each side reports its changes to Switchboard, as a two-way sync needs.
    for topic in ["customers/create", "customers/update"] {
        shop.subscribe(topic, &format!("http://{}/webhooks/shop", ingest.addr))
            .unwrap();
    }
    subscribe_to_persons(&crm, CRM_TOKEN, ingest.addr, HOOK_PASSWORD).await;

    let email = "two.way@example.com";
    shop.trigger_customer_change(&CustomerChange {
        email: email.into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        ..CustomerChange::default()
    })
    .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || crm
            .person_by_email(email)
            .is_some())
        .await,
        "the Shopify customer became a Pipedrive person"
    );

    // A phone added in Pipedrive reaches Shopify.
    let person = crm.person_by_email(email).unwrap();
    let phone = "+31205550199";
    let edited = reqwest::Client::new()
        .patch(format!("{}/api/v2/persons/{}", crm.base_url(), person.id))
        .header("x-api-token", CRM_TOKEN)
        .json(&json!({"phones": [{"value": phone, "primary": true, "label": "work"}]}))
        .send()
        .await
        .unwrap();
    assert!(edited.status().is_success());
    assert!(
        eventually(Duration::from_secs(60), || shop
            .customer_by_email(email)
            .is_some_and(|c| c.phone.as_deref() == Some(phone)))
        .await,
        "the phone added in Pipedrive reached Shopify"
    );

    // A rename in Shopify reaches Pipedrive.
    shop.trigger_customer_change(&CustomerChange {
        email: email.into(),
        first_name: Some("Adaline".into()),
        ..CustomerChange::default()
    })
    .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || crm
            .person_by_email(email)
            .is_some_and(|p| p.first_name.as_deref() == Some("Adaline")))
        .await,
        "the rename in Shopify reached Pipedrive"
    );

    // Every report has come in (Shopify: the create, the echo of the phone, the rename;
    // Pipedrive: the echo of the create, the phone, the echo of the rename) and has been
    // transformed: only the three edits are canonical changes.
    for connection in ["shop.customers", "crm.persons"] {
        let raw = format!("{prefix}.raw.{connection}");
        transformed(&raw, 3, &format!("{prefix}.transformer")).await;
    }
    let canonical = read_topic(
        &kafka_bootstrap(),
        &format!("{prefix}.canonical.contact"),
        usize::MAX,
        Duration::from_secs(3),
        Duration::ZERO,
    );
    assert_eq!(canonical.len(), 3, "three edits, no echo among them");
    assert_eq!(crm.persons().len(), 1);
    assert_eq!(crm.total_creates(), 1, "the person created once");
    assert_eq!(shop.customers().len(), 1, "no second customer");
}
