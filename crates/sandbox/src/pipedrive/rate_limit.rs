//! Pipedrive's two rate limits: the rolling burst window and the daily token budget.
//!
//! Contract facts followed (saas-contracts.md §2.7):
//! - Burst: per token, over a rolling **2-second** window; API-token Growth plan 40
//!   requests, search endpoints 10 on every plan. Headers `x-ratelimit-limit`,
//!   `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds left, e.g. `2`).
//! - Daily budget: per company, 30,000 × plan multiplier (Growth 2) × seats, reset at
//!   midnight server time (UTC on the sandbox clock); every request is charged its
//!   `x-token-cost`. Costs come from the v2 OpenAPI `x-token-cost` of each operation: get 1,
//!   list 10, add 5, update 5, delete 3, search 20 for persons, organizations and deals
//!   (§2.7 lists 1/10/5/20; delete's 3 is `deleteDeal`'s in the OpenAPI document, and the
//!   other entities' operations carry the same costs). The v1 webhooks endpoints cost
//!   list 10, add 10, delete 6 (the API reference page for Webhooks). Once spent, every
//!   request gets 429.
//! - OAuth clients get their own, higher burst window: Growth 160 per 2 s (§2.7); search
//!   stays 10 per 2 s.
//! - Over either limit: HTTP 429 with a `{"success":false,...}` body.
//!
//! Gaps, resolved the strict way: the reference cannot confirm `Retry-After`, so it is
//! **never sent** — clients must use `x-ratelimit-reset`. The budget headers
//! (`x-daily-ratelimit-token-limit`/`-remaining`) are undocumented but seen in the wild; the
//! emulator sends them on every authenticated answer.
//!
//! Emulator choices: a rolling window is a sliding log of admitted requests (a refused
//! request is not logged, so waiting `x-ratelimit-reset` seconds always frees a slot);
//! `x-ratelimit-reset` is the whole seconds, rounded up, until the oldest logged request
//! leaves the window. A search request must fit both the general and the search window.
//! Only the configured token passes api-token auth, and every OAuth token belongs to the one
//! emulated user, so one set of windows per auth kind stands for "per token". Windows run on
//! the sandbox clock, so a scaled clock makes them pass faster.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::Method;
use time::{Date, OffsetDateTime};

/// The operations the emulator serves, for costing and for the search limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /api/v2/{entity}/{id}`.
    GetOne,
    /// `GET /api/v2/{entity}`.
    List,
    /// `POST /api/v2/{entity}`.
    Create,
    /// `PATCH /api/v2/{entity}/{id}`.
    Update,
    /// `DELETE /api/v2/{entity}/{id}`.
    Delete,
    /// `GET /api/v2/{entity}/search`.
    Search,
    /// `GET /v1/webhooks`.
    ListWebhooks,
    /// `POST /v1/webhooks`.
    AddWebhook,
    /// `DELETE /v1/webhooks/{id}`.
    DeleteWebhook,
    /// Anything else (answered 404 or 405).
    Other,
}

/// The v2 collections the emulator serves.
const ENTITIES: [&str; 3] = ["persons", "organizations", "deals"];

