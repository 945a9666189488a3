//! Alerts the console raises itself, from the overview it gathers anyway: no successful
//! sync for too long (`no_sync`), a growing DLQ (`dlq_growth`), consumer lag over a bound
//! (`lag`), and a pinned API version near its end of support (`api_version_eol`). Thresholds
//! come from `console.rules`.
//!
//! Guarantee: each (connection, kind) is written to `sb.alerts` once when it starts firing
//! and once when it resolves, in the JSON shape the sink's alerts use, so the Telegram
//! forwarder dedupes and sends them like any other. A transition counts as made only once
//! Kafka acknowledged it, so a failed write is retried at the next evaluation. Which alerts
//! are firing is seeded from `sb.alerts` at the first evaluation, so a restarted console
//! neither repeats a firing alert nor forgets to resolve one. The rules themselves are pure
//! functions of the overview and the clock ([`Rules::transitions`]).

use std::collections::{BTreeSet, HashMap, VecDeque};

use switchboard_core::Config;
use switchboard_core::config::ConsoleRules;

use crate::overview::{Alert, ConnectionRow, firing};

/// The kinds of alert these rules raise.
pub const KINDS: [&str; 5] = ["no_sync", "dlq_growth", "lag", "api_version_eol", "stalled"];

const DAY_MS: i64 = 86_400_000;

/// A connection's pinned API version and its end of support.
#[derive(Debug, Clone)]
struct Pinned {
    version: String,
    end: time::Date,
}

/// The rules and what they remember between evaluations.
#[derive(Debug)]
pub struct Rules {
    config: ConsoleRules,
    pinned: HashMap<String, Pinned>,
    /// DLQ depth samples per connection, oldest first, covering the window.
    dlq: HashMap<String, VecDeque<(i64, usize)>>,
    /// When the console first saw each connection (for `no_sync` of one never synced).
    first_seen: HashMap<String, i64>,
    /// Per connection, its records processed (summed committed offsets) and since when
    /// that number has not moved, epoch ms.
    moved: HashMap<String, (i64, i64)>,
    /// (connection, kind) firing now, as written to `sb.alerts`.
    active: BTreeSet<(String, String)>,
    seeded: bool,
}

impl Rules {
    /// The rules of `config.console.rules`, with each connection's pinned `api_version`.
    pub fn new(config: &Config) -> Self {
        let rules = config.console.rules.clone();
        let pinned = config
            .connections
            .iter()
            .filter_map(|(name, c)| {
                let version = c.settings.get("api_version")?.as_str()?.to_owned();
                let end = rules.end_of_support(name, &c.kind, &version)?;
                Some((name.clone(), Pinned { version, end }))
            })
            .collect();
        Self {
            config: rules,
            pinned,
            dlq: HashMap::new(),
            first_seen: HashMap::new(),
            moved: HashMap::new(),
            active: BTreeSet::new(),
            seeded: false,
        }
    }

