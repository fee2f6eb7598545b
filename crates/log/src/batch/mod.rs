//! Kafka record batch v2: the unit strom stores, fetches and replicates.
//!
//! A batch is stored exactly as the producer sent it, except for the base offset
//! (assigned by the log, outside the CRC) and, for `LogAppendTime` topics, the
//! timestamps (inside the CRC, so the CRC is recomputed).
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  batchLength            (bytes after this field)
//!     12     4  partitionLeaderEpoch
//!     16     1  magic                  (= 2)
//!     17     4  crc                    (CRC32C of bytes 21..end)
//!     21     2  attributes             (bits 0-2 codec, 3 timestamp type,
//!                                       4 transactional, 5 control,
//!                                       6 delete horizon in baseTimestamp)
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordCount
//!     61     …  records (compressed as a whole when codec != 0)
//! ```
//!
//! [`BatchHeader::parse`] validates a batch without copying or decompressing it;
//! [`records`] iterates its records for the few places that need them.

pub mod builder;
pub mod control;
pub(crate) mod rebuild;
pub mod records;

pub use rebuild::{default_level, recompress};

use crate::error::BatchError;

/// Size of the fixed v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before the CRC-covered region, also the prefix needed to know a batch's
/// extent and offsets (`baseOffset`, `batchLength`, …, `lastOffsetDelta`).
pub const PREFIX_BYTES: usize = 27;
/// Bytes of `baseOffset` + `batchLength`: the batch occupies `LOG_OVERHEAD + batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only supported batch format.
pub const MAGIC_V2: i8 = 2;
/// Largest `batchLength` accepted by the parser, a sanity bound far above any real
/// `max.message.bytes`; the log enforces its own, smaller limit.
pub const BATCH_LENGTH_MAX: usize = i32::MAX as usize - LOG_OVERHEAD;

const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub(crate) const ATTR_TRANSACTIONAL: i16 = 0x10;
pub(crate) const ATTR_CONTROL: i16 = 0x20;
/// Set by the log cleaner (KIP-534): `baseTimestamp` holds the time after which the
/// batch's tombstones and markers may be removed.
pub(crate) const ATTR_DELETE_HORIZON: i16 = 0x40;

/// The compression codec of a batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Records are stored uncompressed.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, raw or in the xerial framing the Java client writes.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard frame format.
    Zstd,
}

impl Compression {
    fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match (attributes & ATTR_COMPRESSION_MASK) as u8 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    /// The codec's id in a batch's attributes.
    pub(crate) fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Which clock the batch's timestamps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when the batch was appended.
    LogAppendTime,
}

/// A validated view of one batch's header. Holds copies of the fields, not the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (as found in the buffer; the log overwrites it).
    pub base_offset: i64,
    /// `batchLength`: bytes after the length field.
    pub batch_length: u32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Raw attributes.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: u32,
}

