//! Producer ids for idempotent producers: unique for the life of the data directory.
//! Ids are reserved in blocks, and the end of the reserved block is kept durably in
//! `producer-ids` in the data directory, so ids are never handed out twice, even
//! after a crash (a crash only skips the rest of a block).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Ids reserved per write of the file.
const BLOCK: i64 = 1000;
const FILE: &str = "producer-ids";

/// Hands out producer ids.
pub(crate) struct ProducerIdAllocator {
    path: PathBuf,
    /// (next id to hand out, end of the reserved block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    /// Continues after the last block reserved in `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let reserved = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new((reserved, reserved)),
        })
    }

    /// A new producer id (blocking: may sync the file).
    pub fn next(&self) -> std::io::Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 >= state.1 {
            let end = state.1 + BLOCK;
            let tmp = self.path.with_extension("tmp");
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(format!("{end}\n").as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ProducerIdAllocator::open(dir.path()).expect("open");
        let a = first.next().expect("id");
        let b = first.next().expect("id");
        assert_eq!((a, b), (0, 1));
        drop(first);
        let again = ProducerIdAllocator::open(dir.path()).expect("reopen");
        assert!(
            again.next().expect("id") >= BLOCK,
            "continues after the reserved block"
        );
    }
}