    /// Takes in the overview gathered at `now` (epoch ms) and returns the transitions to
    /// write: `firing` for a condition that newly holds, `resolved` for one that no longer
    /// does. Call [`Rules::made`] for each once it is written.
    pub fn transitions(&mut self, rows: &[ConnectionRow], now: i64) -> Vec<Alert> {
        if !self.seeded {
            self.seeded = true;
            for row in rows {
                // `row.alerts` is newest first; `firing` wants oldest first.
                let oldest_first: Vec<Alert> = row.alerts.iter().rev().cloned().collect();
                for a in firing(&oldest_first) {
                    if KINDS.contains(&a.kind.as_str()) {
                        self.active.insert((a.connection.clone(), a.kind.clone()));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for row in rows {
            let findings = self.findings(row, now);
            for kind in KINDS {
                let key = (row.name.clone(), kind.to_owned());
                let found = findings.iter().find(|(k, _)| *k == kind);
                match (found, self.active.contains(&key)) {
                    (Some((_, message)), false) => {
                        out.push(alert(kind, &row.name, "firing", message.clone(), now));
                    }
                    (None, true) => {
                        out.push(alert(kind, &row.name, "resolved", cleared(kind), now));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Marks `stalled` the connections whose oldest waiting record (retry tiers left out)
    /// and whose committed offsets have both stood still for `stalled_secs`: records wait
    /// and no stage takes them. Call it on every overview, before [`Rules::transitions`].
    /// A paused connection keeps that state, which says more.
    pub fn mark_stalled(&mut self, rows: &mut [ConnectionRow], now: i64) {
        for row in rows {
            let moved = self
                .moved
                .entry(row.name.clone())
                .or_insert((row.processed, now));
            if moved.0 != row.processed {
                *moved = (row.processed, now);
            }
            if let Some(m) = stalled(self.config.stalled_secs, row, moved.1, now)
                && matches!(row.state.as_str(), "ok" | "degraded")
            {
                row.state = "stalled".to_owned();
                row.message.get_or_insert(m);
            }
        }
    }

    /// Records that `alert` was written.
    pub fn made(&mut self, alert: &Alert) {
        let key = (alert.connection.clone(), alert.kind.clone());
        if alert.status == "firing" {
            self.active.insert(key);
        } else {
            self.active.remove(&key);
        }
    }

    /// The conditions that hold for `row` now, as (kind, message).
    fn findings(&mut self, row: &ConnectionRow, now: i64) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let since = *self.first_seen.entry(row.name.clone()).or_insert(now);
        if let Some(m) = no_sync(self.config.no_sync_minutes, row, since, now) {
            out.push(("no_sync", m));
        }
        if let Some(depth) = row.dlq_depth {
            let window = self.config.dlq_window_secs as i64 * 1000;
            let samples = self.dlq.entry(row.name.clone()).or_default();
            samples.push_back((now, depth));
            // Keep the newest sample at least a window old, and everything after it.
            while samples.len() > 1 && samples[1].0 <= now - window {
                samples.pop_front();
            }
            if let Some(m) = dlq_growth(self.config.dlq_window_secs, samples) {
                out.push(("dlq_growth", m));
            }
        }
        if let Some(m) = lag(self.config.lag_seconds, row) {
            out.push(("lag", m));
        }
        if row.state == "stalled" {
            let still = self.moved.get(&row.name).map_or(0, |m| (now - m.1) / 1000);
            out.push((
                "stalled",
                format!(
                    "nothing processed for {still} s while the oldest record waited {} s",
                    row.waiting_seconds
                ),
            ));
        }
        if let Some(p) = self.pinned.get(&row.name)
            && let Some(m) = api_version_eol(
                &p.version,
                p.end,
                self.config.api_version_warn_days,
                today(now),
            )
        {
            out.push(("api_version_eol", m));
        }
        out
    }
}

fn alert(kind: &str, connection: &str, status: &str, message: String, at: i64) -> Alert {
    Alert {
        kind: kind.to_owned(),
        connection: connection.to_owned(),
        status: status.to_owned(),
        message,
        at,
    }
}

fn cleared(kind: &str) -> String {
    match kind {
        "no_sync" => "synced again",
        "dlq_growth" => "the DLQ stopped growing",
        "lag" => "lag back under the threshold",
        "stalled" => "processing again",
        _ => "no longer near its end of support",
    }
    .to_owned()
}

/// `no_sync`: nothing synced for `minutes` (0: off). A connection that never synced counts
/// from `since`, when the console first saw it; one without a role is never checked.
pub fn no_sync(minutes: u64, row: &ConnectionRow, since: i64, now: i64) -> Option<String> {
    if minutes == 0 || row.roles.is_empty() {
        return None;
    }
    let from = row.last_sync_at.unwrap_or(since);
    let quiet = now - from;
    (quiet > minutes as i64 * 60_000).then(|| match row.last_sync_at {
        Some(_) => format!("no successful sync for {} minutes", quiet / 60_000),
        None => format!(
            "no successful sync in the {} minutes watched",
            quiet / 60_000
        ),
    })
}

/// `dlq_growth`: the newest depth in `samples` (oldest first) is above the depth at the
/// window's start: the newest sample at least a window old, or the oldest one kept.
pub fn dlq_growth(window_secs: u64, samples: &VecDeque<(i64, usize)>) -> Option<String> {
    if window_secs == 0 {
        return None;
    }
    let (&(_, before), &(_, now)) = (samples.front()?, samples.back()?);
    (now > before).then(|| format!("DLQ grew from {before} to {now} in the last {window_secs} s"))
}

/// `stalled`: the oldest waiting record has waited `seconds` (0: off) and the committed
/// offsets have not moved since `still_since` for as long.
pub fn stalled(seconds: u64, row: &ConnectionRow, still_since: i64, now: i64) -> Option<String> {
    let bound = i64::try_from(seconds).unwrap_or(i64::MAX);
    (seconds > 0 && row.waiting_seconds >= bound && now - still_since >= bound * 1000).then(|| {
        format!(
            "stalled: nothing processed for {} s while records waited {} s",
            (now - still_since) / 1000,
            row.waiting_seconds
        )
    })
}

/// `lag`: the oldest unprocessed record is older than `seconds` (0: off).
pub fn lag(seconds: u64, row: &ConnectionRow) -> Option<String> {
    (seconds > 0 && row.lag_seconds > seconds as i64).then(|| {
        format!(
            "oldest unprocessed record is {} s old (threshold {seconds} s)",
            row.lag_seconds
        )
    })
}

/// `api_version_eol`: `today` is within `warn_days` of `end`, or past it.
pub fn api_version_eol(
    version: &str,
    end: time::Date,
    warn_days: u32,
    today: time::Date,
) -> Option<String> {
    let left = (end - today).whole_days();
    (left <= i64::from(warn_days)).then(|| {
        if left < 0 {
            format!("API version {version} passed its end of support on {end}")
        } else {
            format!("API version {version} reaches its end of support on {end}, in {left} days")
        }
    })
}

fn today(now_ms: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(DAY_MS) * 86_400)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn row(name: &str) -> ConnectionRow {
        ConnectionRow {
            name: name.into(),
            kind: "pipedrive".into(),
            roles: vec!["target"],
            state: "ok".into(),
            message: None,
            last_sync_at: Some(0),
            lag: 0,
            lag_seconds: 0,
            waiting_seconds: 0,
            processed: 0,
            dlq_depth: Some(0),
            parked_keys: Some(0),
            retry_backlog: None,
            alerts: Vec::new(),
            success_rate_5m: None,
            success_rate_1h: None,
            p95_latency_ms: None,
        }
    }

    fn config(rules: &str) -> Config {
        let yaml = format!(
            "kafka: {{bootstrap_servers: '127.0.0.1:9092'}}\nregistry: {{url: 'http://r'}}\nconnections:\n  crm: {{type: pipedrive}}\n  shop: {{type: shopify, api_version: '2025-01'}}\nconsole:\n  rules: {rules}\n"
        );
        Config::from_yaml(&yaml).unwrap()
    }

    fn kinds(alerts: &[Alert]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| format!("{} {} {}", a.status, a.kind, a.connection))
            .collect()
    }

    /// Evaluates and treats every transition as written.
    fn step(rules: &mut Rules, rows: &[ConnectionRow], now: i64) -> Vec<String> {
        let out = rules.transitions(rows, now);
        out.iter().for_each(|a| rules.made(a));
        kinds(&out)
    }

    #[test]
    fn dlq_growth_fires_once_then_resolves_after_a_quiet_window() {
        let mut rules = Rules::new(&config("{dlq_window_secs: 60, no_sync_minutes: 0}"));
        let mut crm = row("crm");
        crm.dlq_depth = Some(1);
        assert!(step(&mut rules, &[crm.clone()], 0).is_empty());
        assert!(step(&mut rules, &[crm.clone()], 5_000).is_empty());
        crm.dlq_depth = Some(2);
        assert_eq!(
            step(&mut rules, &[crm.clone()], 10_000),
            ["firing dlq_growth crm"]
        );
        assert!(
            step(&mut rules, &[crm.clone()], 40_000).is_empty(),
            "still firing"
        );
        // A window after the growth the depth is where it was: resolved.
        assert_eq!(
            step(&mut rules, &[crm.clone()], 75_000),
            ["resolved dlq_growth crm"]
        );
        // A redrive (depth falls) is no growth.
        crm.dlq_depth = Some(0);
        assert!(step(&mut rules, &[crm], 80_000).is_empty());
    }

    #[test]
    fn an_unacknowledged_transition_is_offered_again() {
        let mut rules = Rules::new(&config("{no_sync_minutes: 0}"));
        let mut crm = row("crm");
        crm.lag_seconds = 900;
        assert_eq!(
            kinds(&rules.transitions(&[crm.clone()], 0)),
            ["firing lag crm"]
        );
        // Not written: offered again.
        assert_eq!(step(&mut rules, &[crm.clone()], 5_000), ["firing lag crm"]);
        assert!(step(&mut rules, &[crm.clone()], 10_000).is_empty());
        crm.lag_seconds = 30;
        assert_eq!(step(&mut rules, &[crm], 15_000), ["resolved lag crm"]);
    }

    #[test]
    fn no_sync_counts_from_the_last_sync_or_from_first_sight() {
        let mut rules = Rules::new(&config("{no_sync_minutes: 10}"));
        let mut crm = row("crm");
        crm.last_sync_at = Some(0);
        let mut idle = row("idle");
        idle.last_sync_at = None;
        let mut tg = row("tg");
        tg.roles.clear();
        tg.last_sync_at = None;
        let rows = |crm: &ConnectionRow| vec![crm.clone(), idle.clone(), tg.clone()];
        assert!(step(&mut rules, &rows(&crm), 5 * MIN).is_empty());
        assert_eq!(
            step(&mut rules, &rows(&crm), 11 * MIN),
            ["firing no_sync crm"]
        );
        crm.last_sync_at = Some(12 * MIN);
        assert_eq!(
            step(&mut rules, &rows(&crm), 16 * MIN),
            ["resolved no_sync crm", "firing no_sync idle"]
        );
    }

    #[test]
    fn api_versions_warn_before_their_end_of_support() {
        let end = switchboard_core::config::parse_date("2026-01-31").unwrap();
        let day = |d: &str| switchboard_core::config::parse_date(d).unwrap();
        assert_eq!(api_version_eol("2025-01", end, 30, day("2025-12-31")), None);
        let soon = api_version_eol("2025-01", end, 30, day("2026-01-01")).unwrap();
        assert!(soon.contains("in 30 days"), "{soon}");
        let past = api_version_eol("2025-01", end, 30, day("2026-02-01")).unwrap();
        assert!(past.contains("passed"), "{past}");
        let mut rules = Rules::new(&config(
            "{no_sync_minutes: 0, api_versions: {shopify: {'2025-01': '1970-01-20'}}}",
        ));
        let mut shop = row("shop");
        shop.kind = "shopify".into();
        shop.roles = vec!["source"];
        shop.dlq_depth = None;
        assert_eq!(
            step(&mut rules, &[shop], 0),
            ["firing api_version_eol shop"]
        );
    }

    #[test]
    fn alerts_already_firing_in_the_topic_are_not_fired_again() {
        let mut rules = Rules::new(&config("{no_sync_minutes: 0}"));
        let mut crm = row("crm");
        crm.lag_seconds = 900;
        // Newest first, as the overview keeps them: lag fired after an older resolve.
        crm.alerts = vec![
            alert("lag", "crm", "firing", String::new(), 2),
            alert("lag", "crm", "resolved", String::new(), 1),
            alert("dlq_growth", "crm", "firing", String::new(), 0),
        ];
        // lag stays firing (nothing to write); dlq_growth no longer holds: resolved.
        assert_eq!(step(&mut rules, &[crm], 10), ["resolved dlq_growth crm"]);
    }

    #[test]
    fn stalled_when_records_wait_and_nothing_moves() {
        let mut rules = Rules::new(&config("{no_sync_minutes: 0, stalled_secs: 60}"));
        let mut crm = row("crm");
        crm.processed = 100;
        crm.waiting_seconds = 90;
        let mut rows = vec![crm];
        rules.mark_stalled(&mut rows, 0);
        assert_eq!(rows[0].state, "ok", "not yet still for 60 s");
        rules.mark_stalled(&mut rows, 61_000);
        assert_eq!(rows[0].state, "stalled");
        assert_eq!(
            kinds(&rules.transitions(&rows, 61_000)),
            ["firing stalled crm"]
        );
        // It moves again: no longer stalled, and the alert resolves.
        let mut moving = row("crm");
        moving.processed = 150;
        moving.waiting_seconds = 90;
        let mut rows = vec![moving];
        rules.mark_stalled(&mut rows, 62_000);
        assert_eq!(rows[0].state, "ok");
        for a in rules.transitions(&[rows[0].clone()], 0) {
            rules.made(&a);
        }
        // Idle (nothing waits) is never stalled, however long nothing moved.
        let mut idle = row("crm");
        idle.processed = 150;
        let mut rows = vec![idle];
        rules.mark_stalled(&mut rows, 600_000);
        assert_eq!(rows[0].state, "ok");
    }
}
