//! The one error type of strom-log, with enough context to act on.

use std::path::PathBuf;

/// Why a record batch was rejected. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the header's declared length.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header says the batch occupies (or the header size).
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The magic byte is not 2 (only v2 batches are stored).
    #[error("unsupported magic {magic} (only record batch v2 is supported)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The declared batch length is smaller than a header or absurdly large.
    #[error("invalid batch length {length}")]
    InvalidLength {
        /// The declared `batchLength` field.
        length: i32,
    },
    /// CRC32C over attributes..end does not match the stored CRC.
    #[error("checksum mismatch: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// CRC computed over the bytes.
        got: u32,
        /// CRC stored in the header.
        expected: u32,
    },
    /// `recordCount` or `lastOffsetDelta` are negative or inconsistent.
    #[error("invalid record count {record_count} for last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        /// The declared record count.
        record_count: i32,
        /// The declared last offset delta.
        last_offset_delta: i32,
    },
    /// The compression codec id in the attributes is not one Kafka defines.
    #[error("unknown compression codec {codec}")]
    UnknownCompression {
        /// The 3-bit codec id.
        codec: u8,
    },
    /// The compressed payload could not be decompressed.
    #[error("cannot decompress {codec} records: {reason}")]
    Decompression {
        /// Codec name.
        codec: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A record inside the batch is malformed.
    #[error("malformed record {index}: {reason}")]
    MalformedRecord {
        /// Position of the record within the batch.
        index: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The buffer holds no batch at all.
    #[error("empty record set")]
    Empty,
}

/// Errors from the partition log and the log manager.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An appended batch failed validation; nothing was written.
    #[error("corrupt batch at byte {position} of the appended records: {reason}")]
    CorruptBatch {
        /// Byte position of the bad batch within the appended buffer.
        position: usize,
        /// The failed check.
        reason: BatchError,
    },
    /// A record without a key was appended to a compacted log.
    #[error("compacted topic cannot accept a record without a key (batch at byte {position})")]
    MissingKey {
        /// Byte position of the batch within the appended buffer.
        position: usize,
    },
    /// A CreateTime record's timestamp is further from the broker's clock than the
    /// log accepts (`message.timestamp.before.max.ms` / `after.max.ms`).
    #[error("record timestamp {timestamp_ms} (batch at byte {position}) is more than the topic allows before or after the broker's clock {now_ms} (message.timestamp.before.max.ms / message.timestamp.after.max.ms)")]
    TimestampOutOfRange {
        /// Byte position of the batch within the appended buffer.
        position: usize,
        /// The refused timestamp.
        timestamp_ms: i64,
        /// The broker's clock.
        now_ms: i64,
    },
    /// The batch (or record set) is larger than the log accepts.
    #[error("record set of {size} bytes exceeds the limit of {limit} bytes")]
    RecordSetTooLarge {
        /// Size of the rejected record set.
        size: usize,
        /// The configured limit (`max_message_bytes`).
        limit: usize,
    },
    /// A read or truncation named an offset outside `[log start, log end]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// The log start offset.
        log_start_offset: u64,
        /// The log end offset.
        log_end_offset: u64,
    },
    /// An I/O operation failed; `context` says which.
    #[error("{context} ({path}): {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An fdatasync failed earlier. After a failed sync the kernel may have dropped
    /// dirty pages, so nothing written since the last good sync can be trusted; the
    /// log refuses further writes until it is reopened (and recovered).
    #[error("log {path} is failed after an unsuccessful sync; reopen it to recover")]
    Failed {
        /// The partition directory.
        path: PathBuf,
    },
    /// On-disk data is inconsistent in a way recovery cannot repair.
    #[error("corrupt log data in {path}: {reason}")]
    CorruptData {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Another process holds the data directory's lock.
    #[error("data directory {path} is locked by another process")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A partition log already exists (on create) or does not exist (on lookup).
    #[error("partition log {name} {what}")]
    Partition {
        /// `<topic>-<partition>`.
        name: String,
        /// "already exists" or "does not exist".
        what: &'static str,
    },
    /// A configuration value is invalid.
    #[error("invalid log config: {0}")]
    Config(String),
}

impl LogError {
    /// Wraps an I/O error with what we were doing and the path involved.
    pub fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io {
            context,
            path,
            source,
        }
    }
}

/// Result alias for the log crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
