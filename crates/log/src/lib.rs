//! # strom-log — the storage engine
//!
//! Every partition is a segmented, append-only log of Kafka v2 record batches, kept
//! in Kafka's on-disk layout. Batches are stored exactly as producers sent them
//! (only the base offset is patched, outside the CRC) and served back as the same
//! bytes, so neither produce nor fetch re-encodes anything.
//!
//! The layers, bottom up:
//!
//! - [`batch`] — parse and validate a batch header without copying (magic, lengths,
//!   CRC32C, record count); iterate records with decompression when needed.
//! - `segment` — one `.log` file plus a sparse `.index` (offset → position) and
//!   `.timeindex` (timestamp → offset). Log files are opened on demand through a
//!   [`FileBudget`], an LRU of open descriptors shared by every log, so the number of
//!   partitions is bounded by disk and memory, not by `RLIMIT_NOFILE`.
//! - [`PartitionLog`] — the list of segments: append, read, find by timestamp,
//!   truncate, DeleteRecords, retention, group-commit flushes and checkpoints.
//! - [`LogManager`] — every log in a data directory: a lock file, parallel recovery,
//!   the clean-shutdown marker and background maintenance.
//!
//! Durability: under [`FlushPolicy::Always`] an appender that calls
//! [`PartitionLog::await_durability`] returns only after its batch is fdatasync'd;
//! concurrent appenders share syncs. After a crash, recovery re-validates only the
//! data written since the last checkpoint and cuts the log at the first torn or
//! corrupt batch; every flushed batch survives.
//!
//! ```
//! use strom_log::{LogConfig, PartitionLog};
//! # fn batch() -> Vec<u8> {
//! #     // A minimal valid batch: one record, no key or value.
//! #     let record = [0x0e, 0, 0, 0, 1, 2, 1, 0];
//! #     let mut b = vec![0u8; 61];
//! #     b[8..12].copy_from_slice(&((49 + record.len()) as i32).to_be_bytes());
//! #     b[16] = 2;
//! #     b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
//! #     b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
//! #     b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
//! #     b[57..61].copy_from_slice(&1i32.to_be_bytes());
//! #     b.extend_from_slice(&record);
//! #     let crc = crc32c::crc32c(&b[21..]);
//! #     b[17..21].copy_from_slice(&crc.to_be_bytes());
//! #     b
//! # }
//! let dir = tempfile::tempdir()?;
//! let log = PartitionLog::open(dir.path(), LogConfig::default())?;
//! let mut records = batch(); // bytes of a v2 record batch, e.g. from a Produce request
//! let info = log.append(&mut records)?;
//! log.await_durability(&info)?; // fdatasync'd (shared with concurrent appenders)
//! let read = log.read(info.base_offset, 1024 * 1024, None)?;
//! assert_eq!(&read.records[..], &records[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
mod checkpoint;
pub mod cleaner;
mod config;
mod error;
mod manager;
mod partition;
mod recovery;
mod segment;
mod sync_observer;

pub use batch::{BatchHeader, Compression, TimestampType};
pub use cleaner::{CleanerConfig, CleanerStats, CleanerStatus, CleaningStats, SwapStep};
pub use config::{
    CleanupPolicy, CompressionLevels, CompressionType, FlushPolicy, LogConfig, SEGMENT_BYTES_LIMIT,
};
pub use error::{BatchError, LogError, Result};
pub use manager::{
    is_valid_topic_name, CleanedCallback, LogManager, Maintenance, MaintenanceConfig,
    TopicPartition, ORPHANED_DIR, TOPIC_NAME_BYTES_MAX,
};
pub use partition::{
    now_ms, AppendInfo, CleanOptions, CleaningOutcome, PartitionLog, ReadResult, RetentionOutcome,
};
pub use segment::file_budget::{default_open_files_max, FileBudget, OPEN_FILES_MIN};
pub use sync_observer::set_sync_observer;