impl BatchHeader {
    /// Validates the batch at the start of `buf` (magic, lengths, CRC32C, record count)
    /// and returns its header. Does not copy or decompress the records.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse_unchecked(buf)?;
        let size = header.size_bytes();
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let expected = read_u32(buf, OFFSET_CRC);
        let got = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..size]);
        if got != expected {
            return Err(BatchError::ChecksumMismatch { got, expected });
        }
        Ok(header)
    }

    /// Parses the header fields and checks their internal consistency, but not the
    /// CRC and not that the whole batch is present. For scanning already-validated data.
    pub fn parse_unchecked(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: HEADER_BYTES,
                available: buf.len(),
            });
        }
        let length = read_i32(buf, OFFSET_BATCH_LENGTH);
        if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 || length as usize > BATCH_LENGTH_MAX {
            return Err(BatchError::InvalidLength { length });
        }
        let magic = buf[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        let attributes = read_i16(buf, OFFSET_ATTRIBUTES);
        Compression::from_attributes(attributes)?;
        let last_offset_delta = read_i32(buf, OFFSET_LAST_OFFSET_DELTA);
        let record_count = read_i32(buf, OFFSET_RECORD_COUNT);
        // Kafka requires lastOffsetDelta = recordCount - 1 for batches producers create,
        // but compaction may leave gaps (and empty batches), so only require
        // 0 <= count - 1 <= delta here; the log rejects empty batches on append.
        if record_count < 0 || last_offset_delta < 0 || last_offset_delta < record_count - 1 {
            return Err(BatchError::InvalidRecordCount {
                record_count,
                last_offset_delta,
            });
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, 0),
            batch_length: length as u32,
            partition_leader_epoch: read_i32(buf, OFFSET_LEADER_EPOCH),
            attributes,
            last_offset_delta: last_offset_delta as u32,
            base_timestamp: read_i64(buf, OFFSET_BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, OFFSET_MAX_TIMESTAMP),
            producer_id: read_i64(buf, OFFSET_PRODUCER_ID),
            producer_epoch: read_i16(buf, OFFSET_PRODUCER_EPOCH),
            base_sequence: read_i32(buf, OFFSET_BASE_SEQUENCE),
            record_count: record_count as u32,
        })
    }

    /// Total bytes the batch occupies, including base offset and length fields.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record given the batch's base offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The records' compression codec (validated by `parse`).
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes).unwrap_or(Compression::None)
    }

    /// Which clock the timestamps come from.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// A control batch (transaction commit/abort marker).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// When the log cleaner may remove this batch's tombstones and markers, if a
    /// cleaning already set it (KIP-534: stored in `baseTimestamp`).
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Reads the extent of the batch at the start of `prefix` from its first
/// [`PREFIX_BYTES`] bytes: `(base offset, total size, last offset delta)`.
/// Used when scanning the log without reading whole batches.
pub fn read_prefix(prefix: &[u8]) -> Result<(i64, usize, u32), BatchError> {
    if prefix.len() < PREFIX_BYTES {
        return Err(BatchError::Truncated {
            needed: PREFIX_BYTES,
            available: prefix.len(),
        });
    }
    let length = read_i32(prefix, OFFSET_BATCH_LENGTH);
    if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 || length as usize > BATCH_LENGTH_MAX {
        return Err(BatchError::InvalidLength { length });
    }
    let magic = prefix[OFFSET_MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic });
    }
    let delta = read_i32(prefix, OFFSET_LAST_OFFSET_DELTA);
    if delta < 0 {
        return Err(BatchError::InvalidRecordCount {
            record_count: -1,
            last_offset_delta: delta,
        });
    }
    Ok((
        read_i64(prefix, 0),
        LOG_OVERHEAD + length as usize,
        delta as u32,
    ))
}

/// Overwrites the base offset of the batch at the start of `batch`. The CRC does not
/// cover this field, so the batch stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Turns the batch into a `LogAppendTime` batch stamped `timestamp_ms`: sets the
/// timestamp-type bit and the max timestamp, then recomputes the CRC. Record timestamp
/// deltas are left alone; readers of LogAppendTime batches use the max timestamp for
/// every record, as Kafka does.
pub fn set_log_append_time(batch: &mut [u8], size: usize, timestamp_ms: i64) {
    let attributes = read_i16(batch, OFFSET_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..size]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates the validated batches of a record set (a buffer holding one or more whole
/// batches back to back), yielding `(position, header)`; stops at the first error.
pub fn validate_all(
    buf: &[u8],
) -> impl Iterator<Item = Result<(usize, BatchHeader), (usize, BatchError)>> + '_ {
    let mut position = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || position >= buf.len() {
            return None;
        }
        match BatchHeader::parse(&buf[position..]) {
            Ok(header) => {
                let at = position;
                position += header.size_bytes();
                Some(Ok((at, header)))
            }
            Err(error) => {
                failed = true;
                Some(Err((position, error)))
            }
        }
    })
}

pub(crate) fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    read_i32(buf, at) as u32
}

pub(crate) fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}
