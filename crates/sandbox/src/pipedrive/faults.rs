//! `fail_next` and `set_latency` of [`super::PipedriveSandbox`], kept with their old
//! meaning on top of the shared [`Control`] fault rules.
//!
//! `fail_next` queues: failures asked for later start after the ones asked for earlier.
//! Control rules all count down on every call they match and the first added answers, so
//! a queued rule is sized to outlive the failures ahead of it, using the control's request
//! counter as the clock of calls. That is exact for sequential calls; with calls in flight
//! (decided but not yet logged) the boundary can shift by those calls. A control reset is
//! noticed when the counter went back since the last `fail_next` and starts a fresh queue;
//! a reset (or `clear_faults`) with failures still queued and no call since can make the
//! next `fail_next` last longer than asked — `Control` offers no way to see its rules.

use std::time::Duration;

use axum::http::StatusCode;

use crate::control::{Control, FaultRule};

/// What `fail_next`/`set_latency` have asked of the control so far.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    /// The request count at which the failures queued so far are used up.
    failures_end: usize,
    /// The request count at the last `fail_next`; a smaller one means a control reset.
    last_seen: usize,
    /// The latency set through `set_latency`.
    latency: Duration,
}

impl FaultPlan {
    /// The next `n` calls after those already queued answer `status`.
    pub fn fail_next(&mut self, control: &Control, n: u32, status: StatusCode) {
        if n == 0 {
            return;
        }
        let seen = control.counters().requests;
        if seen < self.last_seen {
            self.failures_end = 0;
        }
        self.last_seen = seen;
        let ahead = self.failures_end.saturating_sub(seen);
        let count = u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(n);
        self.failures_end = seen + ahead + n as usize;
        control.add_fault(FaultRule::fail_next("*", count, status));
    }

    /// Every later call waits `latency`; lowering it clears every fault rule.
    pub fn set_latency(&mut self, control: &Control, latency: Duration) {
        let extra = if latency >= self.latency {
            latency - self.latency
        } else {
            control.clear_faults();
            self.failures_end = 0;
            latency
        };
        self.latency = latency;
        if !extra.is_zero() {
            control.add_fault(FaultRule {
                endpoint: "*".to_owned(),
                error_rate: 0.0,
                status: 0,
                latency_ms: u64::try_from(extra.as_millis()).unwrap_or(u64::MAX),
                count: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn queued_failures_follow_each_other() {
        let control = Control::new(Clock::real());
        let mut plan = FaultPlan::default();
        plan.fail_next(&control, 2, StatusCode::SERVICE_UNAVAILABLE);
        plan.fail_next(&control, 1, StatusCode::INTERNAL_SERVER_ERROR);
        let mut got = Vec::new();
        for _ in 0..4 {
            let status = control.decide("GET", "/api/v2/persons/1").status;
            control.record_request("GET", "/api/v2/persons/1", status.unwrap_or(StatusCode::OK));
            got.push(status.map(|s| s.as_u16()));
        }
        assert_eq!(got, [Some(503), Some(503), Some(500), None]);
    }

    #[test]
    fn a_reset_starts_a_fresh_queue() {
        let control = Control::new(Clock::real());
        let mut plan = FaultPlan::default();
        plan.fail_next(&control, 3, StatusCode::BAD_GATEWAY);
        control.record_request("GET", "/x", StatusCode::BAD_GATEWAY);
        control.record_request("GET", "/x", StatusCode::BAD_GATEWAY);
        plan.fail_next(&control, 1, StatusCode::BAD_GATEWAY);
        control.reset();
        plan.fail_next(&control, 1, StatusCode::BAD_GATEWAY);
        assert!(control.decide("GET", "/x").status.is_some());
        control.record_request("GET", "/x", StatusCode::BAD_GATEWAY);
        assert_eq!(
            control.decide("GET", "/x").status,
            None,
            "one failure, not three"
        );
    }
}
