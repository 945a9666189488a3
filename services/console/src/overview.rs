//! What the dashboard shows per connection, gathered from Kafka: its state in `sb.status`,
//! its last successful sync, the lag of its consumer groups, its DLQ depth, its parked keys
//! and its recent alerts from `sb.alerts`.
//!
//! Guarantee: every number is read from the topics at refresh time (no estimates); a value
//! that could not be read is shown as unknown, never as zero. Blocking: run it from
//! `spawn_blocking`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use switchboard_core::Config;
use switchboard_core::config::split_endpoint;
use switchboard_core::error::ClassifiedError;
use switchboard_core::kafka::read_table;
use switchboard_core::lag::{self, PartitionLag};
use switchboard_core::topics::Topics;

/// One connection's row.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRow {
    /// Connection name.
    pub name: String,
    /// Connection type (`shopify`, `pipedrive`, …).
    pub kind: String,
    /// `source`, `target` or both.
    pub roles: Vec<&'static str>,
    /// `ok`, `degraded`, `paused: auth` or `stalled`.
    pub state: String,
    /// The last status message, if any (already redacted by the sink).
    pub message: Option<String>,
    /// Last successful sync, epoch ms: for a target its last delivery, for a source the
    /// newest record ingested from it.
    pub last_sync_at: Option<i64>,
    /// Records its consumer groups have not processed.
    pub lag: i64,
    /// Age of the oldest unprocessed record, seconds.
    pub lag_seconds: i64,
    /// How long the oldest record has waited for a stage that should take it now: the
    /// same, leaving out the retry tiers (whose records wait for their due time on purpose)
    /// and counting partitions a group never committed on from their start.
    /// `stalled` is decided on it ([`crate::rules::Rules::mark_stalled`]).
    pub waiting_seconds: i64,
    /// Records its consumer groups have processed so far (the sum of their committed
    /// offsets): the charts' throughput is its growth.
    pub processed: i64,
    /// DLQ records nobody decided on yet.
    pub dlq_depth: Option<usize>,
    /// Keys waiting behind a failed record.
    pub parked_keys: Option<usize>,
    /// Records waiting in the connection's retry tiers (`sb.retry.<conn>.<n>`) that the sink
    /// has not consumed yet.
    pub retry_backlog: Option<i64>,
    /// Alerts about it, newest first.
    pub alerts: Vec<Alert>,
    /// Targets: delivered / (delivered + retrying + dead-lettered) outcomes of the last five
    /// minutes, from `sb.deliveries` (see [`crate::rates`]); `None` without outcomes.
    pub success_rate_5m: Option<f64>,
    /// Targets: the same over the last hour.
    pub success_rate_1h: Option<f64>,
    /// Targets: nearest-rank p95 of source-to-target latency of the last five minutes'
    /// deliveries, ms; `None` without any.
    pub p95_latency_ms: Option<i64>,
}

/// One event from `sb.alerts`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Alert {
    /// What: `auth_failed`, `target_down`, …
    pub kind: String,
    /// The connection it is about.
    pub connection: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Redacted detail.
    #[serde(default)]
    pub message: String,
    /// When, epoch ms.
    pub at: i64,
}

/// The whole dashboard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    /// When it was gathered, epoch ms.
    pub at: i64,
    /// One row per configured connection.
    pub connections: Vec<ConnectionRow>,
    /// Every partition of every Switchboard group.
    pub lag: Vec<PartitionLag>,
}

