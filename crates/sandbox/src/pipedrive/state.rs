//! The Pipedrive emulator's shared state: person store, counters, faults and limits.
//!
//! One `std::sync::Mutex` guards everything. It is only ever taken in short synchronous
//! blocks and never held across an `.await` (the server future would not be `Send` if it
//! were), so a std mutex is cheaper and simpler than tokio's here. A poisoned lock is
//! recovered rather than propagated: the state is plain data, and a test that panicked
//! while holding it should not turn every later request into a second panic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::PipedriveConfig;
use super::model::Person;
use super::rate_limit::{BurstWindow, DailyBudget, Operation, WindowStatus};

/// How many request records the emulator keeps (oldest dropped first), so a long demo run
/// does not grow without bound.
const REQUEST_LOG_CAPACITY: usize = 10_000;

/// One request the emulator answered, for tests that inspect traffic. Secrets are never
/// recorded: no headers, no bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: Method,
    /// Path and query string.
    pub path_and_query: String,
    /// Status the emulator answered.
    pub status: StatusCode,
}

/// A stored person plus emulator-only bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct StoredPerson {
    pub person: Person,
    /// When the person becomes visible to search (creation time + configured search lag).
    pub searchable_from: Instant,
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

/// Everything the emulator knows, behind one mutex.
#[derive(Debug)]
pub(crate) struct Inner {
    pub persons: BTreeMap<u64, StoredPerson>,
    pub next_id: u64,
    /// Successful creates per lower-cased email.
    pub creates_by_email: HashMap<String, usize>,
    pub total_creates: usize,
    pub request_count: usize,
    pub throttled_count: usize,
    /// Pending injected failures, served in order: (how many left, status).
    pub faults: VecDeque<(u32, StatusCode)>,
    pub latency: Duration,
    pub burst: BurstWindow,
    pub search_burst: BurstWindow,
    pub budget: DailyBudget,
    pub log: VecDeque<RequestRecord>,
}

impl Inner {
    fn new(config: &PipedriveConfig) -> Self {
        Self {
            persons: BTreeMap::new(),
            next_id: config.first_person_id,
            creates_by_email: HashMap::new(),
            total_creates: 0,
            request_count: 0,
            throttled_count: 0,
            faults: VecDeque::new(),
            latency: Duration::ZERO,
            burst: BurstWindow::new(config.burst_limit, config.burst_window),
            search_burst: BurstWindow::new(config.search_burst_limit, config.burst_window),
            budget: DailyBudget::new(config.daily_budget),
            log: VecDeque::new(),
        }
    }

    /// Takes the next injected failure, if any.
    pub fn take_fault(&mut self) -> Option<StatusCode> {
        let (left, status) = self.faults.front_mut()?;
        let status = *status;
        *left -= 1;
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(status)
    }

    /// Applies the burst windows and the daily budget to one authenticated request.
    pub fn admit(&mut self, op: Operation, now: Instant, today: time::Date) -> Admission {
        let search = op == Operation::Search;
        let general_room = self.burst.has_room(now);
        let search_room = !search || self.search_burst.has_room(now);
        if !general_room || !search_room {
            self.throttled_count += 1;
            // Report the window that refused.
            let window = if general_room {
                self.search_burst.status(now)
            } else {
                self.burst.status(now)
            };
            return Admission::BurstLimited(self.headers(window, today));
        }
        if !self.budget.try_charge(op.token_cost(), today) {
            self.throttled_count += 1;
            let window = self.burst.status(now);
            return Admission::BudgetExhausted(self.headers(window, today));
        }
        self.burst.record(now);
        let mut window = self.burst.status(now);
        if search {
            self.search_burst.record(now);
            let search_window = self.search_burst.status(now);
            if search_window.remaining < window.remaining {
                window = search_window;
            }
        }
        Admission::Admitted(self.headers(window, today))
    }

    fn headers(&mut self, window: WindowStatus, today: time::Date) -> LimitHeaders {
        LimitHeaders {
            window,
            daily_limit: self.budget.limit(),
            daily_remaining: self.budget.remaining(today),
        }
    }

