//! A compacted log's cleaner state: what survives a restart in `cleaner-checkpoint`
//! (`v1 <first dirty offset> <next delete horizon ms or -1> <cleaned end> <crc32c>`,
//! replaced atomically) and what is only in memory.
//!
//! The first dirty offset only ever lags the log: a crash after a swap and before it
//! is written makes the next cleaning redo work, never skip any. The cleaned end —
//! below it segments may have been rewritten, so recovery accepts gaps there — is
//! written *before* a swap commits, so it never lags what is on disk.

use std::path::Path;

use crate::checkpoint::write_atomically;
use crate::error::Result;

const STATE_FILE: &str = "cleaner-checkpoint";

/// The cleaner's bookkeeping for one log.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CleanerState {
    /// Offsets before this were compacted by the last cleaning.
    pub first_dirty_offset: u64,
    /// The earliest delete horizon of a tombstone or marker still in the log: a
    /// cleaning after it removes something even without new dirty data.
    pub next_delete_horizon_ms: Option<i64>,
    /// Segments below this offset may have been rewritten by the cleaner (their
    /// offsets may have gaps); segments above it were written by appends only.
    pub cleaned_end_offset: u64,
    /// Wall-clock time of the last completed cleaning (this process only).
    pub last_cleaned_ms: Option<i64>,
    /// Why cleaning this log stopped, after a failure.
    pub failed: Option<String>,
}

impl CleanerState {
    /// Reads the persisted part from `dir` (defaults when absent or damaged).
    pub(crate) fn load(dir: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(dir.join(STATE_FILE)) else {
            return CleanerState::default();
        };
        Self::parse(text.trim_end()).unwrap_or_else(|| {
            tracing::warn!(dir = %dir.display(), "ignoring unreadable cleaner checkpoint; the whole log counts as dirty");
            CleanerState::default()
        })
    }

    fn body(&self) -> String {
        format!(
            "v1 {} {} {}",
            self.first_dirty_offset,
            self.next_delete_horizon_ms.unwrap_or(-1),
            self.cleaned_end_offset
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let (body, crc) = line.rsplit_once(' ')?;
        if crc.parse::<u32>().ok()? != crc32c::crc32c(body.as_bytes()) {
            return None;
        }
        let mut fields = body.strip_prefix("v1 ")?.split(' ');
        let first_dirty_offset = fields.next()?.parse().ok()?;
        let horizon: i64 = fields.next()?.parse().ok()?;
        let cleaned_end_offset = fields.next()?.parse().ok()?;
        Some(CleanerState {
            first_dirty_offset,
            next_delete_horizon_ms: (horizon >= 0).then_some(horizon),
            cleaned_end_offset,
            ..CleanerState::default()
        })
    }

    /// Persists the first dirty offset, the next horizon and the cleaned end in `dir`.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let body = self.body();
        let line = format!("{body} {}\n", crc32c::crc32c(body.as_bytes()));
        write_atomically(dir, STATE_FILE, line.as_bytes())
    }
}

/// How a compacted log stands with the cleaner, for metrics and `topic describe`.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerStatus {
    /// Offsets before this are compacted.
    pub first_dirty_offset: u64,
    /// Bytes of the cleanable segments.
    pub cleanable_bytes: u64,
    /// Bytes of those written since the last cleaning.
    pub dirty_bytes: u64,
    /// `dirty_bytes / cleanable_bytes` (0 when nothing is cleanable).
    pub dirty_ratio: f64,
    /// Whether the next pass of the cleaner would clean this log.
    pub needs_cleaning: bool,
    /// How far past `max.compaction.lag.ms` the oldest dirty data is (0 if not).
    pub max_compaction_delay_ms: u64,
    /// Wall-clock time of the last cleaning by this process.
    pub last_cleaned_ms: Option<i64>,
    /// Why cleaning stopped for this log, after a failure.
    pub failed: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_round_trips_and_damage_resets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(CleanerState::load(dir.path()), CleanerState::default());
        let state = CleanerState {
            first_dirty_offset: 1234,
            next_delete_horizon_ms: Some(99),
            cleaned_end_offset: 2000,
            ..CleanerState::default()
        };
        state.save(dir.path()).expect("save");
        assert_eq!(CleanerState::load(dir.path()), state);
        std::fs::write(dir.path().join(STATE_FILE), "v1 1235 99 2000 1\n").expect("write");
        assert_eq!(CleanerState::load(dir.path()), CleanerState::default());
    }
}
