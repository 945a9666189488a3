//! Success rate and source-to-target latency per target connection, from the delivery
//! outcomes the sink writes to `sb.deliveries`.
//!
//! Semantic: every outcome event counts once, in the window of its own `at`. A record
//! dead-lettered and then delivered after a redrive is one failure and one success (1 of
//! 2), because the dead letter did happen in that window; `discarded` is an operator's
//! decision, not a delivery attempt, and counts for neither side. Latency is `at -
//! source_at` of delivered outcomes (clamped at 0 against clock skew).
//!
//! Guarantee: the window keeps an hour of outcomes per connection, at most
//! [`MAX_EVENTS`] of them (the oldest go first, so under extreme load the "1 h" figures cover
//! a shorter span rather than growing memory without bound). The feed starts an hour back
//! with `offsets_for_times`, so a restarted console shows the same numbers; it only reads,
//! creates nothing and commits nothing ([`feed`]).

mod feed;

use std::collections::{HashMap, VecDeque};

use switchboard_core::audit::{DeliveryOutcome, DeliveryState};

use crate::overview::Overview;

pub use feed::feed;

/// The short window: five minutes.
pub const SHORT_MS: i64 = 5 * 60 * 1000;
/// The long window, and how long outcomes are kept: an hour.
pub const LONG_MS: i64 = 60 * 60 * 1000;
/// Most outcomes kept per connection.
pub const MAX_EVENTS: usize = 500_000;

/// One outcome, as far as the figures need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When it happened, epoch ms.
    pub at: i64,
    /// What happened.
    pub state: DeliveryState,
    /// Source-to-target latency, for a delivered outcome whose source time is known.
    pub latency_ms: Option<i64>,
}

impl Event {
    /// The event of `o`.
    pub fn of(o: &DeliveryOutcome) -> Self {
        let latency_ms = match (o.state, o.source_at) {
            (DeliveryState::Delivered, Some(source)) => Some((o.at - source).max(0)),
            _ => None,
        };
        Self {
            at: o.at,
            state: o.state,
            latency_ms,
        }
    }
}

/// The outcomes of one connection, in arrival order (nearly time order: partitions
/// interleave by seconds at most, and every query filters on `at` anyway).
#[derive(Debug, Clone, Default)]
pub struct Window {
    events: VecDeque<Event>,
}

impl Window {
    /// Adds `e` and drops what is older than [`LONG_MS`] before `now`.
    pub fn push(&mut self, e: Event, now: i64) {
        self.events.push_back(e);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
        self.prune(now);
    }

    /// Drops events older than [`LONG_MS`] before `now`.
    pub fn prune(&mut self, now: i64) {
        while self.events.front().is_some_and(|e| e.at < now - LONG_MS) {
            self.events.pop_front();
        }
    }

    /// Events of the last `span_ms` before `now` (inclusive at the edge).
    fn recent(&self, now: i64, span_ms: i64) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.at >= now - span_ms)
    }

    /// delivered / (delivered + retrying + dead_lettered) over the last `span_ms`; `None`
    /// when there is no such outcome.
    pub fn success_rate(&self, now: i64, span_ms: i64) -> Option<f64> {
        let (mut good, mut all) = (0u64, 0u64);
        for e in self.recent(now, span_ms) {
            match e.state {
                DeliveryState::Delivered => {
                    good += 1;
                    all += 1;
                }
                DeliveryState::Retrying | DeliveryState::DeadLettered => all += 1,
                DeliveryState::Discarded => {}
            }
        }
        (all > 0).then(|| good as f64 / all as f64)
    }

    /// Nearest-rank p95 of the latencies of the last [`SHORT_MS`]; `None` without any.
    pub fn p95_latency_ms(&self, now: i64) -> Option<i64> {
        let mut latencies: Vec<i64> = self
            .recent(now, SHORT_MS)
            .filter_map(|e| e.latency_ms)
            .collect();
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_unstable();
        // Nearest rank: the smallest value with at least 95 % of the values at or below it.
        let rank = (latencies.len() * 95).div_ceil(100).max(1);
        latencies.get(rank - 1).copied()
    }
}

/// The three figures of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Success rate over the last five minutes.
    pub success_rate_5m: Option<f64>,
    /// Success rate over the last hour.
    pub success_rate_1h: Option<f64>,
    /// p95 source-to-target latency over the last five minutes, ms.
    pub p95_latency_ms: Option<i64>,
}

/// A window per target connection.
#[derive(Debug, Default)]
pub struct Rates {
    windows: HashMap<String, Window>,
}

impl Rates {
    /// Counts `o` for its connection.
    pub fn observe(&mut self, o: &DeliveryOutcome, now: i64) {
        self.windows
            .entry(o.connection.clone())
            .or_default()
            .push(Event::of(o), now);
    }

    /// The figures of `connection` at `now` (all `None` when it had no outcome).
    pub fn figures(&mut self, connection: &str, now: i64) -> Figures {
        let Some(w) = self.windows.get_mut(connection) else {
            return Figures::default();
        };
        w.prune(now);
        Figures {
            success_rate_5m: w.success_rate(now, SHORT_MS),
            success_rate_1h: w.success_rate(now, LONG_MS),
            p95_latency_ms: w.p95_latency_ms(now),
        }
    }
}

