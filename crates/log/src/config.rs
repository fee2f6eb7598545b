//! Per-log configuration, with Kafka's defaults.

use std::time::Duration;

use crate::batch::{Compression, TimestampType};
use crate::error::{LogError, Result};

/// When appended data is made durable with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append may wait for a sync; concurrent appenders share one (group commit).
    Always,
    /// Sync at most this often, in the background.
    Interval(Duration),
    /// Never sync explicitly; the OS writes back dirty pages when it likes.
    Os,
}

impl FlushPolicy {
    /// Parses `always`, `os`, or a whole number of milliseconds (`interval` form).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "always" => Ok(FlushPolicy::Always),
            "os" => Ok(FlushPolicy::Os),
            ms => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(|ms| FlushPolicy::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    LogError::Config(format!(
                        "flush policy must be `always`, `os` or a positive number of milliseconds, not `{text}`"
                    ))
                }),
        }
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::Os => f.write_str("os"),
            FlushPolicy::Interval(every) => write!(f, "{}", every.as_millis()),
        }
    }
}

/// What happens to old data (`cleanup.policy`): deleted by retention, compacted to
/// the latest record per key, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Old segments are deleted by `retention_ms` and `retention_bytes`.
    pub delete: bool,
    /// The log cleaner keeps only the latest record of every key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// Kafka's default: `delete`.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact` alone: no retention by time or size.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parses Kafka's list form: `delete`, `compact`, `compact,delete` (any order,
    /// spaces allowed). An empty list is refused.
    pub fn parse(text: &str) -> Result<Self> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in text.split(',').map(str::trim) {
            match item {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                other => {
                    return Err(LogError::Config(format!(
                        "cleanup.policy must be a list of delete and compact, not `{other}`"
                    )))
                }
            }
        }
        Ok(policy)
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => f.write_str("compact,delete"),
            (true, false) => f.write_str("compact"),
            _ => f.write_str("delete"),
        }
    }
}

/// A topic's `compression.type`: keep each batch in the producer's codec, or store
/// every batch in one codec (recompressing those that differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Store batches as the producer compressed them (Kafka's default, `producer`).
    Producer,
    /// Store every batch in this codec (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`).
    Codec(Compression),
}

impl CompressionType {
    /// Kafka's names: `producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub const NAMES: [&'static str; 6] =
        ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

    /// Parses one of [`Self::NAMES`].
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text.trim() {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Codec(Compression::None),
            "gzip" => CompressionType::Codec(Compression::Gzip),
            "snappy" => CompressionType::Codec(Compression::Snappy),
            "lz4" => CompressionType::Codec(Compression::Lz4),
            "zstd" => CompressionType::Codec(Compression::Zstd),
            other => {
                return Err(LogError::Config(format!(
                    "compression.type must be one of {}, not `{other}`",
                    Self::NAMES.join(", ")
                )))
            }
        })
    }
}

impl std::fmt::Display for CompressionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CompressionType::Producer => "producer",
            CompressionType::Codec(Compression::None) => "uncompressed",
            CompressionType::Codec(codec) => codec.name(),
        })
    }
}

/// Compression levels of the codecs that have them (Kafka's `compression.*.level`,
/// KIP-390). lz4 is accepted for compatibility; its encoder here has one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    /// `compression.gzip.level`: 1 to 9, or -1 for gzip's default (6).
    pub gzip: i32,
    /// `compression.lz4.level`: 1 to 17.
    pub lz4: i32,
    /// `compression.zstd.level`: -131072 to 22.
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels {
            gzip: crate::batch::default_level(Compression::Gzip),
            lz4: crate::batch::default_level(Compression::Lz4),
            zstd: crate::batch::default_level(Compression::Zstd),
        }
    }
}

impl CompressionLevels {
    /// The level batches recompressed with `codec` use.
    pub fn of(&self, codec: Compression) -> i32 {
        match codec {
            Compression::Gzip => self.gzip,
            Compression::Lz4 => self.lz4,
            Compression::Zstd => self.zstd,
            Compression::None | Compression::Snappy => -1,
        }
    }
}

