//! Event-time windows: the four kinds, their grace periods, emission modes, the
//! windowed key type, and the window store they share.
//!
//! Every window is a half-open interval `[start, end)` of event time (milliseconds).
//! A window **closes** when the task's stream time (its largest record timestamp)
//! reaches `end + grace` (sessions: `end + gap + grace`, since a later record may still
//! extend them until then). A record whose every window is closed is **late**: it goes to
//! the dead-letter topic (reason `late`) when the application has one, and is counted.
//!
//! - [`TimeWindows`] — tumbling (`of_size`) and hopping (`advance_by`) windows aligned to
//!   the epoch: `[n·advance, n·advance + size)`.
//! - [`SlidingWindows`] — Kafka Streams' record-defined windows (KIP-450): for every
//!   record at `t` the window `[t - d, t]` and, when records follow within `d`, the window
//!   starting just after it; no empty and no duplicate windows. As an interval:
//!   `[t - d, t + 1)`.
//! - [`SessionWindows`] — per-key periods of activity separated by an inactivity gap;
//!   overlapping sessions merge with the aggregation's merge function and the sessions
//!   they replace are retracted (a tombstone for their window) under `on_update`.
//!
//! Emission ([`Emit`]): `OnWindowClose` (the default) gives one final result per key and
//! window after it closes; `OnUpdate` gives every new aggregate at once (an upsert stream
//! keyed by key and window); `OnUpdateEvery` rate-limits those updates per window. Kafka Streams emits on update by default (with its record
//! cache deciding how often); strom emits final results unless asked otherwise.

pub(crate) mod aggregate;
pub mod aggregations;
mod dsl;
mod rate;
pub(crate) mod state;

pub use dsl::{SessionWindowedKStream, TimeWindowedKStream};

use crate::error::SerdeError;
use crate::serdes::Serde;

/// A half-open interval of event time, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond in the window.
    pub start_ms: i64,
    /// First millisecond after the window.
    pub end_ms: i64,
}

/// A key together with the window its aggregate belongs to (the key of windowed results).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// When a windowed aggregation emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// One final result per key and window once it closes (stream time ≥ end + grace).
    #[default]
    OnWindowClose,
    /// Every update at once: an upsert stream keyed by key and window.
    OnUpdate,
    /// Updates of a window at most once per `interval_ms` of stream time: one that comes
    /// sooner waits and goes out (with the aggregate as it is then) when the interval has
    /// passed or the window closes.
    OnUpdateEvery {
        /// Minimum stream time between two emissions of one window.
        interval_ms: i64,
    },
}

