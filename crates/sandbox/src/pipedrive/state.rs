//! The Pipedrive emulator's shared state: the record stores (persons, organizations,
//! deals), counters and rate limits, plus the parts with their own locks (OAuth tokens,
//! webhook subscriptions, schema switches).
//!
//! One `std::sync::Mutex` guards the stores and limits. It is only ever taken in short
//! synchronous blocks and never held across an `.await` (the server future would not be
//! `Send` if it were), so a std mutex is cheaper and simpler than tokio's here. A poisoned
//! lock is recovered rather than propagated: the state is plain data, and a test that
//! panicked while holding it should not turn every later request into a second panic.
//! Lock order, where two are held: the store first, then the webhook hub.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use super::PipedriveConfig;
use super::common::format_time;
use super::deal_model::Deal;
use super::model::Person;
use super::oauth::OAuthStore;
use super::org_model::Organization;
use super::rate_limit::{BurstWindow, DailyBudget, Operation, WindowStatus};
use super::schema::SchemaSwitches;
use super::webhooks::{Event, WebhookHub};
use crate::clock::Clock;
use crate::control::Control;

/// A stored record plus emulator-only bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Stored<T> {
    pub item: T,
    /// When the record becomes visible to search (creation time + configured search lag).
    pub searchable_from: OffsetDateTime,
}

/// How a request authenticated; each kind has its own burst windows (§2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    ApiToken,
    OAuth,
}

/// Outcome of the limit checks for one authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Go ahead; put these headers on the answer.
    Admitted(LimitHeaders),
    /// The burst window is full.
    BurstLimited(LimitHeaders),
    /// The daily budget cannot pay for this request.
    BudgetExhausted(LimitHeaders),
}

/// The rate-limit header values for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitHeaders {
    pub window: WindowStatus,
    pub daily_limit: u64,
    pub daily_remaining: u64,
}

impl LimitHeaders {
    /// Writes `x-ratelimit-*` and `x-daily-ratelimit-token-*`; never `Retry-After`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-ratelimit-limit", u64::from(self.window.limit)),
            ("x-ratelimit-remaining", u64::from(self.window.remaining)),
            ("x-ratelimit-reset", self.window.reset_secs),
            ("x-daily-ratelimit-token-limit", self.daily_limit),
            ("x-daily-ratelimit-token-remaining", self.daily_remaining),
        ];
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}

/// The general and the search window of one auth kind.
#[derive(Debug)]
struct Windows {
    general: BurstWindow,
    search: BurstWindow,
}

/// Records, counters and limits, behind one mutex.
#[derive(Debug)]
pub(crate) struct Inner {
    pub persons: BTreeMap<u64, Stored<Person>>,
    pub organizations: BTreeMap<u64, Stored<Organization>>,
    pub deals: BTreeMap<u64, Stored<Deal>>,
    next_person_id: u64,
    next_organization_id: u64,
    next_deal_id: u64,
    /// Persons created through the API (seeds excluded).
    pub total_creates: usize,
    pub throttled_count: usize,
    api: Windows,
    oauth: Windows,
    pub budget: DailyBudget,
}

impl Inner {
    fn new(config: &PipedriveConfig) -> Self {
        let windows = |general, search| Windows {
            general: BurstWindow::new(general, config.burst_window),
            search: BurstWindow::new(search, config.burst_window),
        };
        Self {
            persons: BTreeMap::new(),
            organizations: BTreeMap::new(),
            deals: BTreeMap::new(),
            next_person_id: config.first_person_id,
            next_organization_id: 1,
            next_deal_id: 1,
            total_creates: 0,
            throttled_count: 0,
            api: windows(config.burst_limit, config.search_burst_limit),
            oauth: windows(config.oauth_burst_limit, config.oauth_search_burst_limit),
            budget: DailyBudget::new(config.daily_budget),
        }
    }

    /// Applies the burst windows of `kind` and the shared daily budget to one request.
    pub fn admit(&mut self, kind: AuthKind, op: Operation, now: OffsetDateTime) -> Admission {
        let today = now.date();
        let search = op == Operation::Search;
        let daily_limit = self.budget.limit();
        let windows = match kind {
            AuthKind::ApiToken => &mut self.api,
            AuthKind::OAuth => &mut self.oauth,
        };
        let general_room = windows.general.has_room(now);
        let search_room = !search || windows.search.has_room(now);
        if !general_room || !search_room {
            // Report the window that refused.
            let window = if general_room {
                windows.search.status(now)
            } else {
                windows.general.status(now)
            };
            self.throttled_count += 1;
            return Admission::BurstLimited(LimitHeaders {
                window,
                daily_limit,
                daily_remaining: self.budget.remaining(today),
            });
        }
        if !self.budget.try_charge(op.token_cost(), today) {
            let window = windows.general.status(now);
            self.throttled_count += 1;
            return Admission::BudgetExhausted(LimitHeaders {
                window,
                daily_limit,
                daily_remaining: self.budget.remaining(today),
            });
        }
        windows.general.record(now);
        let mut window = windows.general.status(now);
        if search {
            windows.search.record(now);
            let search_window = windows.search.status(now);
            if search_window.remaining < window.remaining {
                window = search_window;
            }
        }
        Admission::Admitted(LimitHeaders {
            window,
            daily_limit,
            daily_remaining: self.budget.remaining(today),
        })
    }

