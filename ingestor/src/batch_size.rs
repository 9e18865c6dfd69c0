//! `BatchSize`: how many readings the writer puts in its next batch.
//!
//! Live, a batch holds `INGEST_BATCH_MAX` readings (or what the flush
//! interval collects). While a backlog drains, the database is the limit,
//! and every commit costs a log flush and the rollup marks whatever its
//! size: bigger batches then carry the same readings in fewer commits.
//!
//! The signal is the writer's own: a full batch that had to wait for a
//! commit slot, with at least another batch's worth already received and
//! waiting behind it, means a backlog the database is the limit for, so
//! the next batch may be twice as big, up to the drain ceiling; a batch
//! that found a slot free, or little waiting behind it, means the database
//! keeps up, so the next is half as big, down to the live size. Live, a
//! commit that takes a little longer makes a full batch wait now and then,
//! but only a few hundred readings queue meanwhile: batches stay at the
//! live size, and so does latency (growing on the wait alone tripled the
//! p99 at half the landed rate, docs/PERFORMANCE.md).

/// The size of the next batch, between the live size and the ceiling.
#[derive(Debug, Clone)]
pub(crate) struct BatchSize {
    live: usize,
    ceiling: usize,
    current: usize,
}

/// How a batch went to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Submitted {
    /// It held [`BatchSize::current`] readings or messages (rather than
    /// going out when its flush deadline came).
    pub full: bool,
    /// Every commit slot was taken, so it waited for the oldest commit.
    pub waited: bool,
    /// Messages received and waiting for the writer once it had a slot.
    pub waiting: usize,
}

impl BatchSize {
    /// Starts at `live`; never grows past `ceiling` (nor shrinks below
    /// `live`, whichever is larger).
    pub(crate) fn new(live: usize, ceiling: usize) -> Self {
        let live = live.max(1);
        Self {
            live,
            ceiling: ceiling.max(live),
            current: live,
        }
    }

    /// The largest batch it allows.
    pub(crate) fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Readings (or messages) that fill the open batch.
    pub(crate) fn current(&self) -> usize {
        self.current
    }

    /// Adjusts the next batch's size to how the last one went.
    pub(crate) fn after(&mut self, submitted: Submitted) {
        let behind = submitted.full && submitted.waited && submitted.waiting >= self.current;
        let keeping_up = !submitted.waited || submitted.waiting < self.current / 2;
        self.current = if behind {
            self.current.saturating_mul(2).min(self.ceiling)
        } else if keeping_up {
            (self.current / 2).max(self.live)
        } else {
            // Sent by its deadline, or a little behind: keep the size.
            self.current
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEHIND: Submitted = Submitted {
        full: true,
        waited: true,
        waiting: 50_000,
    };
    const KEEPING_UP: Submitted = Submitted {
        full: true,
        waited: false,
        waiting: 0,
    };

    #[test]
    fn batches_grow_while_the_database_is_behind_up_to_the_ceiling() {
        let mut size = BatchSize::new(1000, 16_000);
        let grown: Vec<usize> = (0..6)
            .map(|_| {
                size.after(BEHIND);
                size.current()
            })
            .collect();
        assert_eq!(grown, [2000, 4000, 8000, 16_000, 16_000, 16_000]);
    }

    #[test]
    fn batches_shrink_back_to_the_live_size_once_the_database_keeps_up() {
        let mut size = BatchSize::new(1000, 16_000);
        for _ in 0..4 {
            size.after(BEHIND);
        }
        let shrunk: Vec<usize> = (0..6)
            .map(|_| {
                size.after(KEEPING_UP);
                size.current()
            })
            .collect();
        assert_eq!(shrunk, [8000, 4000, 2000, 1000, 1000, 1000]);
    }

    #[test]
    fn a_batch_sent_by_its_deadline_while_the_database_is_busy_keeps_the_size() {
        let mut size = BatchSize::new(1000, 16_000);
        size.after(BEHIND);
        size.after(Submitted {
            full: false,
            waited: true,
            waiting: 50_000,
        });
        assert_eq!(size.current(), 2000);
    }

    #[test]
    fn a_live_batch_that_waits_for_a_slow_commit_does_not_grow() {
        let mut size = BatchSize::new(1000, 16_000);
        // A commit took a little longer: the full batch waited, and a few
        // hundred readings arrived meanwhile.
        size.after(Submitted {
            full: true,
            waited: true,
            waiting: 900,
        });
        assert_eq!(size.current(), 1000);
    }

    #[test]
    fn with_little_waiting_behind_it_a_grown_batch_shrinks() {
        let mut size = BatchSize::new(1000, 16_000);
        for _ in 0..3 {
            size.after(BEHIND);
        }
        size.after(Submitted {
            full: true,
            waited: true,
            waiting: 1000,
        });
        assert_eq!(size.current(), 4000);
    }

    #[test]
    fn a_ceiling_below_the_live_size_means_no_growth() {
        let mut size = BatchSize::new(1000, 10);
        size.after(BEHIND);
        assert_eq!(size.current(), 1000);
        let mut one = BatchSize::new(1, 1);
        one.after(BEHIND);
        assert_eq!(one.current(), 1);
    }
}
