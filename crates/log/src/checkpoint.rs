//! The per-partition recovery checkpoint: how far the log is known to be on disk.
//!
//! One line of text, replaced atomically (write temp file, fsync, rename, fsync dir):
//!
//! ```text
//! v1 <log start> <segment base> <position> <next offset> <max timestamp> <its offset> <crc32c>
//! ```
//!
//! Everything before `position` in segment `segment base` (and every earlier segment,
//! with its indexes) was synced before the checkpoint was written. Recovery after an
//! unclean stop re-validates only what follows, so restart time depends on how much
//! was written since the last checkpoint, not on the size of the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

/// File name of the checkpoint inside a partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "recovery-point";

/// A recovery point plus the durable log start offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The log start offset (advanced by retention and DeleteRecords).
    pub log_start_offset: u64,
    /// Base offset of the segment holding the recovery point.
    pub segment_base_offset: u64,
    /// Byte position within that segment up to which data and indexes are synced.
    pub position: u64,
    /// The offset at `position` (the flushed log end at checkpoint time).
    pub next_offset: u64,
    /// Largest timestamp in that segment before `position` (-1 if none).
    pub max_timestamp: i64,
    /// Offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: u64,
}

impl Checkpoint {
    /// The checkpoint of an empty segment at `base`.
    pub(crate) fn empty(log_start_offset: u64, base: u64) -> Self {
        Checkpoint {
            log_start_offset,
            segment_base_offset: base,
            position: 0,
            next_offset: base,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
        }
    }

    fn body(&self) -> String {
        format!(
            "v1 {} {} {} {} {} {}",
            self.log_start_offset,
            self.segment_base_offset,
            self.position,
            self.next_offset,
            self.max_timestamp,
            self.offset_of_max_timestamp
        )
    }

    /// Reads the checkpoint; `None` when absent or unreadable (recovery then starts
    /// from the first segment).
    pub(crate) fn read(dir: &Path) -> Option<Checkpoint> {
        let text = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
        let parsed = Self::parse(text.trim_end());
        if parsed.is_none() {
            tracing::warn!(dir = %dir.display(), "ignoring unreadable recovery checkpoint");
        }
        parsed
    }

    fn parse(line: &str) -> Option<Checkpoint> {
        let (body, crc) = line.rsplit_once(' ')?;
        if crc.parse::<u32>().ok()? != crc32c::crc32c(body.as_bytes()) {
            return None;
        }
        let mut fields = body.split(' ');
        if fields.next()? != "v1" {
            return None;
        }
        let mut next_u64 = || fields.next()?.parse::<u64>().ok();
        let (log_start_offset, segment_base_offset, position, next_offset) =
            (next_u64()?, next_u64()?, next_u64()?, next_u64()?);
        let max_timestamp = fields.next()?.parse::<i64>().ok()?;
        let offset_of_max_timestamp = fields.next()?.parse::<u64>().ok()?;
        Some(Checkpoint {
            log_start_offset,
            segment_base_offset,
            position,
            next_offset,
            max_timestamp,
            offset_of_max_timestamp,
        })
    }

    /// Durably replaces the checkpoint file.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let body = self.body();
        let line = format!("{body} {}\n", crc32c::crc32c(body.as_bytes()));
        write_atomically(dir, CHECKPOINT_FILE, line.as_bytes())
    }
}

/// Replaces `dir/name` with `contents` so that a crash leaves either the old or the
/// new file, never a mix: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(LogError::io("create temp file", &tmp))?;
    file.write_all(contents)
        .map_err(LogError::io("write temp file", &tmp))?;
    file.sync_data()
        .map_err(LogError::io("sync temp file", &tmp))?;
    std::fs::rename(&tmp, &target).map_err(LogError::io("rename temp file", &target))?;
    sync_dir(dir)
}

/// Syncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = Checkpoint {
            log_start_offset: 5,
            segment_base_offset: 100,
            position: 4096,
            next_offset: 150,
            max_timestamp: 1_700_000_000_000,
            offset_of_max_timestamp: 149,
        };
        checkpoint.write(dir.path()).expect("write");
        assert_eq!(Checkpoint::read(dir.path()), Some(checkpoint));
        let path = dir.path().join(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("4096", "4097")).expect("write");
        assert_eq!(Checkpoint::read(dir.path()), None);
    }
}