/// Tumbling or hopping windows of a fixed size, aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size_ms: i64,
    pub(crate) advance_ms: i64,
    pub(crate) grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size_ms` (advance = size), grace 0.
    pub fn of_size(size_ms: i64) -> Self {
        let size_ms = size_ms.max(1);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }

    /// Hopping windows: a new window every `advance_ms` (clamped to `1..=size`).
    pub fn advance_by(mut self, advance_ms: i64) -> Self {
        self.advance_ms = advance_ms.clamp(1, self.size_ms);
        self
    }

    /// How long after its end a window still accepts out-of-order records.
    pub fn grace(mut self, grace_ms: i64) -> Self {
        self.grace_ms = grace_ms.max(0);
        self
    }

    /// The windows `[start, start + size)` that contain `t`, earliest first.
    /// The windows holding `t`, earliest first, without allocating.
    pub(crate) fn windows_of(&self, t: i64) -> impl Iterator<Item = Window> {
        let (size, advance) = (self.size_ms, self.advance_ms.max(1));
        let last_start = t - t.rem_euclid(advance);
        // Starts on the advance grid in (t - size, last_start]: `count` of them.
        let span = last_start.saturating_sub(t).saturating_add(size);
        let count = span.saturating_add(advance - 1) / advance;
        (0..count.max(0)).map(move |i| {
            let start = last_start.saturating_sub((count - 1 - i).saturating_mul(advance));
            Window {
                start_ms: start,
                end_ms: start.saturating_add(size),
            }
        })
    }

    /// The windows holding `t`, earliest first (the reference of [`Self::windows_of`]).
    #[cfg(test)]
    pub(crate) fn windows_for(&self, t: i64) -> Vec<Window> {
        let last_start = t - t.rem_euclid(self.advance_ms);
        let mut out = Vec::new();
        let mut start = last_start;
        // Saturating: a timestamp at the end of time must not overflow.
        while start > t.saturating_sub(self.size_ms) {
            out.push(Window {
                start_ms: start,
                end_ms: start.saturating_add(self.size_ms),
            });
            start = start.saturating_sub(self.advance_ms);
        }
        out.reverse();
        out
    }
}

/// Kafka Streams' sliding windows: record-defined windows of a maximum time difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) difference_ms: i64,
    pub(crate) grace_ms: i64,
}

impl SlidingWindows {
    /// Windows holding records at most `difference_ms` apart, grace 0.
    pub fn with_time_difference(difference_ms: i64) -> Self {
        SlidingWindows {
            difference_ms: difference_ms.max(0),
            grace_ms: 0,
        }
    }

    /// How long after its end a window still accepts out-of-order records.
    pub fn grace(mut self, grace_ms: i64) -> Self {
        self.grace_ms = grace_ms.max(0);
        self
    }
}

/// Session windows: activity separated by more than `gap` starts a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap_ms: i64,
    pub(crate) grace_ms: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap_ms` of inactivity, grace 0.
    pub fn with_inactivity_gap(gap_ms: i64) -> Self {
        SessionWindows {
            gap_ms: gap_ms.max(0),
            grace_ms: 0,
        }
    }

    /// How long after a session could last be extended it still accepts late records.
    pub fn grace(mut self, grace_ms: i64) -> Self {
        self.grace_ms = grace_ms.max(0);
        self
    }
}

/// Serializes a [`Windowed`] key as the key's bytes, then start and end (8 bytes each,
/// big-endian) — so windowed results keep the key's partitioning prefix.
pub struct WindowedSerde<S>(pub S);

impl<K, S: Serde<K>> Serde<Windowed<K>> for WindowedSerde<S> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Vec<u8>, SerdeError> {
        let mut out = self.0.serialize(&value.key)?;
        out.extend_from_slice(&value.window.start_ms.to_be_bytes());
        out.extend_from_slice(&value.window.end_ms.to_be_bytes());
        Ok(out)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 16 {
            return Err(SerdeError::Length {
                expected: 16,
                got: bytes.len(),
            });
        }
        let (key, times) = bytes.split_at(bytes.len() - 16);
        let int = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        Ok(Windowed {
            key: self.0.deserialize(key)?,
            window: Window {
                start_ms: int(&times[..8]),
                end_ms: int(&times[8..]),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_cover_each_timestamp() {
        let w = TimeWindows::of_size(10).advance_by(5);
        assert_eq!(
            w.windows_for(12),
            vec![
                Window {
                    start_ms: 5,
                    end_ms: 15
                },
                Window {
                    start_ms: 10,
                    end_ms: 20
                }
            ]
        );
        assert_eq!(
            TimeWindows::of_size(10).windows_for(-1),
            vec![Window {
                start_ms: -10,
                end_ms: 0
            }]
        );
    }

    #[test]
    fn windows_of_agrees_with_the_plain_loop() {
        for (size, advance) in [(10, 10), (10, 5), (10, 3), (7, 1), (1, 1), (100, 30)] {
            let w = TimeWindows::of_size(size).advance_by(advance);
            for t in (-60..60).chain([i64::MAX - 3, i64::MAX, i64::MIN + 200]) {
                assert_eq!(
                    w.windows_of(t).collect::<Vec<_>>(),
                    w.windows_for(t),
                    "size {size} advance {advance} t {t}"
                );
            }
        }
    }

    #[test]
    fn windowed_serde_round_trips() {
        let serde = WindowedSerde(crate::serdes::StringSerde);
        let w = Windowed {
            key: "k".to_string(),
            window: Window {
                start_ms: -5,
                end_ms: 7,
            },
        };
        let bytes = serde.serialize(&w).unwrap();
        assert_eq!(serde.deserialize(&bytes).unwrap(), w);
        assert!(serde.deserialize(&[1, 2]).is_err());
    }
}