    /// Live (not deleted) persons, by ID.
    pub fn live_persons(&self) -> impl Iterator<Item = &Person> {
        self.persons
            .values()
            .map(|s| &s.item)
            .filter(|p| !p.is_deleted)
    }

    /// Live organizations, by ID.
    pub fn live_organizations(&self) -> impl Iterator<Item = &Organization> {
        self.organizations
            .values()
            .map(|s| &s.item)
            .filter(|o| !o.is_deleted)
    }

    /// Live deals, by ID.
    pub fn live_deals(&self) -> impl Iterator<Item = &Deal> {
        self.deals
            .values()
            .map(|s| &s.item)
            .filter(|d| !d.is_deleted)
    }

    /// The live person with this ID.
    pub fn live_person(&self, id: u64) -> Option<&Person> {
        self.persons
            .get(&id)
            .map(|s| &s.item)
            .filter(|p| !p.is_deleted)
    }

    /// The live organization with this ID.
    pub fn live_organization(&self, id: u64) -> Option<&Organization> {
        self.organizations
            .get(&id)
            .map(|s| &s.item)
            .filter(|o| !o.is_deleted)
    }

    /// Hands out the next sequential person ID.
    pub fn allocate_person_id(&mut self) -> u64 {
        let id = self.next_person_id;
        self.next_person_id += 1;
        id
    }

    /// Hands out the next sequential organization ID.
    pub fn allocate_organization_id(&mut self) -> u64 {
        let id = self.next_organization_id;
        self.next_organization_id += 1;
        id
    }

    /// Hands out the next sequential deal ID.
    pub fn allocate_deal_id(&mut self) -> u64 {
        let id = self.next_deal_id;
        self.next_deal_id += 1;
        id
    }
}

/// State shared by the server task and the test handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: PipedriveConfig,
    pub clock: Clock,
    pub control: Control,
    /// `http://127.0.0.1:<port>`: what OAuth answers as `api_domain`.
    pub base_url: String,
    pub oauth: OAuthStore,
    pub hub: WebhookHub,
    pub schema: SchemaSwitches,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(
        config: PipedriveConfig,
        control: Control,
        base_url: String,
        hub: WebhookHub,
    ) -> Self {
        let inner = Mutex::new(Inner::new(&config));
        Self {
            clock: config.clock.clone(),
            oauth: OAuthStore::default(),
            schema: SchemaSwitches::default(),
            config,
            control,
            base_url,
            hub,
            inner,
        }
    }

    /// Locks the state, recovering from poisoning (see the module docs).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtual now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Virtual now in the v2 time format.
    pub fn now_string(&self) -> String {
        format_time(self.clock.now())
    }

    /// Hands an event to the webhook subscriptions, with the current schema switches.
    /// Called with the store locked, so events leave in the order the changes were made.
    pub fn publish(&self, event: Event) {
        self.hub.publish(event, &self.schema.for_webhooks());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn inner(burst: u32, search: u32, budget: u64) -> Inner {
        let config = PipedriveConfig {
            burst_limit: burst,
            search_burst_limit: search,
            oauth_burst_limit: burst * 4,
            daily_budget: budget,
            ..PipedriveConfig::new("t")
        };
        Inner::new(&config)
    }

    const NOW: OffsetDateTime = datetime!(2025-01-01 10:00:00 UTC);

    #[test]
    fn search_must_fit_both_windows_and_reports_the_tighter_one() {
        let mut s = inner(5, 2, 1_000);
        let Admission::Admitted(h) = s.admit(AuthKind::ApiToken, Operation::Search, NOW) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (2, 1));
        assert!(matches!(
            s.admit(AuthKind::ApiToken, Operation::Search, NOW),
            Admission::Admitted(_)
        ));
        let Admission::BurstLimited(h) = s.admit(AuthKind::ApiToken, Operation::Search, NOW) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (2, 0));
        // Non-search requests still have room in the general window.
        let Admission::Admitted(h) = s.admit(AuthKind::ApiToken, Operation::GetOne, NOW) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (5, 2));
        assert_eq!(s.throttled_count, 1);
        assert_eq!(h.daily_remaining, 1_000 - 20 - 20 - 1);
    }

    #[test]
    fn budget_exhaustion_is_a_throttle_that_costs_nothing() {
        let mut s = inner(40, 10, 6);
        assert!(matches!(
            s.admit(AuthKind::ApiToken, Operation::Create, NOW),
            Admission::Admitted(_)
        ));
        let Admission::BudgetExhausted(h) = s.admit(AuthKind::OAuth, Operation::Create, NOW) else {
            panic!()
        };
        assert_eq!(h.daily_remaining, 1, "OAuth and api-token share the budget");
        assert_eq!(
            h.window.remaining, 160,
            "a refused request takes no burst slot"
        );
        assert!(matches!(
            s.admit(AuthKind::ApiToken, Operation::GetOne, NOW),
            Admission::Admitted(_)
        ));
        assert_eq!(s.throttled_count, 1);
    }

    #[test]
    fn oauth_has_its_own_higher_window() {
        let mut s = inner(2, 10, 1_000);
        for _ in 0..2 {
            s.admit(AuthKind::ApiToken, Operation::GetOne, NOW);
        }
        assert!(matches!(
            s.admit(AuthKind::ApiToken, Operation::GetOne, NOW),
            Admission::BurstLimited(_)
        ));
        let Admission::Admitted(h) = s.admit(AuthKind::OAuth, Operation::GetOne, NOW) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (8, 7));
    }
}
