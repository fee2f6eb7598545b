//! Swapping cleaned segments in, crash-safely.
//!
//! The cleaner writes each replacement segment under temporary names
//! (`<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`) and syncs them.
//! Then, in this order:
//!
//! 1. the manifest `cleaner-swap` is written atomically (temp file, fsync, rename,
//!    fsync of the directory): `v1 <old bases> ; <new bases> <crc32c>`. This is the
//!    commit point: before it the old segments are the log, after it the new ones;
//! 2. every `.cleaned` file is renamed over its final name (indexes first, the log
//!    file last), replacing the old segment of the same base;
//! 3. the old segments whose base is not a new base are deleted;
//! 4. the directory is synced and the manifest removed (and the directory synced).
//!
//! [`recover`], run before a log's segments are listed, finishes steps 2–4 when the
//! manifest exists (renaming only the `.cleaned` files still present, so it can run
//! any number of times), and otherwise deletes leftover `.cleaned` files: a crash
//! at any point leaves either the old segments or the new ones, never a mix.

use std::path::Path;

use crate::checkpoint::{sync_dir, write_atomically};
use crate::error::{LogError, Result};
use crate::segment::{file_name, remove_if_exists, CLEANED_SUFFIX, EXTENSIONS};

/// File name of the swap manifest in a partition directory.
const MANIFEST_FILE: &str = "cleaner-swap";

/// The old segments a cleaning replaces and the new ones that replace them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Swap {
    /// Base offsets of the segments being replaced.
    pub old_bases: Vec<u64>,
    /// Base offsets of the cleaned segments (each also an old base).
    pub new_bases: Vec<u64>,
}

impl Swap {
    fn body(&self) -> String {
        let join = |bases: &[u64]| {
            bases
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!("v1 {} ; {}", join(&self.old_bases), join(&self.new_bases))
    }

    fn parse(text: &str) -> Option<Swap> {
        let (body, crc) = text.trim_end().rsplit_once(' ')?;
        if crc.parse::<u32>().ok()? != crc32c::crc32c(body.as_bytes()) {
            return None;
        }
        let (old, new) = body.strip_prefix("v1 ")?.split_once(';')?;
        let bases = |text: &str| {
            text.split_whitespace()
                .map(|b| b.parse().ok())
                .collect::<Option<Vec<u64>>>()
        };
        Some(Swap {
            old_bases: bases(old)?,
            new_bases: bases(new)?,
        })
    }
}

/// Where a swap stops, for crash tests: the files are left as a crash at that point
/// would leave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    /// After the cleaned files are written and synced, before the manifest.
    BeforeManifest,
    /// After the manifest, before any rename.
    AfterManifest,
    /// After the first cleaned file was renamed into place.
    AfterFirstRename,
    /// After every rename, before the old segments are deleted.
    AfterRenames,
    /// After the old segments are deleted, before the manifest is removed.
    AfterDeletes,
}

/// Commits `swap` in `dir`. With `stop_at`, stops at that step as a crash would.
pub(crate) fn commit(dir: &Path, swap: &Swap, stop_at: Option<SwapStep>) -> Result<bool> {
    if stop_at == Some(SwapStep::BeforeManifest) {
        return Ok(false);
    }
    let line = format!(
        "{} {}\n",
        swap.body(),
        crc32c::crc32c(swap.body().as_bytes())
    );
    write_atomically(dir, MANIFEST_FILE, line.as_bytes())?;
    if stop_at == Some(SwapStep::AfterManifest) {
        return Ok(false);
    }
    finish(dir, swap, stop_at)
}

/// Steps 2–4 of the swap. Returns false if stopped early by `stop_at`.
fn finish(dir: &Path, swap: &Swap, stop_at: Option<SwapStep>) -> Result<bool> {
    for &base in &swap.new_bases {
        for extension in EXTENSIONS {
            let cleaned = dir.join(format!("{}{CLEANED_SUFFIX}", file_name(base, extension)));
            let target = dir.join(file_name(base, extension));
            match std::fs::rename(&cleaned, &target) {
                Ok(()) => {}
                // Renamed before a crash: recovery runs this again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("swap in cleaned segment", &cleaned)(e)),
            }
            if stop_at == Some(SwapStep::AfterFirstRename) {
                return Ok(false);
            }
        }
    }
    if stop_at == Some(SwapStep::AfterRenames) {
        return Ok(false);
    }
    for base in swap
        .old_bases
        .iter()
        .filter(|base| !swap.new_bases.contains(base))
    {
        for extension in EXTENSIONS {
            remove_if_exists(&dir.join(file_name(*base, extension)))?;
        }
    }
    sync_dir(dir)?;
    if stop_at == Some(SwapStep::AfterDeletes) {
        return Ok(false);
    }
    remove_if_exists(&dir.join(MANIFEST_FILE))?;
    sync_dir(dir)?;
    Ok(true)
}

/// Finishes a committed swap, or discards an uncommitted one, in `dir`.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let manifest = dir.join(MANIFEST_FILE);
    match std::fs::read_to_string(&manifest) {
        Ok(text) => match Swap::parse(&text) {
            Some(swap) => {
                tracing::warn!(dir = %dir.display(), ?swap, "finishing an interrupted log cleaner swap");
                finish(dir, &swap, None)?;
            }
            None => {
                // Written atomically, so this is damage, not a torn write: the old
                // segments may be partly gone. Keep whatever is there.
                tracing::error!(dir = %dir.display(), "unreadable cleaner swap manifest; keeping the segments as they are");
                remove_if_exists(&manifest)?;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::io("read cleaner swap manifest", &manifest)(e)),
    }
    discard_cleaned(dir)
}

/// Deletes `.cleaned` files: the output of a cleaning that did not commit.
pub(crate) fn discard_cleaned(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(LogError::io("list partition directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("list partition directory", dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(CLEANED_SUFFIX)
        {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_reject_damage() {
        let swap = Swap {
            old_bases: vec![0, 100, 250],
            new_bases: vec![0, 250],
        };
        let line = format!(
            "{} {}\n",
            swap.body(),
            crc32c::crc32c(swap.body().as_bytes())
        );
        assert_eq!(Swap::parse(&line), Some(swap));
        assert_eq!(Swap::parse(&line.replace("250", "251")), None);
        assert_eq!(Swap::parse("garbage"), None);
    }
}