/// Configuration of one partition log. Defaults follow Kafka's topic defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll a new segment before it would exceed this size (`segment.bytes`).
    pub segment_bytes_max: u64,
    /// Roll a segment this long after its first append (`segment.ms`).
    pub segment_ms: u64,
    /// Bytes of batches between offset-index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Largest index file; a full index rolls the segment (`segment.index.bytes`).
    pub index_bytes_max: usize,
    /// Delete segments whose newest record is older than this (`retention.ms`); `None` keeps them.
    pub retention_ms: Option<u64>,
    /// Delete the oldest segments while the log is larger than this (`retention.bytes`).
    pub retention_bytes: Option<u64>,
    /// When data is synced.
    pub flush_policy: FlushPolicy,
    /// Largest batch accepted (`max.message.bytes`).
    pub max_message_bytes: usize,
    /// Whether the log stamps batches with its own clock (`message.timestamp.type`).
    pub timestamp_type: TimestampType,
    /// How far before the broker's clock a CreateTime record's timestamp may be
    /// (`message.timestamp.before.max.ms`); `None`: any.
    pub timestamp_before_max_ms: Option<u64>,
    /// How far after the broker's clock a CreateTime record's timestamp may be
    /// (`message.timestamp.after.max.ms`); `None`: any.
    pub timestamp_after_max_ms: Option<u64>,
    /// Bound on decompressed batch size when records are iterated.
    pub decompressed_bytes_max: usize,
    /// Retention, compaction or both (`cleanup.policy`).
    pub cleanup_policy: CleanupPolicy,
    /// A compacted log is cleaned once this share of its cleanable bytes is dirty
    /// (written since the last cleaning) (`min.cleanable.dirty.ratio`, 0 to 1).
    pub min_cleanable_dirty_ratio: f64,
    /// A record stays uncompacted for at least this long after it was written, by
    /// its timestamp (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: u64,
    /// A dirty record is compacted at most this long after it was written, whatever
    /// the dirty ratio (`max.compaction.lag.ms`); it also bounds how long the active
    /// segment of a compacted log stays open.
    pub max_compaction_lag_ms: u64,
    /// Tombstones (null values) and transaction markers stay readable this long after
    /// the cleaning that first found them removable (`delete.retention.ms`), so that
    /// consumers reading from the start see the deletes.
    pub delete_retention_ms: u64,
    /// The codec batches are stored in (`compression.type`).
    pub compression_type: CompressionType,
    /// Levels of recompressed batches (`compression.{gzip,lz4,zstd}.level`).
    pub compression_levels: CompressionLevels,
}

/// Largest allowed segment: positions in the index are 32-bit, and Kafka's limit is
/// `Integer.MAX_VALUE`.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            index_bytes_max: 10 * 1024 * 1024,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            flush_policy: FlushPolicy::Always,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            decompressed_bytes_max: 64 * 1024 * 1024,
            cleanup_policy: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            compression_type: CompressionType::Producer,
            compression_levels: CompressionLevels::default(),
        }
    }
}

