//! Calls to external systems from processors: [`RetryPolicy`] (exponential backoff, in
//! line, for short waits) and [`CircuitBreaker`] (closed → open → half-open), whose
//! "try later" answer, [`ProcessError::Retry`], makes the runtime pause the record's
//! input partition instead of blocking the stream thread: the instance keeps polling and
//! stays in its group, and the record is processed again, in order, once the pause is
//! over.
//!
//! For waits of seconds to hours, where holding the partition is too costly and the
//! order of a key's records may change, see the retry topics of [`crate::retry_topics`].
//!
//! Both take time as an argument (`now_ms`: [`crate::processor::ProcessorContext::wall_clock_ms`])
//! or an injected sleep, so the test driver runs them deterministically.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::ProcessError;

/// Exponential backoff for in-line retries. Keep the total delay far below the commit
/// interval's budget (`transaction_timeout`): the stream thread waits meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Factor applied to the delay after each attempt.
    pub multiplier: f64,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(10),
            multiplier: 2.0,
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// The delays between consecutive attempts (`max_attempts - 1` of them).
    pub fn delays(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut d = self.initial_delay.as_secs_f64();
        for _ in 1..self.max_attempts {
            out.push(Duration::from_secs_f64(d).min(self.max_delay));
            d *= self.multiplier;
        }
        out
    }

    /// Calls `call(attempt)` (attempt 1, 2, …) until it succeeds, fails with an error
    /// `retryable` rejects, or attempts run out; sleeps the thread between attempts.
    pub fn run<T, E>(
        &self,
        retryable: impl Fn(&E) -> bool,
        call: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run_with(retryable, std::thread::sleep, call)
    }

    /// [`RetryPolicy::run`] with an injected sleep (tests, simulated time).
    pub fn run_with<T, E>(
        &self,
        retryable: impl Fn(&E) -> bool,
        mut sleep: impl FnMut(Duration),
        mut call: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, E> {
        let delays = self.delays();
        let mut attempt = 1;
        loop {
            match call(attempt) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let Some(delay) = delays.get(attempt as usize - 1) else {
                        return Err(e);
                    };
                    if !retryable(&e) {
                        return Err(e);
                    }
                    sleep(*delay);
                    attempt += 1;
                }
            }
        }
    }
}

/// Settings of a [`CircuitBreaker`].
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Open when at least this share of the last `window` calls failed (0.0–1.0).
    pub failure_rate_threshold: f64,
    /// Calls remembered while closed.
    pub window: usize,
    /// Calls needed in the window before the rate is judged.
    pub min_calls: usize,
    /// How long the breaker stays open before a half-open probe.
    pub cool_down_ms: i64,
    /// While closed, how long to pause a partition after a failed call.
    pub retry_backoff_ms: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_rate_threshold: 0.5,
            window: 20,
            min_calls: 5,
            cool_down_ms: 10_000,
            retry_backoff_ms: 100,
        }
    }
}

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are refused until `until_ms`.
    Open {
        /// End of the cool-down.
        until_ms: i64,
    },
    /// One probe call is let through; its outcome closes or reopens the breaker.
    HalfOpen,
}

