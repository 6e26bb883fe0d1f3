//! One backoff for everything that reconnects (the ActiveMQ source, the agent waiting for its
//! backend): after a failure the next attempt waits `first`, then twice as long after each
//! further failure, up to `max`. A success resets it only once the connection has *lasted*
//! (`stable`): a broker that accepts connections and drops them at once (a restart under way)
//! is retried with the growing pause, not at the first one every time.
//!
//! The clock is passed in (`now`), so that the rules are tested on instants made by the test.

use std::time::{Duration, Instant};

/// The state of one backoff.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    stable: Duration,
    /// The pause after the next failure.
    next: Duration,
    /// No attempt before this (set by a failure).
    retry_at: Option<Instant>,
    /// When the current connection was made.
    connected_at: Option<Instant>,
    /// Failures since the last stable connection.
    failures: u32,
}

impl Backoff {
    /// A backoff whose first pause is `first` (at least 1 ms), doubling up to `max`; a
    /// connection that lasted `stable` resets it.
    pub fn new(first: Duration, max: Duration, stable: Duration) -> Self {
        let first = first.max(Duration::from_millis(1)).min(max);
        Self {
            first,
            max,
            stable,
            next: first,
            retry_at: None,
            connected_at: None,
            failures: 0,
        }
    }

    /// Whether an attempt may be made at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// When the next attempt may be made (none: now).
    #[cfg(test)]
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Failures since the last stable connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// An attempt succeeded at `now` (a connection was made).
    pub fn connected(&mut self, now: Instant) {
        self.retry_at = None;
        self.connected_at = Some(now);
    }

    /// An attempt failed, or the connection was lost, at `now`: the pause before the next
    /// attempt. A connection that had lasted `stable` starts the pauses again from `first`.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) >= self.stable)
        {
            self.next = self.first;
            self.failures = 0;
        }
        let pause = self.next;
        self.failures = self.failures.saturating_add(1);
        self.next = (self.next * 2).min(self.max);
        self.retry_at = now.checked_add(pause);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn pauses_double_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S / 2, 30 * S, 10 * S);
        assert!(b.ready(t0));
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let pause = b.failed(now);
            assert!(!b.ready(now));
            assert!(!b.ready(now + pause - Duration::from_millis(1)));
            assert!(b.ready(now + pause));
            pauses.push(pause.as_millis());
            now += pause;
        }
        assert_eq!(pauses, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        // A broker down for 20 s: attempts at 0, 0.5, 1.5, 3.5, 7.5 and 15.5 s: six, not forty.
        let attempts = pauses
            .iter()
            .scan(0u128, |at, p| {
                let this = *at;
                *at += p;
                Some(this)
            })
            .take_while(|at| *at < 20_000)
            .count();
        assert_eq!(attempts, 6);
    }

    #[test]
    fn a_connection_dropped_at_once_does_not_reset_the_pause() {
        let mut now = Instant::now();
        let mut b = Backoff::new(S / 2, 30 * S, 10 * S);
        let mut pauses = Vec::new();
        for _ in 0..5 {
            b.connected(now);
            // The broker (restarting) closes the connection right away.
            now += Duration::from_millis(10);
            let pause = b.failed(now);
            pauses.push(pause.as_millis());
            now += pause;
        }
        assert_eq!(pauses, [500, 1000, 2000, 4000, 8000]);
        assert_eq!(b.failures(), 5);
    }

    #[test]
    fn a_connection_that_lasted_resets_the_pause() {
        let mut now = Instant::now();
        let mut b = Backoff::new(S / 2, 30 * S, 10 * S);
        for _ in 0..4 {
            let pause = b.failed(now);
            now += pause;
        }
        b.connected(now);
        now += 11 * S;
        assert_eq!(b.failed(now), S / 2);
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn a_huge_pause_is_bounded_and_never_overflows() {
        let now = Instant::now();
        let mut b = Backoff::new(Duration::MAX, 30 * S, 10 * S);
        assert_eq!(b.failed(now), 30 * S);
        assert_eq!(b.failed(now), 30 * S);
    }
}
