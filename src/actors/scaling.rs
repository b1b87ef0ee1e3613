//! When to grow or shrink a node's worker pool. Pure: the Supervisor feeds it what it sees
//! (its workers, how many are busy, the cluster's backlog) and applies the answer.
//!
//! Growing is quick: a backlog with no idle worker asks for one worker per waiting job, up to
//! the maximum. Shrinking is slow on purpose (the hysteresis): only after `down_after` with
//! no backlog and at most half the workers busy, and then by half the idle workers at a time,
//! so a lull between two bursts does not tear down the pool the next burst needs.

use std::time::{Duration, Instant};

pub struct Scaler {
    min: usize,
    max: usize,
    down_after: Duration,
    /// Since when the pool has been under-used; None while it is not.
    quiet_since: Option<Instant>,
}

impl Scaler {
    pub fn new(min: usize, max: usize, down_after: Duration) -> Scaler {
        Scaler {
            min,
            max,
            down_after,
            quiet_since: None,
        }
    }

    /// The pool size wanted now.
    pub fn target(&mut self, now: Instant, total: usize, busy: usize, pending: u64) -> usize {
        let idle = total.saturating_sub(busy);
        if pending > 0 && idle == 0 {
            self.quiet_since = None;
            let wanted = total.saturating_add(usize::try_from(pending).unwrap_or(usize::MAX));
            return wanted.clamp(self.min, self.max);
        }
        if pending > 0 || busy * 2 > total || total <= self.min {
            self.quiet_since = None;
            return total.max(self.min);
        }
        let since = *self.quiet_since.get_or_insert(now);
        if now.duration_since(since) < self.down_after {
            return total;
        }
        // The next step down waits its own full period.
        self.quiet_since = Some(now);
        (busy + idle / 2).max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: Duration = Duration::from_secs(10);

    #[test]
    fn a_backlog_with_every_worker_busy_grows_the_pool_up_to_the_maximum() {
        let mut s = Scaler::new(1, 8, DOWN);
        let now = Instant::now();
        assert_eq!(s.target(now, 1, 1, 3), 4);
        assert_eq!(s.target(now, 4, 4, 200), 8);
        // Idle workers left: they will take the backlog; no growth yet.
        assert_eq!(s.target(now, 4, 3, 5), 4);
    }

    #[test]
    fn the_pool_shrinks_only_after_a_quiet_period_and_by_halves_down_to_the_minimum() {
        let mut s = Scaler::new(1, 8, DOWN);
        let t0 = Instant::now();
        assert_eq!(s.target(t0, 8, 0, 0), 8);
        assert_eq!(s.target(t0 + Duration::from_secs(9), 8, 0, 0), 8);
        assert_eq!(s.target(t0 + DOWN, 8, 0, 0), 4);
        assert_eq!(s.target(t0 + DOWN + Duration::from_secs(1), 4, 0, 0), 4);
        assert_eq!(s.target(t0 + DOWN * 2, 4, 0, 0), 2);
        assert_eq!(s.target(t0 + DOWN * 3, 2, 0, 0), 1);
        assert_eq!(s.target(t0 + DOWN * 4, 1, 0, 0), 1);
    }

    #[test]
    fn any_backlog_or_a_busy_pool_restarts_the_quiet_period() {
        let mut s = Scaler::new(2, 8, DOWN);
        let t0 = Instant::now();
        assert_eq!(s.target(t0, 8, 1, 0), 8);
        assert_eq!(s.target(t0 + Duration::from_secs(9), 8, 5, 0), 8);
        assert_eq!(s.target(t0 + DOWN, 8, 1, 0), 8);
        assert_eq!(s.target(t0 + DOWN * 2, 8, 1, 1), 8);
        assert_eq!(s.target(t0 + DOWN * 2 + Duration::from_secs(1), 8, 1, 0), 8);
        // Busy workers are kept: half of the seven idle ones go.
        assert_eq!(s.target(t0 + DOWN * 3 + Duration::from_secs(1), 8, 1, 0), 4);
    }

    #[test]
    fn a_fixed_pool_never_changes() {
        let mut s = Scaler::new(4, 4, DOWN);
        let t0 = Instant::now();
        assert_eq!(s.target(t0, 4, 4, 100), 4);
        assert_eq!(s.target(t0 + DOWN * 5, 4, 0, 0), 4);
    }
}
