//! A custom field filled by mappings and configuration alone: a Shopify customer's tags
//! reach a Pipedrive person's custom field. The deployment adds, as files, contact v3 (with
//! `tags`), a v3 of the Shopify customer mapping that reads them, and a target payload
//! mapping for Pipedrive persons that writes them to the custom field's hash key; the
//! configuration names the two mappings. End to end: signed webhook → ingest → transformer
//! → sink → the Pipedrive sandbox, which refuses custom-field keys that are not hashes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use switchboard_sandbox::{PipedriveConfig, ShopifyWebhooks, StatusCode};
use switchboard_tests::*;

/// The custom field "Shopify tags" of the Pipedrive company, by its 40-hex key.
const TAGS_FIELD: &str = "5a9c1d7e0b3f4a6c8e2d9b1f7a3c5e0d2b4f6a8c";

const PERSON_MAPPING: &str = r#"# canonical Contact -> Pipedrive person (API v2), with the tags in a custom field
def nonempty: select(. != null and . != "");
([.first_name, .last_name] | map(nonempty) | join(" ")) as $name
| {
    name: (if $name == "" then .email else $name end),
    emails: (if .email then [{value: .email, primary: true, label: "work"}] else [] end),
    custom_fields: {"TAGS_FIELD": .tags}
  }
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The project's schemas and mappings plus this deployment's files.
fn deployment_files(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let schemas = root.join("schemas");
    let mappings = root.join("mappings");
    copy_dir(&workspace_root().join("schemas"), &schemas);
    copy_dir(&workspace_root().join("mappings"), &mappings);

    let v2 = std::fs::read_to_string(schemas.join("canonical/contact.v2.avsc")).unwrap();
    let anchor = r#"{"name": "deleted""#;
    assert!(v2.contains(anchor));
    let v3 = v2.replacen(
        anchor,
        &format!(
            r#"{{"name": "tags", "type": ["null", "string"], "default": null, "doc": "Comma-separated tags."}},
    {anchor}"#
        ),
        1,
    );
    std::fs::write(schemas.join("canonical/contact.v3.avsc"), v3).unwrap();

    let shop_v2 =
        std::fs::read_to_string(mappings.join("shopify/customer-to-contact.v2.jq")).unwrap();
    let shop_v3 = shop_v2.replacen(
        "  phone: .phone,",
        "  phone: .phone,\n  tags: (.tags // null | if . == \"\" then null else . end),",
        1,
    );
    assert_ne!(shop_v2, shop_v3);
    std::fs::write(mappings.join("shopify/customer-to-contact.v3.jq"), shop_v3).unwrap();

    let person = mappings.join("pipedrive/contact-to-person.fixtures");
    std::fs::create_dir_all(&person).unwrap();
    std::fs::write(
        mappings.join("pipedrive/contact-to-person.v1.jq"),
        PERSON_MAPPING.replace("TAGS_FIELD", TAGS_FIELD),
    )
    .unwrap();
    std::fs::write(
        person.join("tagged.json"),
        r#"{"id": "c1", "email": "ada@example.com", "first_name": "Ada", "last_name": null, "tags": "vip, wholesale"}"#,
    )
    .unwrap();
    // The other way: the custom field of a Pipedrive person becomes the Shopify tags. A
    // webhook carries a custom field as `{type, value}`, a list as the bare value.
    let crm_v1 =
        std::fs::read_to_string(mappings.join("pipedrive/person-to-contact.v1.jq")).unwrap();
    let crm_v2 = crm_v1.replacen(
        "  phone: primary(.phones)",
        &format!("  phone: primary(.phones),\n  tags: (.custom_fields[\"{TAGS_FIELD}\"] | if type == \"object\" then .value else . end)"),
        1,
    );
    assert_ne!(crm_v1, crm_v2);
    std::fs::write(mappings.join("pipedrive/person-to-contact.v2.jq"), crm_v2).unwrap();
    let customer = mappings.join("shopify/contact-to-customer.fixtures");
    std::fs::create_dir_all(&customer).unwrap();
    std::fs::write(
        mappings.join("shopify/contact-to-customer.v1.jq"),
        CUSTOMER_MAPPING,
    )
    .unwrap();
    std::fs::write(
        customer.join("tagged.json"),
        r#"{"id": "c1", "email": "ada@example.com", "first_name": "Ada", "last_name": null, "phone": null, "tags": "vip"}"#,
    )
    .unwrap();
    (schemas, mappings)
}