impl Operation {
    /// Classifies a request by method and path.
    pub fn classify(method: &Method, path: &str) -> Self {
        let path = path.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix("/v1/webhooks") {
            return match (method, rest) {
                (&Method::GET, "") => Self::ListWebhooks,
                (&Method::POST, "") => Self::AddWebhook,
                (&Method::DELETE, tail) if is_one_segment(tail) => Self::DeleteWebhook,
                _ => Self::Other,
            };
        }
        let rest = ENTITIES
            .iter()
            .find_map(|e| path.strip_prefix("/api/v2/")?.strip_prefix(e));
        match (method, rest) {
            (&Method::GET, Some("")) => Self::List,
            (&Method::POST, Some("")) => Self::Create,
            (&Method::GET, Some("/search")) => Self::Search,
            (m, Some(tail)) if is_one_segment(tail) => match *m {
                Method::GET => Self::GetOne,
                Method::PATCH => Self::Update,
                Method::DELETE => Self::Delete,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// Daily-budget tokens this operation costs (OpenAPI `x-token-cost`).
    pub fn token_cost(self) -> u64 {
        match self {
            Self::GetOne | Self::Other => 1,
            Self::List | Self::ListWebhooks | Self::AddWebhook => 10,
            Self::Create | Self::Update => 5,
            Self::Delete => 3,
            Self::DeleteWebhook => 6,
            Self::Search => 20,
        }
    }
}

/// `"/<one segment>"`.
fn is_one_segment(tail: &str) -> bool {
    tail.len() > 1 && tail.starts_with('/') && !tail[1..].contains('/')
}

/// What the burst headers say after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStatus {
    /// `x-ratelimit-limit`.
    pub limit: u32,
    /// `x-ratelimit-remaining`.
    pub remaining: u32,
    /// `x-ratelimit-reset`, whole seconds.
    pub reset_secs: u64,
}

/// A rolling window: at most `limit` admitted requests in any `window`.
#[derive(Debug, Clone)]
pub struct BurstWindow {
    limit: u32,
    window: Duration,
    admitted: VecDeque<OffsetDateTime>,
}

impl BurstWindow {
    /// A window admitting `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            admitted: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: OffsetDateTime) {
        while let Some(&oldest) = self.admitted.front() {
            if now - oldest >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
    }

    /// True when a request at `now` would fit.
    pub fn has_room(&mut self, now: OffsetDateTime) -> bool {
        self.prune(now);
        self.admitted.len() < self.limit as usize
    }

    /// Logs an admitted request.
    pub fn record(&mut self, now: OffsetDateTime) {
        self.prune(now);
        self.admitted.push_back(now);
    }

    /// The header values at `now`.
    pub fn status(&mut self, now: OffsetDateTime) -> WindowStatus {
        self.prune(now);
        let used = u32::try_from(self.admitted.len()).unwrap_or(u32::MAX);
        let reset = match self.admitted.front() {
            Some(&oldest) => Duration::try_from(oldest + self.window - now).unwrap_or_default(),
            None => self.window,
        };
        WindowStatus {
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset_secs: ceil_secs(reset),
        }
    }
}

/// Whole seconds rounded up, at least 1 (a reset of 0 would invite a busy loop).
fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// The per-company daily token budget.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    limit: u64,
    used: u64,
    day: Option<Date>,
}

impl DailyBudget {
    /// A budget of `limit` tokens per UTC day.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            day: None,
        }
    }

    fn roll(&mut self, today: Date) {
        if self.day != Some(today) {
            self.day = Some(today);
            self.used = 0;
        }
    }

    /// The daily limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Tokens left today.
    pub fn remaining(&mut self, today: Date) -> u64 {
        self.roll(today);
        self.limit.saturating_sub(self.used)
    }

    /// Charges `cost` if it fits; returns false (and charges nothing) if it does not.
    pub fn try_charge(&mut self, cost: u64, today: Date) -> bool {
        self.roll(today);
        if self.used.saturating_add(cost) > self.limit {
            return false;
        }
        self.used += cost;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn window_admits_limit_then_refuses_until_the_oldest_leaves() {
        let mut w = BurstWindow::new(3, Duration::from_secs(2));
        for (i, expected_remaining) in [2, 1, 0].into_iter().enumerate() {
            let now = T0 + ms(500 * i as u64);
            assert!(w.has_room(now));
            w.record(now);
            assert_eq!(w.status(now).remaining, expected_remaining);
        }
        // t = 1.5 s: full; the first request (t = 0) leaves at t = 2 s.
        let now = T0 + ms(1500);
        assert!(!w.has_room(now));
        assert_eq!(
            w.status(now),
            WindowStatus {
                limit: 3,
                remaining: 0,
                reset_secs: 1
            }
        );
        assert!(!w.has_room(T0 + ms(1999)));
        assert!(
            w.has_room(T0 + ms(2000)),
            "a slot frees exactly when the window rolls"
        );
    }

    #[test]
    fn reset_is_whole_seconds_rounded_up_and_never_zero() {
        let mut w = BurstWindow::new(40, Duration::from_secs(2));
        assert_eq!(
            w.status(T0).reset_secs,
            2,
            "empty window reports the full window"
        );
        w.record(T0);
        assert_eq!(
            w.status(T0),
            WindowStatus {
                limit: 40,
                remaining: 39,
                reset_secs: 2
            }
        );
        assert_eq!(w.status(T0 + ms(1001)).reset_secs, 1);
        let mut short = BurstWindow::new(1, ms(300));
        short.record(T0);
        assert_eq!(short.status(T0).reset_secs, 1);
    }

    #[test]
    fn budget_charges_costs_and_resets_daily() {
        let mut b = DailyBudget::new(12);
        let day = date!(2025 - 03 - 01);
        assert!(b.try_charge(Operation::Create.token_cost(), day));
        assert!(b.try_charge(Operation::Update.token_cost(), day));
        assert_eq!(b.remaining(day), 2);
        assert!(
            !b.try_charge(Operation::Delete.token_cost(), day),
            "3 > 2 left"
        );
        assert_eq!(b.remaining(day), 2, "a refused request costs nothing");
        assert!(b.try_charge(Operation::GetOne.token_cost(), day));
        assert_eq!(
            b.remaining(date!(2025 - 03 - 02)),
            12,
            "midnight resets the budget"
        );
    }

    #[test]
    fn operations_are_classified_by_method_and_path() {
        use Operation::*;
        let cases = [
            (Method::POST, "/api/v2/persons", Create),
            (Method::GET, "/api/v2/persons", List),
            (Method::GET, "/api/v2/persons/search", Search),
            (Method::GET, "/api/v2/persons/17", GetOne),
            (Method::PATCH, "/api/v2/persons/17", Update),
            (Method::DELETE, "/api/v2/persons/17", Delete),
            (Method::GET, "/api/v2/persons/17/followers", Other),
            (Method::GET, "/api/v2/organizations/search", Search),
            (Method::PATCH, "/api/v2/organizations/3", Update),
            (Method::POST, "/api/v2/deals", Create),
            (Method::GET, "/api/v2/deals/search", Search),
            (Method::DELETE, "/api/v2/deals/9", Delete),
            (Method::GET, "/api/v2/activities", Other),
            (Method::GET, "/v1/webhooks", ListWebhooks),
            (Method::POST, "/v1/webhooks", AddWebhook),
            (Method::DELETE, "/v1/webhooks/4", DeleteWebhook),
        ];
        for (method, path, op) in cases {
            assert_eq!(Operation::classify(&method, path), op, "{method} {path}");
        }
        assert_eq!(Search.token_cost(), 20);
        assert_eq!(List.token_cost(), 10);
        assert_eq!(DeleteWebhook.token_cost(), 6);
    }
}
