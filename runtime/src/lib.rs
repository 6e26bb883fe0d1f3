//! What the agent's subsystems share at run time: watched tasks ([`tasks`]), warnings that
//! repeat logged at most once a period ([`RateLimited`]), and the host's name.

pub mod tasks;

use std::time::Duration;

/// The host name (Linux), if it has one.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|n| !n.is_empty())
}

/// A warning that repeats is logged at most once per period; the next one says how many were
/// held back since (they are logged at debug level by the caller). On the runtime's clock.
#[derive(Debug)]
pub struct RateLimited {
    every: Duration,
    last: Option<tokio::time::Instant>,
    held_back: u64,
}

impl RateLimited {
    /// At most one warning per `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(how many were held back since the last one)` when a warning may be logged now.
    pub fn admit(&mut self) -> Option<u64> {
        if self.last.is_some_and(|at| at.elapsed() < self.every) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(tokio::time::Instant::now());
        Some(std::mem::take(&mut self.held_back))
    }
}
