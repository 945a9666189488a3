//! Exact emulator sync API contract (saas-contracts.md §3.4–§3.5): the Timestamp cursor,
//! 1000-row pages with `__next`, the Timestamp-only filter, mandatory `$select`,
//! `sync/Deleted` with EntityType 2/13, and a division move.
//!
//! The main test is a client written here from the documented algorithm (Exact's official
//! sync demo, `CrmAccountProcess.cs` / `DeletedProcess.cs`): ask `Timestamp gt <cursor>L`,
//! follow `__next`, keep the highest Timestamp and store it only after the last page,
//! update a local row only for a higher Timestamp, then apply `sync/Deleted` entries to
//! rows whose Timestamp is not newer. It walks 5,000 accounts while records are updated,
//! deleted and added *between pages*, and is checked against the emulator's change log:
//! no (ID, Timestamp) arrives twice, and every change arrived unless a later change to the
//! same record superseded it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::exact_helpers as helpers;

use std::collections::{HashMap, HashSet};

use helpers::*;
use serde_json::{Value, json};
use switchboard_sandbox::exact::{ChangeKind, Entity, ExactSandbox};
use uuid::Uuid;

const SYNC_ACCOUNTS: &str = "123456/sync/CRM/Accounts";

/// The documented client's state.
#[derive(Default)]
struct SyncClient {
    cursor: i64,
    deleted_cursor: i64,
    /// ID → (Timestamp, Name)
    local: HashMap<Uuid, (i64, String)>,
    received: HashSet<(Uuid, i64)>,
    deletions: HashSet<i64>,
    page_sizes: Vec<usize>,
}

impl SyncClient {
    fn new() -> Self {
        // "On the first run for a division, filter Timestamp gt 1."
        Self {
            cursor: 1,
            deleted_cursor: 1,
            ..Self::default()
        }
    }

