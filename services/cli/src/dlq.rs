//! `switchboard dlq list | show | redrive | discard`: a sink connection's dead-letter queue
//! through `switchboard_core::dlq`.
//!
//! Guarantee: redrive and discard keep per-key order (a failed record goes first, then its
//! parked followers, as they sit in the DLQ) and never resend a record already handled;
//! long runs show a progress bar on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use switchboard_core::dlq::{Action, Dlq, DlqEntry, Filter};

use crate::cluster::{ClusterArgs, parse_time};
use crate::output::Report;

/// `switchboard dlq …`
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Lists the DLQ: key, error class, message, attempts, first failure, parked or not,
    /// and whether an operator already handled it.
    List(DlqArgs),
    /// Shows the selected records in full (headers and value).
    Show(DlqArgs),
    /// Sends the selected failed records, each followed by its parked followers, back to
    /// the sink's tier-0 retry topic.
    Redrive(DlqArgs),
    /// Gives up the selected failed records and redrives their parked followers.
    Discard(DlqArgs),
}

/// Which DLQ and which records.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// The sink connection whose DLQ this is.
    #[arg(long)]
    pub connection: String,
    /// Only this error class (transient, rate_limit, auth, data, conflict).
    #[arg(long)]
    pub class: Option<String>,
    /// Only this key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only records that entered the DLQ at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this record, `<partition>/<offset>`.
    #[arg(long)]
    pub id: Option<String>,
    /// Print the plan, change nothing (redrive and discard).
    #[arg(long)]
    pub dry_run: bool,
    /// Cluster to work on.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The DLQ report.
#[derive(Debug, Serialize)]
pub struct DlqReport {
    /// The DLQ topic.
    pub topic: String,
    /// Records listed, or the records sent (in order) for redrive and discard.
    pub records: Vec<DlqRow>,
    /// Records sent to the retry topic (0 for list, show and dry runs).
    pub sent: usize,
}

/// One record in the report.
#[derive(Debug, Serialize)]
pub struct DlqRow {
    /// The entry.
    #[serde(flatten)]
    pub entry: DlqEntry,
    /// The action taken or planned (redrive and discard).
    pub action: Option<Action>,
    /// Headers and value (show only).
    pub detail: Option<serde_json::Value>,
}

impl Report for DlqReport {
    fn passed(&self) -> bool {
        true
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<8} {:<38} {:<10} {:>3} {:<25} {:<6} {:<8} MESSAGE\n",
            "ID", "KEY", "CLASS", "ATT", "FIRST FAILURE", "PARKED", "HANDLED"
        );
        for r in &self.records {
            let e = &r.entry;
            out.push_str(&format!(
                "{:<8} {:<38} {:<10} {:>3} {:<25} {:<6} {:<8} {}\n",
                e.id(),
                e.key,
                e.class.as_deref().unwrap_or("-"),
                e.attempts.map_or("-".to_owned(), |a| a.to_string()),
                e.first_failed_at.as_deref().unwrap_or("-"),
                if e.parked { "yes" } else { "no" },
                r.action
                    .map(Action::as_str)
                    .or(e.handled.as_deref())
                    .unwrap_or("-"),
                e.message.as_deref().unwrap_or(""),
            ));
            if let Some(detail) = &r.detail {
                out.push_str(&format!("  {detail}\n"));
            }
        }
        out.push_str(&format!(
            "{} record(s) in {}; {} sent to the retry topic\n",
            self.records.len(),
            self.topic,
            self.sent
        ));
        out
    }
}

/// A progress bar for `len` records on stderr.
pub fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} records {eta}") {
        bar.set_style(style);
    }
    bar
}

/// Runs one `dlq` command.
pub async fn run(command: &DlqCommand) -> anyhow::Result<DlqReport> {
    let (args, action) = match command {
        DlqCommand::List(a) | DlqCommand::Show(a) => (a, None),
        DlqCommand::Redrive(a) => (a, Some(Action::Redrive)),
        DlqCommand::Discard(a) => (a, Some(Action::Discard)),
    };
    let kafka = args.cluster.kafka()?;
    let filter = Filter {
        class: args.class.clone(),
        key: args.key.clone(),
        since: args.since.as_deref().map(parse_time).transpose()?,
        id: args.id.clone(),
    };
    let dlq = Dlq::load(&kafka, &args.connection).await?;
    let show = matches!(command, DlqCommand::Show(_));
    let Some(action) = action else {
        // Listing shows parked followers too: they are what an operator waits on.
        let list_filter = |e: &DlqEntry| {
            let mut f = filter.clone();
            f.id = None;
            let as_failed = DlqEntry {
                parked: false,
                ..e.clone()
            };
            f.matches(&as_failed) && filter.id.as_ref().is_none_or(|id| &e.id() == id)
        };
        let records = dlq
            .entries()
            .into_iter()
            .filter(|e| list_filter(e))
            .map(|e| DlqRow {
                entry: e.clone(),
                action: None,
                detail: show.then(|| detail(&dlq, e)),
            })
            .collect();
        return Ok(DlqReport {
            topic: dlq.topic().to_owned(),
            records,
            sent: 0,
        });
    };
    let plan = dlq.plan(&filter, action);
    let mut sent = 0;
    if !args.dry_run && !plan.is_empty() {
        let bar = progress(plan.len());
        sent = dlq.execute(&plan, |n| bar.set_position(n as u64)).await?;
        bar.finish_and_clear();
    }
    let records = plan
        .into_iter()
        .map(|(entry, action)| DlqRow {
            entry,
            action: Some(action),
            detail: None,
        })
        .collect();
    Ok(DlqReport {
        topic: dlq.topic().to_owned(),
        records,
        sent,
    })
}

fn detail(dlq: &Dlq, e: &DlqEntry) -> serde_json::Value {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let Some(m) = dlq.message(&e.id()) else {
        return serde_json::Value::Null;
    };
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|one| {
                    let value = one.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    (one.key.to_owned(), serde_json::json!(value))
                })
                .collect()
        })
        .unwrap_or_default();
    let value = m.payload().map(|p| match std::str::from_utf8(p) {
        Ok(text) => serde_json::json!(text),
        Err(_) => serde_json::json!(format!("<{} bytes, Avro>", p.len())),
    });
    serde_json::json!({"headers": headers, "value": value})
}