const CUSTOMER_MAPPING: &str = r#"# canonical Contact -> Shopify customer, the tags from the contact's
{email, first_name, last_name, tags: (.tags // "switchboard")}
| with_entries(select(.value != null and .value != ""))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shopify_tag_fills_a_pipedrive_custom_field_through_mappings_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (schemas, mappings) = deployment_files(dir.path());
    let mut world = World::new("custom-field", PipedriveConfig::new(CRM_TOKEN)).await;
    let shipped = workspace_root().join("mappings");
    let edits = [
        (
            "mapping: shopify/customer-to-contact.v1".to_owned(),
            "mapping: shopify/customer-to-contact.v3".to_owned(),
        ),
        (
            format!("  mappings_dir: \"{}\"", shipped.display()),
            format!("  mappings_dir: \"{}\"", mappings.display()),
        ),
        (
            format!(
                "  schemas_dir: \"{}\"",
                workspace_root().join("schemas").display()
            ),
            format!("  schemas_dir: \"{}\"", schemas.display()),
        ),
        (
            "        match_on: email\n".to_owned(),
            "        match_on: email\n        mapping: pipedrive/contact-to-person.v1\n".to_owned(),
        ),
        (
            "sink:\n".to_owned(),
            format!("sink:\n  mappings_dir: \"{}\"\n", mappings.display()),
        ),
    ];
    for (from, to) in edits {
        assert!(world.yaml.contains(&from), "{from}");
        world.yaml = world.yaml.replacen(&from, &to, 1);
    }
    let shop = world.start_ingest().await;
    world.start_transformer().await;
    world.start_sink().await;

    let mut customer = ShopifyWebhooks::customer_payload(
        71,
        "ada@example.com",
        "Ada",
        "Lovelace",
        time::OffsetDateTime::now_utc(),
    );
    customer["tags"] = "vip, wholesale".into();
    let status = shop
        .send(
            "customers/create",
            &serde_json::to_vec(&customer).unwrap(),
            "wh-tags-1",
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let field = |world: &World| {
        world
            .pipedrive
            .person_by_email("ada@example.com")
            .and_then(|p| p.custom_fields.get(TAGS_FIELD).cloned())
    };
    assert!(
        eventually(Duration::from_secs(60), || field(&world)
            == Some("vip, wholesale".into()))
        .await,
        "the tags reached the custom field: {:?}",
        world.pipedrive.persons()
    );
    let person = world.pipedrive.person_by_email("ada@example.com").unwrap();
    assert_eq!(person.name, "Ada Lovelace");

    // A changed tag updates the same person's field.
    customer["tags"] = "vip".into();
    let status = shop
        .send(
            "customers/update",
            &serde_json::to_vec(&customer).unwrap(),
            "wh-tags-2",
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(60), || field(&world)
            == Some("vip".into()))
        .await,
        "the changed tag reached it: {:?}",
        world.pipedrive.persons()
    );
    assert_eq!(world.pipedrive.creates_for_email("ada@example.com"), 1);
    world.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipedrive_custom_field_fills_shopify_tags_through_mappings_alone() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let (schemas, mappings) = deployment_files(dir.path());
    let shop = switchboard_sandbox::ShopifySandbox::start(switchboard_sandbox::ShopifyConfig::new(
        "shpat_tags",
    ))
    .await
    .unwrap();
    let crm = switchboard_sandbox::PipedriveSandbox::start(PipedriveConfig::new(CRM_TOKEN))
        .await
        .unwrap();
    let prefix = unique_prefix("custom-field-back");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 1}}
registry: {{url: "{registry}"}}
connections:
  shop: {{type: shopify, shop_domain: "{domain}", api_version: "2025-01", webhook_secret: "{secret}", access_token: "{token}", base_url: "{shop_url}"}}
  crm:
    type: pipedrive
    base_url: "{crm_url}"
    api_token: "{crm_token}"
    webhook_auth: {{username: switchboard, password: "{hook}"}}
flows:
  - name: crm-persons-to-shop
    from: crm.persons
    mapping: pipedrive/person-to-contact.v2
    to: contact
    sinks: [{{target: shop.customers, mapping: shopify/contact-to-customer.v1}}]
ingest: {{listen: "127.0.0.1:0"}}
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{mappings}", schemas_dir: "{schemas}", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 2000, mappings_dir: "{mappings}"}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        domain = shop.shop_domain(),
        secret = secret_ref(dir.path(), "shop", "shop-secret"),
        token = secret_ref(dir.path(), "shop-token", "shpat_tags"),
        shop_url = shop.base_url(),
        crm_url = crm.base_url(),
        crm_token = secret_ref(dir.path(), "crm", CRM_TOKEN),
        hook = secret_ref(dir.path(), "hook", "hook-password"),
        mappings = mappings.display(),
        schemas = schemas.display(),
    );
    let services = Services::default();
    let config = load(&yaml);
    let ingest = switchboard_ingest_webhook::start(config.clone(), services.token())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let addr = ingest.addr;
    services.keep("ingest", ingest.task);
    let transformer = switchboard_transformer::start(config.clone(), services.token())
        .await
        .unwrap();
    services.keep("transformer", transformer.task);
    let sink = switchboard_sink::start(config, services.token())
        .await
        .unwrap();
    services.keep("sink", sink.task);
    subscribe_to_persons(&crm, CRM_TOKEN, addr, "hook-password").await;

    let created = reqwest::Client::new()
        .post(format!("{}/api/v2/persons", crm.base_url()))
        .header("x-api-token", CRM_TOKEN)
        .json(&serde_json::json!({"name": "Grace Hopper",
            "emails": [{"value": "grace@example.com", "primary": true, "label": "work"}],
            "custom_fields": {TAGS_FIELD: "wholesale"}}))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "{}",
        created.text().await.unwrap()
    );
    assert!(
        eventually(Duration::from_secs(60), || shop
            .customer_by_email("grace@example.com")
            .is_some_and(|c| c.tags == "wholesale"))
        .await,
        "the custom field reached the Shopify tags: {:?}",
        shop.customer_by_email("grace@example.com")
    );
    services.stop().await.unwrap();
}