impl LogConfig {
    /// Checks the values against their limits.
    pub fn validate(&self) -> Result<()> {
        let fail = |what: String| Err(LogError::Config(what));
        if self.segment_bytes_max < 1024 || self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return fail(format!(
                "segment_bytes_max must be in [1024, {SEGMENT_BYTES_LIMIT}], not {}",
                self.segment_bytes_max
            ));
        }
        if self.segment_ms == 0 {
            return fail("segment_ms must be positive".into());
        }
        if self.index_bytes_max < 4 * 12 {
            return fail(format!(
                "index_bytes_max must be at least 48, not {}",
                self.index_bytes_max
            ));
        }
        if self.max_message_bytes < crate::batch::HEADER_BYTES {
            return fail(format!(
                "max_message_bytes must be at least {}, not {}",
                crate::batch::HEADER_BYTES,
                self.max_message_bytes
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return fail(format!(
                "min_cleanable_dirty_ratio must be in [0, 1], not {}",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.max_compaction_lag_ms == 0 {
            return fail("max_compaction_lag_ms must be positive".into());
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return fail(format!(
                "min_compaction_lag_ms ({}) must not exceed max_compaction_lag_ms ({})",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            ));
        }
        let levels = self.compression_levels;
        if levels.gzip != -1 && !(1..=9).contains(&levels.gzip) {
            return fail(format!(
                "compression.gzip.level must be -1 or in [1, 9], not {}",
                levels.gzip
            ));
        }
        if !(1..=17).contains(&levels.lz4) {
            return fail(format!(
                "compression.lz4.level must be in [1, 17], not {}",
                levels.lz4
            ));
        }
        if !(-131_072..=22).contains(&levels.zstd) {
            return fail(format!(
                "compression.zstd.level must be in [-131072, 22], not {}",
                levels.zstd
            ));
        }
        Ok(())
    }

    /// How long the active segment may stay open: `segment_ms`, or less for a
    /// compacted log whose `max_compaction_lag_ms` is shorter (only sealed segments
    /// are cleaned, so a record cannot be compacted before its segment rolls).
    pub fn segment_roll_ms(&self) -> u64 {
        if self.cleanup_policy.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_parses_and_prints() {
        assert_eq!(FlushPolicy::parse("always").ok(), Some(FlushPolicy::Always));
        assert_eq!(FlushPolicy::parse("os").ok(), Some(FlushPolicy::Os));
        let every = FlushPolicy::parse("250").ok();
        assert_eq!(
            every,
            Some(FlushPolicy::Interval(Duration::from_millis(250)))
        );
        assert_eq!(every.map(|p| p.to_string()).as_deref(), Some("250"));
        assert!(FlushPolicy::parse("0").is_err());
        assert!(FlushPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn default_config_is_valid_and_limits_are_enforced() {
        assert!(LogConfig::default().validate().is_ok());
        let too_big = LogConfig {
            segment_bytes_max: SEGMENT_BYTES_LIMIT + 1,
            ..LogConfig::default()
        };
        assert!(too_big.validate().is_err());
        let bad_ratio = LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        };
        assert!(bad_ratio.validate().is_err());
        let lags_crossed = LogConfig {
            min_compaction_lag_ms: 10,
            max_compaction_lag_ms: 5,
            ..LogConfig::default()
        };
        assert!(lags_crossed.validate().is_err());
    }

    #[test]
    fn compression_types_parse_and_print_under_kafkas_names() {
        for name in CompressionType::NAMES {
            let parsed = CompressionType::parse(name).expect(name);
            assert_eq!(parsed.to_string(), name);
        }
        assert_eq!(
            CompressionType::parse("uncompressed").ok(),
            Some(CompressionType::Codec(Compression::None))
        );
        assert!(CompressionType::parse("none").is_err());
        assert!(CompressionType::parse("brotli").is_err());
        for levels in [
            CompressionLevels {
                gzip: 0,
                ..CompressionLevels::default()
            },
            CompressionLevels {
                lz4: 18,
                ..CompressionLevels::default()
            },
            CompressionLevels {
                zstd: 23,
                ..CompressionLevels::default()
            },
        ] {
            let config = LogConfig {
                compression_levels: levels,
                ..LogConfig::default()
            };
            assert!(config.validate().is_err(), "{levels:?}");
        }
    }

    #[test]
    fn cleanup_policies_parse_in_any_order() {
        let both = CleanupPolicy::parse("delete, compact").ok();
        assert_eq!(
            both,
            Some(CleanupPolicy {
                delete: true,
                compact: true
            })
        );
        assert_eq!(
            both.map(|p| p.to_string()).as_deref(),
            Some("compact,delete")
        );
        assert_eq!(
            CleanupPolicy::parse("compact").ok(),
            Some(CleanupPolicy::COMPACT)
        );
        assert!(CleanupPolicy::parse("").is_err());
        assert!(CleanupPolicy::parse("compact,shred").is_err());
    }
}
