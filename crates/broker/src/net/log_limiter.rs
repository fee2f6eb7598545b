//! Rate-limited log lines about connections: a client that reconnects tens of
//! thousands of times in a retry loop must not flood the log. Up to
//! [`LINES_PER_WINDOW`] lines are written per [`WINDOW`]; the rest are counted and
//! reported, with their number, by the first line of a later window (or at shutdown).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of one rate window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Lines written per window.
pub(crate) const LINES_PER_WINDOW: u64 = 50;

#[derive(Debug)]
struct Window {
    start: Instant,
    written: u64,
    suppressed: u64,
}

/// Decides which connection lines are written.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    window: Mutex<Option<Window>>,
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it; `suppressed` lines were dropped since the last written one.
    Write { suppressed: u64 },
    /// Drop it (counted).
    Suppress,
}

impl LogLimiter {
    /// A limiter with nothing written yet.
    pub fn new() -> Self {
        LogLimiter {
            window: Mutex::new(None),
        }
    }

    /// The verdict for a line at `now`.
    pub fn line(&self, now: Instant) -> Verdict {
        let mut guard = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let window = guard.get_or_insert(Window {
            start: now,
            written: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(window.start) >= WINDOW {
            window.start = now;
            window.written = 0;
        }
        if window.written >= LINES_PER_WINDOW {
            window.suppressed += 1;
            return Verdict::Suppress;
        }
        window.written += 1;
        Verdict::Write {
            suppressed: std::mem::take(&mut window.suppressed),
        }
    }
}

impl LogLimiter {
    /// Lines suppressed and not reported yet (reported by the caller, e.g. at
    /// shutdown, when no later line would carry them).
    pub fn take_suppressed(&self) -> u64 {
        let mut guard = self.window.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_mut()
            .map_or(0, |window| std::mem::take(&mut window.suppressed))
    }
}

/// Writes a connection log line at `level` unless `limiter` suppresses it; the first
/// line after suppressed ones says how many were dropped.
macro_rules! connection_line {
    ($limiter:expr, $level:ident, $($rest:tt)+) => {
        match $limiter.line(std::time::Instant::now()) {
            $crate::net::log_limiter::Verdict::Suppress => {}
            $crate::net::log_limiter::Verdict::Write { suppressed: 0 } => tracing::$level!($($rest)+),
            $crate::net::log_limiter::Verdict::Write { suppressed } => {
                tracing::warn!(suppressed, "connection log lines suppressed (more than {} in {:?})", $crate::net::log_limiter::LINES_PER_WINDOW, $crate::net::log_limiter::WINDOW);
                tracing::$level!($($rest)+)
            }
        }
    };
}
pub(crate) use connection_line;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_window_budget_and_summarised_by_the_next_line() {
        let limiter = LogLimiter::new();
        let t0 = Instant::now();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(limiter.line(t0), Verdict::Write { suppressed: 0 });
        }
        for _ in 0..1_000 {
            assert_eq!(limiter.line(t0 + WINDOW / 2), Verdict::Suppress);
        }
        assert_eq!(
            limiter.line(t0 + WINDOW),
            Verdict::Write { suppressed: 1_000 },
            "the next window's first line reports the drops"
        );
        assert_eq!(limiter.line(t0 + WINDOW), Verdict::Write { suppressed: 0 });
        for _ in 0..LINES_PER_WINDOW + 3 {
            limiter.line(t0 + 2 * WINDOW);
        }
        assert_eq!(limiter.take_suppressed(), 3, "the rest, for a last summary");
        assert_eq!(limiter.take_suppressed(), 0);
    }
}
