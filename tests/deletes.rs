//! Deletions reach the targets: a record the source deleted deletes the target's record
//! linked to it, once however often the deletion is redelivered; a deletion of a record
//! never delivered deletes nothing, and says so on `sb.deliveries`; a record that comes
//! back after its deletion is created anew. (Shopify, Exact and the generic HTTP target:
//! in their own files; the flow from a Shopify webhook: `echo.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::targets_support as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use switchboard_core::audit::DeliveryOutcome;
use switchboard_sandbox::{PipedriveConfig, PipedriveSandbox};
use switchboard_tests::*;
use tokio_util::sync::CancellationToken;

fn contact(i: usize, name: &str, deleted: bool) -> Value {
    canonical(
        "contact",
        "persons",
        &format!("p{i}"),
        json!({"email": format!("gone{i}@example.com"), "first_name": name, "deleted": deleted}),
    )
}

/// The latest outcome on `<prefix>.deliveries` of canonical record `id` that satisfies
/// `done`, once there is one.
pub(crate) async fn outcome_of(
    prefix: &str,
    id: &str,
    done: impl Fn(&DeliveryOutcome) -> bool,
) -> DeliveryOutcome {
    let topic = format!("{prefix}.deliveries");
    for _ in 0..60 {
        let latest = read_topic(
            &kafka_bootstrap(),
            &topic,
            usize::MAX,
            Duration::from_secs(1),
            Duration::ZERO,
        )
        .iter()
        .filter_map(|m| {
            serde_json::from_slice::<DeliveryOutcome>(rdkafka::Message::payload(m)?).ok()
        })
        .filter(|o| o.canonical_id == id && done(o))
        .last();
        if let Some(o) = latest {
            return o;
        }
    }
    panic!("no outcome for {id} on {topic} within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deletion_reaches_pipedrive_once_and_a_record_back_from_it_is_created_anew() {
    init_logging();
    ensure_stack();
    let crm = PipedriveSandbox::start(PipedriveConfig::new("crm-delete-token"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("pd-delete");
    let connection = format!(
        "  crm:\n    type: pipedrive\n    base_url: \"{}\"\n    api_token: \"{}\"\n",
        crm.base_url(),
        secret_ref(dir.path(), "crm", "crm-delete-token")
    );
    let flows = "  - {name: c, from: src.persons, mapping: test/c.v1, to: contact, sinks: [{target: crm.persons}]}";
    let yaml = sink_yaml(&prefix, &connection, flows, "");
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    switchboard_sink::start(load(&yaml), stop.clone())
        .await
        .unwrap();

    let created: Vec<_> = (0..4).map(|i| contact(i, "Ada", false)).collect();
    produce(&prefix, "contact", &created).await;
    assert!(
        eventually(Duration::from_secs(60), || crm.persons().len() == 4).await,
        "four persons created"
    );
    let linked: Vec<u64> = (0..2)
        .map(|i| {
            crm.person_by_email(&format!("gone{i}@example.com"))
                .unwrap()
                .id
        })
        .collect();

    // p0 and p1 deleted, each deletion delivered twice; p9 deleted without ever being
    // delivered here.
    let deleted = [contact(0, "Ada", true), contact(1, "Ada", true)];
    produce(&prefix, "contact", &deleted).await;
    produce(&prefix, "contact", &deleted).await;
    produce(&prefix, "contact", &[contact(9, "Ada", true)]).await;

    let never = outcome_of(
        &prefix,
        contact(9, "", true)["id"].as_str().unwrap(),
        |_| true,
    )
    .await;
    assert!(
        never
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no record here is linked")),
        "{never:?}"
    );
    assert!(
        eventually(Duration::from_secs(60), || crm.persons().len() == 2).await,
        "the two deleted persons are gone, the others stay"
    );
    for id in &linked {
        assert!(crm.person(*id).unwrap().is_deleted, "person {id} deleted");
    }
    for i in 2..4 {
        assert!(
            crm.person_by_email(&format!("gone{i}@example.com"))
                .is_some()
        );
    }
    // The second delivery of each deletion is answered 404, and counts as done.
    let deletes = || calls(crm.control(), "DELETE").len();
    assert!(
        eventually(Duration::from_secs(60), || deletes() == 4).await,
        "each deletion delivered twice"
    );
    for (i, id) in linked.iter().enumerate() {
        let last = outcome_of(&prefix, deleted[i]["id"].as_str().unwrap(), |_| true).await;
        assert_eq!(last.native_id, Some(id.to_string()));
        let deletes = calls(crm.control(), "DELETE")
            .into_iter()
            .filter(|r| r.path == format!("/api/v2/persons/{id}"))
            .map(|r| r.status)
            .collect::<Vec<_>>();
        assert_eq!(
            deletes,
            [200, 404],
            "person {id}: deleted once, then found gone"
        );
    }

    // p0 back from its deletion: its link leads to a deleted person, so a new one is made.
    produce(&prefix, "contact", &[contact(0, "Ada again", false)]).await;
    assert!(
        eventually(Duration::from_secs(60), || crm
            .person_by_email("gone0@example.com")
            .is_some_and(|p| p.id != linked[0]))
        .await,
        "p0 is in Pipedrive again"
    );
    assert_eq!(crm.creates_for_email("gone0@example.com"), 2);
    assert_eq!(crm.persons().len(), 3);
}
