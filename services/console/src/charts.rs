//! The dashboard's sparklines: throughput, errors and lag per connection over the last
//! hour, from samples of the overview the console keeps in memory.
//!
//! Guarantee: a sample is taken at most every [`SAMPLE_EVERY_MS`] and at most [`POINTS`]
//! are kept per connection (an hour), so memory is bounded. Throughput is the records the
//! connection's consumer groups committed per minute between two samples; errors are the
//! records that entered its DLQ between two samples (growth of the open depth, so a redrive
//! is not a negative error count); lag is the messages behind at each sample. A restart
//! starts the charts empty: they are a glance, not a history (that is Prometheus's job).

use std::collections::{HashMap, VecDeque};

use crate::overview::Overview;

/// Least time between two samples.
pub const SAMPLE_EVERY_MS: i64 = 15_000;
/// Samples kept per connection: an hour at one per 15 s.
pub const POINTS: usize = 240;

/// One connection at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: i64,
    processed: i64,
    dlq: Option<usize>,
    lag: i64,
}

/// The three series of one connection, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Records processed per minute.
    pub throughput: Vec<f64>,
    /// Records that entered the DLQ per interval.
    pub errors: Vec<f64>,
    /// Messages behind.
    pub lag: Vec<f64>,
}

/// Samples per connection.
#[derive(Debug, Default)]
pub struct Charts {
    samples: HashMap<String, VecDeque<Sample>>,
    last_at: Option<i64>,
}

impl Charts {
    /// Takes a sample of `o` if the last one is at least [`SAMPLE_EVERY_MS`] old.
    pub fn observe(&mut self, o: &Overview) {
        if self.last_at.is_some_and(|t| o.at - t < SAMPLE_EVERY_MS) {
            return;
        }
        self.last_at = Some(o.at);
        for c in &o.connections {
            let points = self.samples.entry(c.name.clone()).or_default();
            points.push_back(Sample {
                at: o.at,
                processed: c.processed,
                dlq: c.dlq_depth,
                lag: c.lag,
            });
            while points.len() > POINTS {
                points.pop_front();
            }
        }
    }

    /// The series of `connection` (empty when it has fewer than two samples).
    pub fn series(&self, connection: &str) -> Series {
        let Some(points) = self.samples.get(connection) else {
            return Series::default();
        };
        let pairs: Vec<(&Sample, &Sample)> = points.iter().zip(points.iter().skip(1)).collect();
        Series {
            throughput: pairs
                .iter()
                .map(|(a, b)| {
                    let minutes = (b.at - a.at).max(1) as f64 / 60_000.0;
                    (b.processed - a.processed).max(0) as f64 / minutes
                })
                .collect(),
            errors: pairs
                .iter()
                .map(|(a, b)| match (a.dlq, b.dlq) {
                    (Some(a), Some(b)) => b.saturating_sub(a) as f64,
                    _ => 0.0,
                })
                .collect(),
            lag: points.iter().skip(1).map(|s| s.lag as f64).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overview::ConnectionRow;

    fn overview(at: i64, processed: i64, dlq: usize, lag: i64) -> Overview {
        Overview {
            at,
            connections: vec![ConnectionRow {
                name: "crm".into(),
                kind: "pipedrive".into(),
                roles: vec!["target"],
                state: "ok".into(),
                message: None,
                last_sync_at: None,
                lag,
                lag_seconds: 0,
                waiting_seconds: 0,
                processed,
                dlq_depth: Some(dlq),
                parked_keys: None,
                retry_backlog: None,
                alerts: Vec::new(),
                success_rate_5m: None,
                success_rate_1h: None,
                p95_latency_ms: None,
            }],
            ..Overview::default()
        }
    }

    #[test]
    fn series_are_rates_between_samples_taken_every_fifteen_seconds() {
        let mut charts = Charts::default();
        charts.observe(&overview(0, 100, 0, 5));
        charts.observe(&overview(5_000, 110, 0, 5)); // too soon: skipped
        charts.observe(&overview(15_000, 130, 2, 7));
        charts.observe(&overview(30_000, 130, 1, 0)); // a redrive: no negative errors
        let s = charts.series("crm");
        assert_eq!(s.throughput, [120.0, 0.0]);
        assert_eq!(s.errors, [2.0, 0.0]);
        assert_eq!(s.lag, [7.0, 0.0]);
        assert_eq!(charts.series("nope"), Series::default());
    }

    #[test]
    fn an_hour_of_samples_is_kept() {
        let mut charts = Charts::default();
        for i in 0..(POINTS as i64 + 50) {
            charts.observe(&overview(i * SAMPLE_EVERY_MS, i, 0, i));
        }
        let s = charts.series("crm");
        assert_eq!(s.lag.len(), POINTS - 1);
        assert_eq!(s.lag.last().copied(), Some((POINTS as i64 + 49) as f64));
    }
}
