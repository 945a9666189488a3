//! `switchboard status`: one line per connection (state, last successful sync, lag, DLQ
//! depth, parked keys), as the console's dashboard shows it, from the console's
//! `/api/v1/connections`. Asking the console instead of Kafka means the command shows
//! exactly what the dashboard shows, and needs no broker credentials, only the console's
//! read token (`SB_CONSOLE_TOKEN`, from the environment so it stays out of shell history).
//!
//! Exit code: 0 when every connection is `ok`, 1 when one is not, 2 when the console could
//! not be asked.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::output::Report;

/// Environment variable holding the console's read (or admin) token.
pub const TOKEN_ENV: &str = "SB_CONSOLE_TOKEN";

/// `switchboard status` options.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The console's base URL. Its token, if it wants one, comes from `SB_CONSOLE_TOKEN`.
    #[arg(long, env = "SB_CONSOLE_URL", default_value = "http://127.0.0.1:8090")]
    pub console: String,
}

/// One connection, as the console reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionStatus {
    /// Connection name.
    pub name: String,
    /// `ok`, `degraded`, `paused: auth` or `stalled`.
    pub state: String,
    /// Last successful sync, epoch ms.
    #[serde(default)]
    pub last_sync_at: Option<i64>,
    /// Messages behind.
    #[serde(default)]
    pub lag: i64,
    /// Age of the oldest unprocessed record, seconds.
    #[serde(default)]
    pub lag_seconds: i64,
    /// Open DLQ records (targets only).
    #[serde(default)]
    pub dlq_depth: Option<usize>,
    /// Keys parked behind a failed record (targets only).
    #[serde(default)]
    pub parked_keys: Option<usize>,
    /// Records waiting in the retry tiers (targets only).
    #[serde(default)]
    pub retry_backlog: Option<i64>,
}

/// The status report.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// When the console gathered it, epoch ms.
    pub at: i64,
    /// When this command asked, epoch ms.
    #[serde(default)]
    pub asked_at: i64,
    /// One entry per configured connection.
    pub connections: Vec<ConnectionStatus>,
}

impl Report for StatusReport {
    fn passed(&self) -> bool {
        self.connections.iter().all(|c| c.state == "ok")
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<20} {:<14} {:<20} {:>8} {:>8} {:>6} {:>6} {:>7}\n",
            "CONNECTION", "STATE", "LAST SYNC", "LAG", "LAG(s)", "RETRY", "DLQ", "PARKED"
        );
        fn opt(n: Option<impl ToString>) -> String {
            n.map_or("-".to_owned(), |n| n.to_string())
        }
        for c in &self.connections {
            out.push_str(&format!(
                "{:<20} {:<14} {:<20} {:>8} {:>8} {:>6} {:>6} {:>7}\n",
                c.name,
                c.state,
                ago(self.asked_at, c.last_sync_at),
                c.lag,
                c.lag_seconds,
                opt(c.retry_backlog),
                opt(c.dlq_depth),
                opt(c.parked_keys)
            ));
        }
        let bad = self.connections.iter().filter(|c| c.state != "ok").count();
        out.push_str(&format!(
            "{} connection(s), {bad} not ok\n",
            self.connections.len()
        ));
        out
    }
}

/// "5m ago", "never".
fn ago(now: i64, at: Option<i64>) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let secs = ((now - at) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Asks the console.
pub async fn run(args: &StatusArgs) -> anyhow::Result<StatusReport> {
    let url = format!("{}/api/v1/connections", args.console.trim_end_matches('/'));
    let mut request = reqwest::Client::new().get(&url);
    if let Ok(token) = std::env::var(TOKEN_ENV)
        && !token.is_empty()
    {
        request = request.bearer_auth(token);
    }
    let answer = request
        .send()
        .await
        .with_context(|| format!("ask the console at {url}"))?;
    match answer.status().as_u16() {
        200 => {}
        401 | 403 => {
            anyhow::bail!("the console at {url} refused: set {TOKEN_ENV} to its read token")
        }
        code => anyhow::bail!("the console at {url} answered {code}"),
    }
    let mut report: StatusReport = answer
        .json()
        .await
        .with_context(|| format!("read the answer of {url}"))?;
    report.asked_at = switchboard_core::lag::now_millis();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_connection_and_not_ok_fails() {
        let answer = r#"{"at": 100000, "connections": [
            {"name": "crm", "kind": "pipedrive", "roles": ["target"], "state": "degraded",
             "last_sync_at": 40000, "lag": 3, "lag_seconds": 2, "dlq_depth": 1, "parked_keys": 0,
             "retry_backlog": 7, "alerts": []},
            {"name": "shop", "kind": "shopify", "roles": ["source"], "state": "ok",
             "last_sync_at": null, "lag": 0, "lag_seconds": 0, "dlq_depth": null,
             "parked_keys": null, "alerts": []}]}"#;
        let mut report: StatusReport = serde_json::from_str(answer).unwrap();
        report.asked_at = 160_000;
        let text = report.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("crm") && lines[1].contains("degraded"));
        assert!(lines[1].contains("2m ago"), "{text}");
        assert!(lines[1].contains(" 7 "), "the retry backlog: {text}");
        assert!(
            lines[2].contains("never") && lines[2].contains(" - "),
            "{text}"
        );
        assert_eq!(lines[3], "2 connection(s), 1 not ok");
        assert!(!report.passed());
    }
}