    /// Appends to the bounded request log.
    pub fn log_request(&mut self, record: RequestRecord) {
        if self.log.len() == REQUEST_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    /// Live (not deleted) persons, by ID.
    pub fn live_persons(&self) -> impl Iterator<Item = &Person> {
        self.persons
            .values()
            .map(|s| &s.person)
            .filter(|p| !p.is_deleted)
    }

    /// Stores a new person and counts the create for each of its emails.
    pub fn insert_created(&mut self, person: Person, searchable_from: Instant) -> Person {
        self.total_creates += 1;
        let mut seen: Vec<String> = Vec::new();
        for email in &person.emails {
            let key = email.value.to_ascii_lowercase();
            if !seen.contains(&key) {
                *self.creates_by_email.entry(key.clone()).or_default() += 1;
                seen.push(key);
            }
        }
        self.persons.insert(
            person.id,
            StoredPerson {
                person: person.clone(),
                searchable_from,
            },
        );
        person
    }

    /// Hands out the next sequential person ID.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// State shared by the server task and the test handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: PipedriveConfig,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(config: PipedriveConfig) -> Self {
        let inner = Mutex::new(Inner::new(&config));
        Self { config, inner }
    }

    /// Locks the state, recovering from poisoning (see the module docs).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Today's date at the emulated server (UTC).
pub(crate) fn today_utc() -> time::Date {
    OffsetDateTime::now_utc().date()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::date;

    fn inner(burst: u32, search: u32, budget: u64) -> Inner {
        let config = PipedriveConfig {
            burst_limit: burst,
            search_burst_limit: search,
            daily_budget: budget,
            ..PipedriveConfig::new("t")
        };
        Inner::new(&config)
    }

    #[tokio::test(start_paused = true)]
    async fn search_must_fit_both_windows_and_reports_the_tighter_one() {
        let mut s = inner(5, 2, 1_000);
        let day = date!(2025 - 01 - 01);
        let now = Instant::now();
        let Admission::Admitted(h) = s.admit(Operation::Search, now, day) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (2, 1));
        assert!(matches!(
            s.admit(Operation::Search, now, day),
            Admission::Admitted(_)
        ));
        let Admission::BurstLimited(h) = s.admit(Operation::Search, now, day) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (2, 0));
        // Non-search requests still have room in the general window.
        let Admission::Admitted(h) = s.admit(Operation::GetOne, now, day) else {
            panic!()
        };
        assert_eq!((h.window.limit, h.window.remaining), (5, 2));
        assert_eq!(s.throttled_count, 1);
        assert_eq!(h.daily_remaining, 1_000 - 20 - 20 - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_exhaustion_is_a_throttle_that_costs_nothing() {
        let mut s = inner(40, 10, 6);
        let day = date!(2025 - 01 - 01);
        let now = Instant::now();
        assert!(matches!(
            s.admit(Operation::Create, now, day),
            Admission::Admitted(_)
        ));
        let Admission::BudgetExhausted(h) = s.admit(Operation::Create, now, day) else {
            panic!()
        };
        assert_eq!(h.daily_remaining, 1);
        assert_eq!(
            h.window.remaining, 39,
            "a refused request takes no burst slot"
        );
        assert!(matches!(
            s.admit(Operation::GetOne, now, day),
            Admission::Admitted(_)
        ));
        assert_eq!(s.throttled_count, 1);
    }

    #[test]
    fn faults_are_served_in_order_then_stop() {
        let mut s = inner(40, 10, 100);
        s.faults.push_back((2, StatusCode::SERVICE_UNAVAILABLE));
        s.faults.push_back((1, StatusCode::INTERNAL_SERVER_ERROR));
        let got: Vec<_> = std::iter::from_fn(|| s.take_fault()).collect();
        assert_eq!(
            got,
            [
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::INTERNAL_SERVER_ERROR
            ]
        );
    }
}
