//! `switchboard replay`: rewind a consumer group (the semantics of `kafka-consumer-groups
//! --reset-offsets`, through `switchboard_core::replay`), or re-publish the records of one key
//! or one source record to their topic (`switchboard_core::republish`).
//!
//! Guarantee: a rewind is planned first and committed only when the group has no active
//! members (their commits would overwrite it); `--dry-run` prints the plan, per partition,
//! and changes nothing. A selective replay writes the chosen records again in their order;
//! every stage downstream is idempotent, so they change nothing a first delivery did not.

use serde::Serialize;
use switchboard_core::replay::{self, PartitionPlan, ResetTo};
use switchboard_core::republish::{self, Select};

use crate::cluster::{ClusterArgs, blocking, parse_time};
use crate::output::Report;

/// `switchboard replay` options.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(
    ["to_datetime", "to_offset", "to_earliest", "key", "record"])))]
pub struct ReplayArgs {
    /// Consumer group to rewind (required unless --key or --record).
    #[arg(long, required_unless_present_any = ["key", "record"])]
    pub group: Option<String>,
    /// Topic(s) to rewind or re-publish on (repeat for several).
    #[arg(long, required = true)]
    pub topic: Vec<String>,
    /// Rewind to the first record at or after this time (RFC 3339).
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// Rewind every partition to this offset (clamped to what the partition retains).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Rewind to the earliest retained record.
    #[arg(long)]
    pub to_earliest: bool,
    /// Re-publish every record with this key.
    #[arg(long)]
    pub key: Option<String>,
    /// Re-publish the records of this source record ID (the key of raw topics) or change
    /// event ID (`sb.event.id` header).
    #[arg(long)]
    pub record: Option<String>,
    /// Print what would happen, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cluster to work on.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One partition of a rewind, or the records a selective replay re-publishes.
#[derive(Debug, Serialize)]
pub struct ReplayPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset before (rewinds only).
    pub current: Option<i64>,
    /// Offset after (rewinds only).
    pub new: Option<i64>,
    /// Records the group reads again, or records re-published.
    pub records: i64,
}

/// The replay report.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// `rewind` or `republish`.
    pub mode: &'static str,
    /// Whether anything was changed.
    pub applied: bool,
    /// Active members of the group (a rewind is refused while there are any).
    pub members: usize,
    /// Per partition.
    pub partitions: Vec<ReplayPartition>,
    /// Why nothing was applied, if so.
    pub refused: Option<String>,
}

impl ReplayReport {
    /// Records replayed in total.
    pub fn total(&self) -> i64 {
        self.partitions.iter().map(|p| p.records).sum()
    }
}

impl Report for ReplayReport {
    fn passed(&self) -> bool {
        self.refused.is_none()
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<40} {:>4} {:>10} {:>10} {:>8}\n",
            "TOPIC", "PART", "CURRENT", "NEW", "RECORDS"
        );
        let show = |o: Option<i64>| o.map_or("-".to_owned(), |o| o.to_string());
        for p in &self.partitions {
            out.push_str(&format!(
                "{:<40} {:>4} {:>10} {:>10} {:>8}\n",
                p.topic,
                p.partition,
                show(p.current),
                show(p.new),
                p.records
            ));
        }
        let verb = if self.applied {
            "replayed"
        } else {
            "would replay (dry run)"
        };
        match &self.refused {
            Some(reason) => out.push_str(&format!("refused: {reason}\n")),
            None => out.push_str(&format!("{} record(s) {verb}\n", self.total())),
        }
        out
    }
}

/// Plans and (unless a dry run) applies the replay.
pub async fn run(args: &ReplayArgs) -> anyhow::Result<ReplayReport> {
    let kafka = args.cluster.kafka()?;
    let select = match (&args.key, &args.record) {
        (Some(k), _) => Some(Select::Key(k.clone())),
        (_, Some(r)) => Some(Select::Record(r.clone())),
        _ => None,
    };
    if let Some(select) = select {
        return republish_run(args, kafka, select).await;
    }
    let to = match (&args.to_datetime, args.to_offset) {
        (Some(t), _) => ResetTo::Time(parse_time(t)?),
        (_, Some(o)) => ResetTo::Offset(o),
        _ => ResetTo::Earliest,
    };
    let group = args.group.clone().unwrap_or_default();
    let (k, g, topics) = (kafka.clone(), group.clone(), args.topic.clone());
    let (plan, members) = blocking(move || {
        let plan = replay::plan(&k, &g, &topics, to)?;
        Ok((plan, switchboard_core::lag::members(&k, &g)?))
    })
    .await?;
    let partitions = plan.iter().map(row).collect();
    let mut report = ReplayReport {
        mode: "rewind",
        applied: false,
        members,
        partitions,
        refused: None,
    };
    if members > 0 {
        report.refused = Some(format!(
            "group {group} has {members} active member(s); stop its consumers first \
             (their commits would overwrite the rewind)"
        ));
        return Ok(report);
    }
    if !args.dry_run {
        blocking(move || replay::apply(&kafka, &group, &plan)).await?;
        report.applied = true;
    }
    Ok(report)
}

fn row(p: &PartitionPlan) -> ReplayPartition {
    ReplayPartition {
        topic: p.topic.clone(),
        partition: p.partition,
        current: p.current,
        new: Some(p.new),
        records: p.replayed(),
    }
}

async fn republish_run(
    args: &ReplayArgs,
    kafka: switchboard_core::config::KafkaConfig,
    select: Select,
) -> anyhow::Result<ReplayReport> {
    let mut partitions = Vec::new();
    let mut applied = false;
    for topic in &args.topic {
        let (k, t, s) = (kafka.clone(), topic.clone(), select.clone());
        let records = blocking(move || {
            republish::scan(&k, &t, std::time::Duration::from_secs(120), |m| {
                s.matches(m)
            })
        })
        .await?;
        let mut counts = std::collections::BTreeMap::<i32, i64>::new();
        for r in &records {
            *counts.entry(rdkafka_partition(r)).or_default() += 1;
        }
        partitions.extend(
            counts
                .into_iter()
                .map(|(partition, records)| ReplayPartition {
                    topic: topic.clone(),
                    partition,
                    current: None,
                    new: None,
                    records,
                }),
        );
        if !args.dry_run {
            let bar = crate::dlq::progress(records.len());
            republish::republish(&kafka, topic, &records, &[], |n| bar.set_position(n as u64))
                .await?;
            bar.finish_and_clear();
            applied = true;
        }
    }
    Ok(ReplayReport {
        mode: "republish",
        applied,
        members: 0,
        partitions,
        refused: None,
    })
}

fn rdkafka_partition(m: &rdkafka::message::OwnedMessage) -> i32 {
    use rdkafka::Message;
    m.partition()
}