/// Gathers the overview.
pub fn collect(config: &Config) -> Result<Overview, ClassifiedError> {
    let kafka = &config.kafka;
    let topics = Topics::new(&kafka.topic_prefix);
    let now = lag::now_millis();
    let status = read_table(kafka, &topics.status(), Duration::from_secs(20))?;
    let alerts = recent_alerts(config, 200)?;
    let mut all_lag = Vec::new();
    let mut rows = Vec::new();
    for (name, connection) in &config.connections {
        let sources: Vec<String> = config
            .flows
            .iter()
            .filter_map(|f| split_endpoint(&f.from))
            .filter(|(c, _)| c == name)
            .map(|(c, e)| topics.raw(c, e))
            .collect();
        let is_target = config
            .flows
            .iter()
            .flat_map(|f| &f.sinks)
            .any(|s| split_endpoint(&s.target).is_some_and(|(c, _)| c == name));
        let mut roles = Vec::new();
        let mut group_lag = Vec::new();
        if !sources.is_empty() {
            roles.push("source");
            group_lag.extend(lag::group_lag(
                kafka,
                &topics.transformer_group(),
                &sources,
                now,
            )?);
        }
        let st: Option<serde_json::Value> = status
            .get(name)
            .and_then(|v| serde_json::from_slice(v).ok());
        let mut last_sync_at = None;
        let mut waiting_seconds = 0;
        if !sources.is_empty() {
            waiting_seconds =
                lag::oldest_waiting(kafka, &topics.transformer_group(), &sources, None, now)?;
        }
        let (mut dlq_depth, mut parked_keys, mut retry_backlog) = (None, None, None);
        if is_target {
            roles.push("target");
            let sink_group = topics.sink_group(name);
            group_lag.extend(lag::group_lag(kafka, &sink_group, &[], now)?);
            let tiers: Vec<String> = (0..config.sink.retry_tiers_secs.len())
                .map(|tier| topics.retry(name, tier))
                .collect();
            retry_backlog = Some(lag::backlog(kafka, &sink_group, &tiers)?);
            // Its canonical input; the retry tiers' records wait for their due time.
            let inputs: Vec<String> = config
                .flows
                .iter()
                .filter(|f| {
                    f.sinks
                        .iter()
                        .any(|s| split_endpoint(&s.target).is_some_and(|(c, _)| c == name))
                })
                .map(|f| topics.canonical(&f.to))
                .collect();
            waiting_seconds =
                waiting_seconds.max(lag::oldest_waiting(kafka, &sink_group, &inputs, None, now)?);
            last_sync_at = st.as_ref().and_then(|s| s["last_success_at"].as_i64());
            dlq_depth = Some(open_dlq(config, name)?);
            parked_keys =
                Some(read_table(kafka, &topics.sink_blocked(name), Duration::from_secs(20))?.len());
        } else if !sources.is_empty() {
            last_sync_at = sources
                .iter()
                .filter_map(|t| newest_timestamp(config, t).ok().flatten())
                .max();
        }
        let lag_total = group_lag.iter().map(|r| r.lag).sum();
        let lag_seconds = group_lag.iter().map(|r| r.lag_seconds).max().unwrap_or(0);
        let processed = group_lag.iter().map(|r| r.committed.max(0)).sum();
        let mine: Vec<Alert> = alerts
            .iter()
            .filter(|a| &a.connection == name)
            .cloned()
            .collect();
        let firing = firing(&mine);
        let sink_state = st
            .as_ref()
            .and_then(|s| s["state"].as_str().map(str::to_owned));
        let state = match sink_state.as_deref() {
            Some("paused_auth") => "paused: auth",
            Some("circuit_open") => "degraded",
            // `stalled` needs a history of the committed offsets: the refresher's rules
            // mark it (`Rules::mark_stalled`).
            // An API version nearing its end of support is a warning, not a degradation.
            _ if dlq_depth.unwrap_or(0) > 0
                || firing.iter().any(|a| a.kind != "api_version_eol") =>
            {
                "degraded"
            }
            _ => "ok",
        };
        rows.push(ConnectionRow {
            name: name.clone(),
            kind: connection.kind.clone(),
            roles,
            state: state.to_owned(),
            message: st.as_ref().and_then(|s| {
                s["message"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
            }),
            last_sync_at,
            lag: lag_total,
            lag_seconds,
            waiting_seconds,
            processed,
            dlq_depth,
            parked_keys,
            retry_backlog,
            alerts: mine.into_iter().rev().take(10).collect(),
            // Filled by the refresher from the rates it keeps (`rates::fill`).
            success_rate_5m: None,
            success_rate_1h: None,
            p95_latency_ms: None,
        });
        all_lag.extend(group_lag);
    }
    all_lag
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    all_lag.dedup();
    lag::export(&all_lag);
    Ok(Overview {
        at: now,
        connections: rows,
        lag: all_lag,
    })
}

/// Alerts still firing: the newest event per kind is `firing`.
pub fn firing(alerts: &[Alert]) -> Vec<&Alert> {
    let mut newest: BTreeMap<&str, &Alert> = BTreeMap::new();
    for a in alerts {
        newest.insert(a.kind.as_str(), a);
    }
    newest
        .into_values()
        .filter(|a| a.status == "firing")
        .collect()
}

/// DLQ records of `connection` nobody decided on.
fn open_dlq(config: &Config, connection: &str) -> Result<usize, ClassifiedError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let handled = read_table(
        &config.kafka,
        &topics.dlq_handled(connection),
        Duration::from_secs(20),
    )?;
    let all = switchboard_core::republish::scan(
        &config.kafka,
        &topics.dlq(connection),
        Duration::from_secs(30),
        |_| true,
    )?;
    use rdkafka::Message;
    Ok(all
        .iter()
        .filter(|m| !handled.contains_key(&format!("{}/{}", m.partition(), m.offset())))
        .count())
}

/// The last `n` alerts, oldest first.
pub fn recent_alerts(config: &Config, n: usize) -> Result<Vec<Alert>, ClassifiedError> {
    let topic = Topics::new(&config.kafka.topic_prefix).alerts();
    let records =
        switchboard_core::republish::scan(&config.kafka, &topic, Duration::from_secs(30), |_| {
            true
        })?;
    use rdkafka::Message;
    let mut alerts: Vec<Alert> = records
        .iter()
        .filter_map(|m| serde_json::from_slice(m.payload()?).ok())
        .collect();
    alerts.sort_by_key(|a| a.at);
    let skip = alerts.len().saturating_sub(n);
    Ok(alerts.split_off(skip))
}

/// Timestamp of the newest record of `topic`, epoch ms.
fn newest_timestamp(config: &Config, topic: &str) -> Result<Option<i64>, ClassifiedError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use switchboard_core::kafka::{client_config, kafka_error};
    let consumer: BaseConsumer = client_config(&config.kafka)
        .set("group.id", "switchboard.ops.reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| kafka_error("consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| kafka_error("metadata", &e))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| kafka_error("watermarks", &e))?;
        if high > low {
            // The last few offsets: the very last may be a transaction marker.
            let from = (high - 3).max(low);
            assignment
                .add_partition_offset(topic, p.id(), Offset::Offset(from))
                .map_err(|e| kafka_error("assign", &e))?;
        }
    }
    if assignment.count() == 0 {
        return Ok(None);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_error("assign", &e))?;
    let mut newest = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                newest = newest.max(m.timestamp().to_millis());
            }
            Some(Err(_)) => break,
            None if newest.is_some() => break,
            None => {}
        }
    }
    Ok(newest)
}