/// A circuit breaker around an external system.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    outcomes: VecDeque<bool>,
    transitions: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: BreakerState::Closed,
            outcomes: VecDeque::new(),
            transitions: 0,
        }
    }

    /// The state at `now_ms` (an open breaker whose cool-down is over is half-open).
    pub fn state(&mut self, now_ms: i64) -> BreakerState {
        if let BreakerState::Open { until_ms } = self.state {
            if now_ms >= until_ms {
                self.set(BreakerState::HalfOpen);
            }
        }
        self.state
    }

    /// State changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    fn set(&mut self, s: BreakerState) {
        if s != self.state {
            self.transitions += 1;
            tracing::info!(from = ?self.state, to = ?s, "circuit breaker");
        }
        self.state = s;
    }

    /// Records a call's outcome at `now_ms`.
    pub fn record(&mut self, success: bool, now_ms: i64) {
        match self.state(now_ms) {
            BreakerState::HalfOpen => {
                if success {
                    self.outcomes.clear();
                    self.set(BreakerState::Closed);
                } else {
                    self.set(BreakerState::Open {
                        until_ms: now_ms + self.config.cool_down_ms,
                    });
                }
            }
            BreakerState::Open { .. } => {}
            BreakerState::Closed => {
                self.outcomes.push_back(success);
                while self.outcomes.len() > self.config.window.max(1) {
                    self.outcomes.pop_front();
                }
                let failures = self.outcomes.iter().filter(|ok| !**ok).count();
                if self.outcomes.len() >= self.config.min_calls.max(1)
                    && failures as f64
                        >= self.config.failure_rate_threshold * self.outcomes.len() as f64
                {
                    self.set(BreakerState::Open {
                        until_ms: now_ms + self.config.cool_down_ms,
                    });
                }
            }
        }
    }

    /// Runs `call` unless the breaker is open. A refused or failed call becomes
    /// [`ProcessError::Retry`]: the runtime pauses the record's partition for the rest
    /// of the cool-down (open) or `retry_backoff_ms` (failed while closed), then
    /// processes the record again.
    pub fn call<T, E: std::fmt::Display>(
        &mut self,
        now_ms: i64,
        call: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, ProcessError> {
        if let BreakerState::Open { until_ms } = self.state(now_ms) {
            return Err(ProcessError::Retry {
                after_ms: (until_ms - now_ms).max(1),
                reason: "circuit breaker open".into(),
            });
        }
        match call() {
            Ok(v) => {
                self.record(true, now_ms);
                Ok(v)
            }
            Err(e) => {
                self.record(false, now_ms);
                let after_ms = match self.state {
                    BreakerState::Open { until_ms } => (until_ms - now_ms).max(1),
                    _ => self.config.retry_backoff_ms.max(1),
                };
                Err(ProcessError::Retry {
                    after_ms,
                    reason: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(10),
            multiplier: 3.0,
            max_delay: Duration::from_millis(100),
        };
        let ms: Vec<u128> = p.delays().iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![10, 30, 90, 100]);
    }

    #[test]
    fn retry_stops_on_success_on_a_permanent_error_or_after_max_attempts() {
        let p = RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let mut slept = Vec::new();
        let r: Result<u32, &str> = p.run_with(
            |_| true,
            |d| slept.push(d),
            |a| if a < 3 { Err("busy") } else { Ok(a) },
        );
        assert_eq!(r, Ok(3));
        assert_eq!(slept, p.delays()[..2].to_vec());
        let mut calls = 0;
        let r: Result<(), &str> = p.run_with(
            |e| *e == "busy",
            |_| {},
            |_| {
                calls += 1;
                Err("bad request")
            },
        );
        assert_eq!((r, calls), (Err("bad request"), 1));
        let mut calls = 0;
        let r: Result<(), &str> = p.run_with(
            |_| true,
            |_| {},
            |_| {
                calls += 1;
                Err("busy")
            },
        );
        assert_eq!((r, calls), (Err("busy"), 4));
    }

    #[test]
    fn breaker_opens_on_failure_rate_probes_half_open_and_closes() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_rate_threshold: 0.5,
            window: 4,
            min_calls: 4,
            cool_down_ms: 1000,
            retry_backoff_ms: 10,
        });
        for (ok, t) in [(true, 0), (false, 1), (true, 2)] {
            b.record(ok, t);
        }
        assert_eq!(b.state(3), BreakerState::Closed);
        b.record(false, 3); // 2 of 4 failed
        assert_eq!(b.state(3), BreakerState::Open { until_ms: 1003 });
        assert!(matches!(
            b.call(500, || Ok::<_, String>(())),
            Err(ProcessError::Retry { after_ms: 503, .. })
        ));
        assert_eq!(b.state(1003), BreakerState::HalfOpen);
        assert!(b.call(1003, || Err::<(), _>("still down")).is_err());
        assert_eq!(b.state(1004), BreakerState::Open { until_ms: 2003 });
        assert_eq!(b.call(2003, || Ok::<_, String>(7)).unwrap(), 7);
        assert_eq!(b.state(2003), BreakerState::Closed);
        assert_eq!(b.transitions(), 5);
    }
}
