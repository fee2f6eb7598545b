//! Opening a partition directory: find the segments, trust what the checkpoint says
//! is on disk, re-validate the rest.
//!
//! - Segments before the checkpoint's segment are trusted: only their index files get
//!   O(1) sanity checks (skipped after a clean shutdown), and a failing index is rebuilt.
//! - The checkpoint's segment is validated from the checkpoint position on.
//! - Later segments are validated whole.
//! - At the first torn or corrupt batch the segment is cut and every later segment
//!   deleted: the log is a prefix of what was written, and everything flushed before
//!   the damage survives.
//!
//! Restart time therefore depends on the data written since the last checkpoint,
//! not on the size of the log.
//!
//! Segments below the cleaner's cleaned end may have been compacted, so their batches
//! need only increasing offsets; every other segment (the active one included) was
//! written by appends and must be contiguous, which is how a damaged (CRC-less) base
//! offset is caught.
//! A log cleaner swap interrupted by a crash is finished or discarded before the
//! segments are listed (`cleaner::swap::recover`).

use std::path::Path;

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::segment::file_budget::LogFiles;
use crate::segment::{self, Segment};
use std::sync::Arc;

/// Opens the segments of `dir`: `(segments, the checkpoint recovery started from)`.
pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    clean: bool,
    files: &Arc<LogFiles>,
) -> Result<(Vec<Segment>, Checkpoint)> {
    crate::cleaner::swap::recover(dir)?;
    let bases = list_segments(dir)?;
    let checkpoint = Checkpoint::read(dir);
    let cleaned_end = crate::cleaner::state::CleanerState::load(dir).cleaned_end_offset;
    let Some(&last_base) = bases.last() else {
        let start = checkpoint.map_or(0, |c| c.log_start_offset);
        let segment = Segment::create(dir, start, files)?;
        crate::checkpoint::sync_dir(dir)?;
        return Ok((vec![segment], Checkpoint::empty(start, start)));
    };
    // Where validation starts: the checkpoint if it names a segment we have, else the
    // first segment (a missing checkpoint means nothing is known to be synced).
    let start = checkpoint
        .filter(|c| bases.binary_search(&c.segment_base_offset).is_ok())
        .unwrap_or_else(|| {
            if checkpoint.is_some() {
                tracing::warn!(dir = %dir.display(), "checkpoint names a missing segment; recovering every segment");
            }
            Checkpoint::empty(checkpoint.map_or(0, |c| c.log_start_offset), bases[0])
        });
    let interval = config.index_interval_bytes;
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let is_last = base == last_base;
        if base < start.segment_base_offset {
            let next = bases[i + 1];
            let mut segment = Segment::open(dir, base, next, false, files)?;
            if !clean && !segment.indexes_look_consistent() {
                tracing::warn!(segment = %segment.path().display(), "rebuilding inconsistent indexes");
                segment = rebuild(dir, base, interval, files)?;
                if segment.next_offset != next {
                    return Err(LogError::CorruptData {
                        path: segment.path().to_path_buf(),
                        reason: format!(
                            "segment ends at offset {} but the next segment starts at {next}",
                            segment.next_offset
                        ),
                    });
                }
                segment.seal()?;
            }
            segments.push(segment);
            continue;
        }
        let mut segment = Segment::open(dir, base, base, true, files)?;
        let expected_start = segments.last().map_or(base, |s: &Segment| s.next_offset);
        let cut = if base == start.segment_base_offset {
            segment.recover_from(
                start.position,
                start.next_offset,
                (start.max_timestamp, start.offset_of_max_timestamp),
                interval,
                base < cleaned_end,
            )?
        } else if base < expected_start {
            // Overlaps the previous segment: the previous one was cut short or this
            // one is stray. Either way it is not part of the log.
            segment.delete()?;
            delete_from(dir, &bases[i + 1..])?;
            break;
        } else {
            segment.recover_from(0, base, (-1, base), interval, base < cleaned_end)?
        };
        if cut > 0 && !is_last {
            // Everything after a torn batch is unreachable: drop later segments. This
            // segment stays open for appending.
            delete_from(dir, &bases[i + 1..])?;
            segments.push(segment);
            return Ok((segments, start));
        }
        if !is_last {
            segment.seal()?;
        }
        segments.push(segment);
    }
    // If later segments were dropped as stray, the new last one was sealed: reopen
    // it for appending (its size, offsets and max timestamp are known to be valid).
    let last = segments.len() - 1;
    if segments[last].base_offset < last_base {
        let (base, next) = (segments[last].base_offset, segments[last].next_offset);
        segments[last] = Segment::open(dir, base, next, true, files)?;
    }
    Ok((segments, start))
}

/// Rebuilds a segment's indexes from its data (validating it as recovery does).
fn rebuild(dir: &Path, base: u64, interval: u64, files: &Arc<LogFiles>) -> Result<Segment> {
    for extension in ["index", "timeindex"] {
        segment::remove_if_exists(&dir.join(segment::file_name(base, extension)))?;
    }
    let mut segment = Segment::open(dir, base, base, true, files)?;
    segment.recover_from(0, base, (-1, base), interval, true)?;
    Ok(segment)
}

fn delete_from(dir: &Path, bases: &[u64]) -> Result<()> {
    for &base in bases {
        tracing::warn!(dir = %dir.display(), base, "deleting segment after a corrupt one");
        for extension in ["log", "index", "timeindex"] {
            segment::remove_if_exists(&dir.join(segment::file_name(base, extension)))?;
        }
    }
    Ok(())
}

/// Base offsets of the segments in `dir`, sorted. Removes leftovers of interrupted
/// operations (temp files, indexes without a log).
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(LogError::io("list partition directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("list partition directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_file_name(name, "log") {
            logs.push(base);
        } else if name.ends_with(".tmp") || name.ends_with(".deleted") {
            segment::remove_if_exists(&entry.path())?;
        } else if let Some(base) = segment::parse_file_name(name, "index")
            .or_else(|| segment::parse_file_name(name, "timeindex"))
        {
            indexes.push((base, entry.path()));
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            segment::remove_if_exists(&path)?;
        }
    }
    Ok(logs)
}
