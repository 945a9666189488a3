//! Telling an outage from a bad record.
//!
//! One record failing after its in-place attempts while others succeed is that record's
//! problem: it moves to a retry tier and the rest flow on. Several different records failing
//! in a row, with no success between them, is the target's problem: the circuit opens, and
//! the sink keeps retrying the record at hand (consumption waits) instead of moving every
//! record into the retry tiers, then on towards the DLQ. The first success closes it.

/// The circuit of one target connection.
#[derive(Debug)]
pub(crate) struct Circuit {
    threshold: u32,
    failed_in_a_row: u32,
}

impl Circuit {
    /// Opens after `threshold` different records failed in a row (at least 1).
    pub(crate) fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            failed_in_a_row: 0,
        }
    }

    /// A record was delivered.
    pub(crate) fn success(&mut self) {
        self.failed_in_a_row = 0;
    }

    /// A record used up its in-place attempts. Returns whether the circuit is now open,
    /// i.e. whether to keep retrying it instead of moving it on.
    pub(crate) fn record_failed(&mut self) -> bool {
        self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
        self.is_open()
    }

    /// Whether the target looks down.
    pub(crate) fn is_open(&self) -> bool {
        self.failed_in_a_row >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_bad_record_does_not_open_it() {
        let mut c = Circuit::new(3);
        assert!(!c.record_failed());
        c.success();
        assert!(!c.record_failed());
        assert!(!c.is_open());
    }

    #[test]
    fn records_failing_in_a_row_open_it_and_a_success_closes_it() {
        let mut c = Circuit::new(3);
        assert!(!c.record_failed());
        assert!(!c.record_failed());
        assert!(c.record_failed());
        c.success();
        assert!(!c.is_open());
    }
}