    /// One run. `between` is called after each page with the page number (from 1).
    async fn run(&mut self, api: &Api, mut between: impl FnMut(usize)) {
        let mut url = format!(
            "{SYNC_ACCOUNTS}?$filter=Timestamp gt {}L&$select=ID,Name,Timestamp",
            self.cursor
        );
        let mut highest = self.cursor;
        let mut page = 0;
        loop {
            let body = api.get_json(&url).await;
            page += 1;
            let rows = body["d"]["results"].as_array().unwrap();
            self.page_sizes.push(rows.len());
            for row in rows {
                let id = Uuid::parse_str(row["ID"].as_str().unwrap()).unwrap();
                let ts = row["Timestamp"].as_i64().unwrap();
                assert!(ts > self.cursor, "served a row at or below the cursor");
                assert!(
                    self.received.insert((id, ts)),
                    "change ({id}, {ts}) arrived twice"
                );
                highest = highest.max(ts);
                let newer = self
                    .local
                    .get(&id)
                    .is_none_or(|(local_ts, _)| *local_ts < ts);
                if newer {
                    self.local
                        .insert(id, (ts, row["Name"].as_str().unwrap().to_owned()));
                }
            }
            let next = body["d"]
                .get("__next")
                .and_then(Value::as_str)
                .map(str::to_owned);
            between(page);
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        self.cursor = highest;

        let mut url = format!(
            "123456/sync/Deleted?$filter=Timestamp gt {}L and EntityType eq 2&$select=EntityKey,EntityType,Timestamp",
            self.deleted_cursor
        );
        let mut highest = self.deleted_cursor;
        loop {
            let body = api.get_json(&url).await;
            for row in body["d"]["results"].as_array().unwrap() {
                assert_eq!(row["EntityType"], json!(2));
                let key = Uuid::parse_str(row["EntityKey"].as_str().unwrap()).unwrap();
                let ts = row["Timestamp"].as_i64().unwrap();
                assert!(self.deletions.insert(ts), "deletion {ts} arrived twice");
                highest = highest.max(ts);
                if self
                    .local
                    .get(&key)
                    .is_some_and(|(local_ts, _)| *local_ts <= ts)
                {
                    self.local.remove(&key);
                }
            }
            match body["d"].get("__next").and_then(Value::as_str) {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        self.deleted_cursor = highest;
    }
}

/// Updates `n` accounts, deletes `n / 2` and adds `n / 2`, picking from `ids` (both ends,
/// so rows already served and rows still to come are hit).
fn churn(sb: &ExactSandbox, ids: &mut Vec<Uuid>, n: usize, round: usize) {
    for (i, id) in ids
        .iter()
        .take(n / 2)
        .chain(ids.iter().rev().take(n / 2))
        .enumerate()
    {
        sb.upsert_account(json!({"ID": id, "Name": format!("Renamed {round}-{i}")}))
            .unwrap();
    }
    for _ in 0..n / 4 {
        let first = ids.remove(0);
        assert!(sb.delete_account(first));
        let last = ids.pop().unwrap();
        assert!(sb.delete_account(last));
    }
    for i in 0..n / 2 {
        ids.push(
            sb.upsert_account(json!({"Name": format!("New {round}-{i}")}))
                .unwrap(),
        );
    }
}

#[tokio::test]
async fn a_cursor_walk_over_5000_accounts_with_changes_between_pages_neither_misses_nor_repeats() {
    let sb = start(config()).await;
    let mut ids = sb.generate_accounts(5000);
    let api = Api::new(&sb);
    let mut client = SyncClient::new();
    let mut round = 0;
    client
        .run(&api, |page| {
            if page <= 4 {
                round += 1;
                churn(&sb, &mut ids, 40, round);
            }
        })
        .await;
    assert_eq!(&client.page_sizes[..5], &[1000; 5], "pages of 1000");
    assert!(client.page_sizes.len() >= 6, "{:?}", client.page_sizes);

    // Changes between runs, then runs until nothing new arrives.
    churn(&sb, &mut ids, 40, 99);
    client.run(&api, |_| {}).await;
    client.run(&api, |_| {}).await;

    // Final state equals the emulator's.
    let live: HashMap<Uuid, (i64, String)> = sb
        .accounts()
        .iter()
        .map(|a| {
            let id = Uuid::parse_str(a["ID"].as_str().unwrap()).unwrap();
            (
                id,
                (
                    a["Timestamp"].as_i64().unwrap(),
                    a["Name"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(live.len(), ids.len());
    assert_eq!(client.local, live, "the client's copy equals the source");

    // Against the change log: nothing missed unless superseded, nothing invented.
    let log: Vec<_> = sb
        .change_log()
        .into_iter()
        .filter(|c| c.entity == Entity::Account)
        .collect();
    let mut last_change: HashMap<Uuid, i64> = HashMap::new();
    for c in &log {
        last_change.insert(c.id, c.timestamp);
    }
    for c in &log {
        let superseded = last_change[&c.id] > c.timestamp;
        match c.kind {
            ChangeKind::Insert | ChangeKind::Update => assert!(
                superseded || client.received.contains(&(c.id, c.timestamp)),
                "missed {c:?}"
            ),
            ChangeKind::Delete => assert!(client.deletions.contains(&c.timestamp), "missed {c:?}"),
        }
    }
    let logged: HashSet<(Uuid, i64)> = log.iter().map(|c| (c.id, c.timestamp)).collect();
    assert!(
        client.received.iter().all(|r| logged.contains(r)),
        "a change not in the log was served"
    );
    assert!(
        client.deletions.len() >= 80,
        "deletes were exercised: {}",
        client.deletions.len()
    );
}

#[tokio::test]
async fn sync_filters_on_timestamp_only_and_needs_select() {
    let sb = start(config()).await;
    sb.generate_accounts(3);
    let api = Api::new(&sb);
    for bad in [
        "$filter=Name eq 'x'&$select=ID",
        "$filter=Timestamp ge 1L&$select=ID",
        "$filter=Timestamp gt 1L and Name eq 'x'&$select=ID",
        "$filter=Timestamp gt 1L&$select=ID&$orderby=Name",
    ] {
        let response = api.get(&format!("{SYNC_ACCOUNTS}?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        error_value(&response.json().await.unwrap());
    }
    let no_select = api
        .get(&format!("{SYNC_ACCOUNTS}?$filter=Timestamp gt 1L"))
        .await;
    assert_eq!(no_select.status(), 400);
    assert_eq!(
        error_value(&no_select.json().await.unwrap()),
        "Please add a $select or a $top=1 statement to the query string."
    );
    let body = api
        .get_json(&format!(
            "{SYNC_ACCOUNTS}?$filter=Timestamp gt 1&$select=ID,Code,Timestamp"
        ))
        .await;
    let rows = body["d"]["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let stamps: Vec<i64> = rows
        .iter()
        .map(|r| r["Timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "Timestamp order: {stamps:?}"
    );
    assert!(
        stamps[0] > i64::from(i32::MAX),
        "Timestamps are Int64 values: {stamps:?}"
    );
    assert!(body["d"].get("__next").is_none());
}

#[tokio::test]
async fn deleted_lists_accounts_as_2_and_invoices_as_13() {
    let sb = start(config()).await;
    let account = sb.upsert_account(json!({"Name": "Acme BV"})).unwrap();
    let item = Uuid::new_v4();
    let invoice = sb
        .upsert_sales_invoice(json!({"OrderedBy": account, "Journal": "70", "SalesInvoiceLines": [{"Item": item, "AmountFC": 10}]}))
        .unwrap();
    let api = Api::new(&sb);
    let synced = api.get_json("123456/sync/SalesInvoice/SalesInvoices?$filter=Timestamp gt 1L&$select=InvoiceID,AmountDC,Timestamp").await;
    assert_eq!(
        synced["d"]["results"][0]["InvoiceID"],
        json!(invoice.to_string())
    );
    assert!(sb.delete_sales_invoice(invoice));
    assert!(sb.delete_account(account));
    let body = api.get_json("123456/sync/Deleted?$filter=Timestamp gt 1L&$select=EntityKey,EntityType,Division,ID,Timestamp").await;
    let rows = body["d"]["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["EntityKey"], json!(invoice.to_string()));
    assert_eq!(rows[0]["EntityType"], json!(13));
    assert_eq!(rows[1]["EntityKey"], json!(account.to_string()));
    assert_eq!(rows[1]["EntityType"], json!(2));
    assert_eq!(rows[1]["Division"], json!(DIVISION));
    assert!(rows[0]["Timestamp"].as_i64().unwrap() < rows[1]["Timestamp"].as_i64().unwrap());
    let accounts_only = api
        .get_json(
            "123456/sync/Deleted?$filter=Timestamp gt 1L and EntityType eq 2&$select=EntityKey",
        )
        .await;
    assert_eq!(accounts_only["d"]["results"].as_array().unwrap().len(), 1);
    let log = sb.change_log();
    let kinds: Vec<ChangeKind> = log.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Insert,
            ChangeKind::Insert,
            ChangeKind::Delete,
            ChangeKind::Delete
        ]
    );
    assert_eq!(log[2].timestamp, rows[0]["Timestamp"].as_i64().unwrap());
}

#[tokio::test]
async fn a_division_move_resets_timestamps_and_shows_a_move_date() {
    let sb = start(config()).await;
    sb.generate_accounts(5);
    let api = Api::new(&sb);
    let before = api
        .get_json(&format!(
            "{SYNC_ACCOUNTS}?$filter=Timestamp gt 1L&$select=Timestamp"
        ))
        .await;
    let cursor = before["d"]["results"][4]["Timestamp"].as_i64().unwrap();
    let divisions = api
        .get_json("123456/system/Divisions?$select=Code,DivisionMoveDate")
        .await;
    assert!(divisions["d"]["results"][0]["DivisionMoveDate"].is_null());

    let moved = client()
        .post(format!("{}/_sandbox/exact/division-move", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 204);
    let after = api
        .get_json(&format!(
            "{SYNC_ACCOUNTS}?$filter=Timestamp gt {cursor}L&$select=Timestamp"
        ))
        .await;
    assert!(
        after["d"]["results"].as_array().unwrap().is_empty(),
        "an old cursor now misses everything"
    );
    let all = api
        .get_json(&format!(
            "{SYNC_ACCOUNTS}?$filter=Timestamp gt 1L&$select=Timestamp"
        ))
        .await;
    assert_eq!(all["d"]["results"].as_array().unwrap().len(), 5);
    let divisions = api
        .get_json("123456/system/Divisions?$select=Code,DivisionMoveDate")
        .await;
    assert!(
        divisions["d"]["results"][0]["DivisionMoveDate"]
            .as_str()
            .unwrap()
            .starts_with("/Date(")
    );
}
