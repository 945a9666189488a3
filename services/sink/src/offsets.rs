//! Which offsets may be stored while records of one partition finish out of order.
//!
//! With several records in flight, a later record of a partition can finish before an
//! earlier one (they have different keys). Its offset must not be stored yet: a crash would
//! then skip the earlier record. An offset is storable once the record is done and nothing
//! before it in its partition is still in flight; the tracker hands out the highest such
//! offset, never a lower one than it handed out before.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A topic partition.
pub(crate) type Partition = (String, i32);

#[derive(Debug, Default)]
struct Progress {
    /// Offsets handed to a lane and not finished; a count, because a partition read again
    /// after a rebalance can hand out an offset that is still in flight.
    in_flight: BTreeMap<i64, u32>,
    /// Finished offsets not storable yet (something earlier is in flight).
    finished: BTreeSet<i64>,
    /// The last offset handed out as storable.
    stored: Option<i64>,
}

/// In-flight records of every partition a sink reads.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    partitions: HashMap<Partition, Progress>,
}

impl Offsets {
    /// The record at `offset` of `partition` was handed to a lane.
    pub(crate) fn start(&mut self, partition: &Partition, offset: i64) {
        let progress = self.partitions.entry(partition.clone()).or_default();
        *progress.in_flight.entry(offset).or_default() += 1;
    }

    /// The record at `offset` is done. Returns the offset to store now, if any: the highest
    /// finished offset with nothing earlier in flight.
    pub(crate) fn finish(&mut self, partition: &Partition, offset: i64) -> Option<i64> {
        let progress = self.partitions.get_mut(partition)?;
        match progress.in_flight.get_mut(&offset) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                progress.in_flight.remove(&offset);
            }
            None => return None,
        }
        progress.finished.insert(offset);
        let floor = progress
            .in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::MAX);
        let storable = progress.finished.range(..floor).next_back().copied()?;
        progress.finished = progress.finished.split_off(&floor);
        if progress.stored.is_some_and(|stored| stored >= storable) {
            return None;
        }
        progress.stored = Some(storable);
        Some(storable)
    }

    /// Records handed out and not finished, over all partitions.
    pub(crate) fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.in_flight.values().map(|n| *n as usize).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Partition {
        ("t".to_owned(), 0)
    }

    #[test]
    fn in_order_finishes_store_each_offset() {
        let mut o = Offsets::default();
        o.start(&p(), 5);
        o.start(&p(), 6);
        assert_eq!(o.finish(&p(), 5), Some(5));
        assert_eq!(o.finish(&p(), 6), Some(6));
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn a_later_record_waits_for_an_earlier_one_in_flight() {
        let mut o = Offsets::default();
        for offset in [10, 11, 12] {
            o.start(&p(), offset);
        }
        assert_eq!(o.finish(&p(), 12), None, "10 is still in flight");
        assert_eq!(o.finish(&p(), 11), None);
        assert_eq!(o.finish(&p(), 10), Some(12), "all three are done");
    }

    #[test]
    fn partitions_do_not_wait_for_each_other() {
        let mut o = Offsets::default();
        let q = ("t".to_owned(), 1);
        o.start(&p(), 1);
        o.start(&q, 1);
        assert_eq!(o.finish(&q, 1), Some(1));
        assert_eq!(o.in_flight(), 1);
    }

    #[test]
    fn an_offset_read_twice_is_done_when_both_finish_and_nothing_goes_back() {
        let mut o = Offsets::default();
        o.start(&p(), 3);
        o.start(&p(), 4);
        // Read again after a rebalance while the first copies are in flight.
        o.start(&p(), 3);
        assert_eq!(o.finish(&p(), 3), None, "the other copy of 3 is in flight");
        assert_eq!(o.finish(&p(), 4), None);
        assert_eq!(o.finish(&p(), 3), Some(4));
        o.start(&p(), 4);
        assert_eq!(o.finish(&p(), 4), None, "4 was stored already");
        assert_eq!(o.finish(&p(), 9), None, "never handed out");
    }
}
