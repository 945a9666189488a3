//! A canonical entity added by files alone: `ticket.v1.avsc` in the schemas directory, a
//! mapping in the mappings directory and a few lines of configuration. A helpdesk's signed
//! webhooks (a generic HTTP source) create, update and delete a ticket, and each change
//! reaches a generic REST target through ingest, the transformer and the sink, with no
//! code that knows what a ticket is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_tests::*;

use crate::targets_exactly_once::rest;

const HOOK_SECRET: &str = "helpdesk-signing-secret";

const TICKET_V1: &str = r#"{
  "type": "record",
  "name": "Ticket",
  "namespace": "io.switchboard.canonical",
  "doc": "A support ticket: added by a file, not by a build.",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "subject", "type": "string"},
    {"name": "status", "type": ["null", "string"], "default": null},
    {"name": "requester_email", "type": ["null", "string"], "default": null},
    {"name": "deleted", "type": "boolean", "default": false},
    {"name": "source_connection", "type": "string"},
    {"name": "source_entity", "type": "string"},
    {"name": "source_id", "type": "string"},
    {"name": "source_updated_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
    {"name": "source_event_id", "type": "string"},
    {"name": "mapping", "type": "string"}
  ]
}"#;

const TICKET_MAPPING: &str = r#"# Helpdesk ticket -> canonical Ticket v1
{
  subject: (.subject // ""),
  status: .status,
  requester_email: .requester.email
}
"#;

/// The schemas and mappings directories of this deployment: the ticket's files only.
fn files(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let schemas = root.join("schemas");
    std::fs::create_dir_all(schemas.join("canonical")).unwrap();
    std::fs::write(schemas.join("canonical/ticket.v1.avsc"), TICKET_V1).unwrap();
    let mappings = root.join("mappings");
    let fixtures = mappings.join("desk/ticket-to-ticket.fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::write(mappings.join("desk/ticket-to-ticket.v1.jq"), TICKET_MAPPING).unwrap();
    let sample = ticket(7, "open", "Printer on fire", 1);
    std::fs::write(fixtures.join("created.json"), sample.to_string()).unwrap();
    (schemas, mappings)
}

fn ticket(id: u64, op: &str, subject: &str, at: i64) -> Value {
    json!({"id": id, "op": op, "subject": subject, "status": "open",
        "requester": {"email": "ada@example.com"}, "updated_at": 1_767_225_600 + at})
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_entity_added_by_files_flows_from_webhook_to_a_rest_target() {
    init_logging();
    ensure_stack();
    let dir = tempfile::tempdir().unwrap();
    let (schemas, mappings) = files(dir.path());
    let api = rest::Api::default();
    let url = rest::serve(api.clone()).await;
    let prefix = unique_prefix("ticket");
    let yaml = format!(
        r#"
kafka: {{bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}", partitions: 1}}
registry: {{url: "{registry}"}}
connections:
  desk:
    type: http
    webhook: {{secret: "{secret}", entity: tickets, operation_pointer: /op, timestamp_pointer: /updated_at}}
  helpdesk:
    type: http
    target:
      base_url: "{url}"
      path: /things
      update_path: "/things/{{id}}"
      delete_path: "/things/{{id}}"
      search_path: "/things?switchboard_id={{key}}"
      search_pointer: /items/0/id
      id_pointer: /data/id
      bearer: "{bearer}"
flows:
  - {{name: tickets, from: desk.tickets, mapping: desk/ticket-to-ticket.v1, to: ticket, sinks: [{{target: helpdesk.tickets}}]}}
ingest: {{listen: "127.0.0.1:0"}}
transformer: {{admin_listen: "127.0.0.1:0", mappings_dir: "{mappings}", schemas_dir: "{schemas}", linger_ms: 10}}
sink: {{admin_listen: "127.0.0.1:0", max_backoff_ms: 1000, retry_tiers_secs: [5]}}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        secret = secret_ref(dir.path(), "hook", HOOK_SECRET),
        bearer = secret_ref(dir.path(), "bearer", "rest-token"),
        mappings = mappings.display(),
        schemas = schemas.display(),
    );
    let config = load(&yaml);
    let services = Services::default();
    let ingest = switchboard_ingest_webhook::start(config.clone(), services.token())
        .await
        .unwrap();
    wait_ready(ingest.addr).await;
    let addr = ingest.addr;
    services.keep("ingest", ingest.task);
    let transformer = switchboard_transformer::start(config.clone(), services.token())
        .await
        .unwrap();
    wait_ready(transformer.admin).await;
    services.keep("transformer", transformer.task);
    let sink = switchboard_sink::start(config, services.token())
        .await
        .unwrap();
    services.keep("sink", sink.task);
    let http = reqwest::Client::new();
    let send = |body: Value| {
        let http = http.clone();
        let url = format!("http://{addr}/webhooks/desk");
        async move {
            let body = body.to_string().into_bytes();
            http.post(url)
                .header("x-signature", sign(&body))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let subjects = || {
        api.things
            .lock()
            .unwrap()
            .values()
            .map(|t| t["subject"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };

    assert_eq!(send(ticket(7, "create", "Printer on fire", 1)).await, 200);
    let created = eventually(Duration::from_secs(90), || {
        subjects() == ["Printer on fire"]
    })
    .await;
    assert!(created, "the ticket reached the target: {:?}", subjects());
    let thing = api.things.lock().unwrap().values().next().cloned().unwrap();
    assert_eq!(thing["requester_email"], "ada@example.com");
    assert_eq!(thing["source_entity"], "tickets");

    assert_eq!(
        send(ticket(7, "update", "Printer still on fire", 2)).await,
        200
    );
    let updated = eventually(Duration::from_secs(60), || {
        subjects() == ["Printer still on fire"]
    })
    .await;
    assert!(updated, "the update reached it: {:?}", subjects());

    assert_eq!(send(ticket(7, "delete", "", 3)).await, 200);
    let deleted = eventually(Duration::from_secs(60), || {
        api.things.lock().unwrap().is_empty()
    })
    .await;
    assert!(deleted, "the delete reached it: {:?}", subjects());
    assert_eq!(*api.creates.lock().unwrap(), 1, "created once");
    assert_eq!(*api.deletes.lock().unwrap(), [204], "deleted once");

    // A forged delivery is refused and changes nothing.
    let body = ticket(8, "create", "Forged", 4).to_string();
    let forged = http
        .post(format!("http://{addr}/webhooks/desk"))
        .header("x-signature", sign(b"something else"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    services.stop().await.unwrap();
    assert_eq!(*api.creates.lock().unwrap(), 1);
}
