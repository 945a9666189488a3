//! `switchboard lag`: per group, topic and partition, the committed offset against the high
//! watermark (messages) and the age of the first unconsumed record (seconds), from
//! `switchboard_core::lag`. The numbers are what `kafka-consumer-groups --describe` shows
//! as CURRENT-OFFSET, LOG-END-OFFSET and LAG.

use serde::Serialize;
use switchboard_core::lag::{self, PartitionLag};

use crate::cluster::{ClusterArgs, blocking};
use crate::output::Report;

/// `switchboard lag` options.
#[derive(Debug, clap::Args)]
pub struct LagArgs {
    /// Only this consumer group [default: every group under the topic prefix].
    #[arg(long)]
    pub group: Option<String>,
    /// Every group on the cluster, not only those under the topic prefix.
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// Cluster to ask.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The lag report.
#[derive(Debug, Serialize)]
pub struct LagReport {
    /// One row per group, topic and partition with a committed offset.
    pub partitions: Vec<PartitionLag>,
}

impl Report for LagReport {
    fn passed(&self) -> bool {
        true
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<32} {:<40} {:>4} {:>10} {:>10} {:>8} {:>8}\n",
            "GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG", "LAG(s)"
        );
        for r in &self.partitions {
            out.push_str(&format!(
                "{:<32} {:<40} {:>4} {:>10} {:>10} {:>8} {:>8}\n",
                r.group, r.topic, r.partition, r.committed, r.end, r.lag, r.lag_seconds
            ));
        }
        let total: i64 = self.partitions.iter().map(|r| r.lag).sum();
        out.push_str(&format!(
            "{} partition(s), {total} message(s) behind\n",
            self.partitions.len()
        ));
        out
    }
}

/// Measures the lag.
pub async fn run(args: &LagArgs) -> anyhow::Result<LagReport> {
    let kafka = args.cluster.kafka()?;
    let group = args.group.clone();
    let prefix = (!args.all_groups).then(|| format!("{}.", kafka.topic_prefix));
    let partitions = blocking(move || {
        let now = lag::now_millis();
        match group {
            Some(g) => lag::group_lag(&kafka, &g, &[], now),
            None => lag::all_lag(&kafka, prefix.as_deref(), now),
        }
    })
    .await?;
    Ok(LagReport { partitions })
}