/// Writes the figures into the target rows of `o` and sets the gauges
/// `switchboard_connection_success_ratio{connection,window}` and
/// `switchboard_connection_latency_p95_seconds{connection}`. An unknown figure is exported
/// as NaN rather than left at its last value, so a quiet connection does not keep an old
/// bad ratio (and an alert on it) for ever.
pub fn fill(o: &mut Overview, rates: &mut Rates) {
    for row in o
        .connections
        .iter_mut()
        .filter(|r| r.roles.contains(&"target"))
    {
        let f = rates.figures(&row.name, o.at);
        row.success_rate_5m = f.success_rate_5m;
        row.success_rate_1h = f.success_rate_1h;
        row.p95_latency_ms = f.p95_latency_ms;
        for (window, value) in [("5m", f.success_rate_5m), ("1h", f.success_rate_1h)] {
            metrics::gauge!("switchboard_connection_success_ratio", "connection" => row.name.clone(), "window" => window)
                .set(value.unwrap_or(f64::NAN));
        }
        metrics::gauge!("switchboard_connection_latency_p95_seconds", "connection" => row.name.clone())
            .set(f.p95_latency_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::*;

    const NOW: i64 = 1_800_000_000_000;

    fn event(ago_ms: i64, state: DeliveryState, latency_ms: Option<i64>) -> Event {
        Event {
            at: NOW - ago_ms,
            state,
            latency_ms,
        }
    }

    fn window(events: &[Event]) -> Window {
        let mut w = Window::default();
        for e in events {
            w.push(*e, NOW);
        }
        w
    }

    #[test]
    fn an_empty_window_knows_nothing() {
        let w = Window::default();
        assert_eq!(w.success_rate(NOW, SHORT_MS), None);
        assert_eq!(w.success_rate(NOW, LONG_MS), None);
        assert_eq!(w.p95_latency_ms(NOW), None);
        assert_eq!(Rates::default().figures("crm", NOW), Figures::default());
    }

    #[test]
    fn all_delivered_is_one() {
        let w = window(&[
            event(1_000, Delivered, Some(200)),
            event(2_000, Delivered, Some(300)),
        ]);
        assert_eq!(w.success_rate(NOW, SHORT_MS), Some(1.0));
        assert_eq!(w.success_rate(NOW, LONG_MS), Some(1.0));
        assert_eq!(w.p95_latency_ms(NOW), Some(300));
    }

    #[test]
    fn mixed_outcomes_count_each_event_and_ignore_discards() {
        let w = window(&[
            event(1_000, Delivered, Some(100)),
            event(2_000, Retrying, None),
            event(3_000, DeadLettered, None),
            event(4_000, Delivered, None),
            event(5_000, Discarded, None),
        ]);
        assert_eq!(w.success_rate(NOW, SHORT_MS), Some(0.5));
        // Only delivered outcomes with a known source time have a latency.
        assert_eq!(w.p95_latency_ms(NOW), Some(100));
        let only_discards = window(&[event(1_000, Discarded, None)]);
        assert_eq!(only_discards.success_rate(NOW, SHORT_MS), None);
    }

    #[test]
    fn windows_end_at_their_edge_and_old_events_are_dropped() {
        let w = window(&[
            event(LONG_MS + 1, DeadLettered, None),       // dropped
            event(LONG_MS, Retrying, None),               // on the hour's edge: in
            event(SHORT_MS + 2, Delivered, Some(99_000)), // out of 5 min: not in the p95
            event(SHORT_MS + 1, DeadLettered, None),      // just out of 5 min
            event(SHORT_MS, Delivered, Some(10)),         // on the edge: in
        ]);
        assert_eq!(w.success_rate(NOW, SHORT_MS), Some(1.0));
        assert_eq!(w.success_rate(NOW, LONG_MS), Some(0.5));
        assert_eq!(w.p95_latency_ms(NOW), Some(10));
        assert_eq!(w.events.len(), 4, "older than an hour is not kept");
        let mut later = w.clone();
        later.prune(NOW + LONG_MS + 1);
        assert!(later.events.is_empty());
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        // 1..=20: rank ceil(0.95 * 20) = 19.
        let twenty: Vec<Event> = (1..=20).map(|i| event(i, Delivered, Some(i))).collect();
        assert_eq!(window(&twenty).p95_latency_ms(NOW), Some(19));
        // 1..=100 shuffled by arrival: rank 95.
        let hundred: Vec<Event> = (1..=100)
            .map(|i| event(1_000, Delivered, Some((i * 37) % 100 + 1)))
            .collect();
        assert_eq!(window(&hundred).p95_latency_ms(NOW), Some(95));
        // One value is its own p95; so are 2 of 2 → the larger.
        assert_eq!(
            window(&[event(1, Delivered, Some(7))]).p95_latency_ms(NOW),
            Some(7)
        );
        let two = [event(1, Delivered, Some(5)), event(2, Delivered, Some(9))];
        assert_eq!(window(&two).p95_latency_ms(NOW), Some(9));
    }

    #[test]
    fn outcomes_become_events_with_latency_only_when_delivered() {
        let mut o = DeliveryOutcome {
            at: NOW,
            canonical_id: "c1".into(),
            entity: "contact".into(),
            record_id: None,
            connection: "crm".into(),
            state: Delivered,
            native_id: None,
            reason: None,
            source_at: Some(NOW - 1_500),
        };
        assert_eq!(Event::of(&o).latency_ms, Some(1_500));
        o.source_at = Some(NOW + 10); // skewed clocks: never negative
        assert_eq!(Event::of(&o).latency_ms, Some(0));
        o.state = DeadLettered;
        assert_eq!(Event::of(&o).latency_ms, None);
        let mut rates = Rates::default();
        rates.observe(&o, NOW);
        o.state = Delivered;
        o.source_at = Some(NOW - 2_000);
        rates.observe(&o, NOW);
        let f = rates.figures("crm", NOW);
        assert_eq!(f.success_rate_5m, Some(0.5));
        assert_eq!(f.success_rate_1h, Some(0.5));
        assert_eq!(f.p95_latency_ms, Some(2_000));
        assert_eq!(rates.figures("shop", NOW), Figures::default());
    }
}
