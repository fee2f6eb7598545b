//! Per-log configuration, with Kafka's defaults.

use std::time::Duration;

use crate::batch::TimestampType;
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

/// Configuration of one partition log. Defaults follow Kafka's topic defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Bound on decompressed batch size when records are iterated.
    pub decompressed_bytes_max: usize,
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
            decompressed_bytes_max: 64 * 1024 * 1024,
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
        Ok(())
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
    }
}
