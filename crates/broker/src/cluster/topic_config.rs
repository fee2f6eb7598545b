//! Topic configs under their Kafka names: the catalogue DescribeConfigs lists, the
//! validation CreateTopics and AlterConfigs apply, and the translation of a topic's
//! overrides into the [`LogConfig`] its partition logs run with.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_log::{CleanupPolicy, CompressionType, FlushPolicy, LogConfig, TimestampType};

/// A topic's explicitly set configs (Kafka's "dynamic topic configs"), by name.
pub(crate) type Overrides = BTreeMap<String, String>;

/// Kafka's config value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic config strom understands.
pub(crate) struct TopicConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// The broker config that supplies its default (a DescribeConfigs synonym), if
    /// Kafka has one.
    pub broker_name: Option<&'static str>,
    /// Value type.
    pub config_type: ConfigType,
    /// User documentation.
    pub doc: &'static str,
    /// The value a topic without an override gets, given the broker's defaults.
    default: fn(&LogConfig) -> String,
    /// Applies a value to a log config, or says why the value is wrong.
    apply: fn(&mut Effective, &str) -> Result<(), String>,
}

impl TopicConfigDef {
    /// The default value under the broker's topic defaults.
    pub fn default_value(&self, defaults: &LogConfig) -> String {
        (self.default)(defaults)
    }
}

/// A log config being built, plus the two Kafka flush settings that together make
/// strom's flush policy.
struct Effective {
    log: LogConfig,
    flush_messages: i64,
    flush_ms: i64,
}

/// Every topic config, in Kafka's alphabetical order.
pub(crate) const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_name: Some("log.cleanup.policy"),
        config_type: ConfigType::List,
        doc: "What happens to old segments: `delete` removes them by retention.ms and retention.bytes; `compact` keeps the latest record of every key (the log cleaner); `compact,delete` does both.",
        default: |d| d.cleanup_policy.to_string(),
        apply: |e, v| {
            e.log.cleanup_policy = CleanupPolicy::parse(v).map_err(|_| {
                format!("cleanup.policy must be delete, compact or compact,delete, not {v}")
            })?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        broker_name: Some("compression.gzip.level"),
        config_type: ConfigType::Int,
        doc: "Level of batches the broker compresses with gzip (compression.type=gzip): 1 to 9, or -1 for gzip's default.",
        default: |d| d.compression_levels.gzip.to_string(),
        apply: |e, v| {
            e.log.compression_levels.gzip = parse_int(v, -1)?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        broker_name: Some("compression.lz4.level"),
        config_type: ConfigType::Int,
        doc: "Level of batches the broker compresses with lz4, 1 to 17. Accepted for compatibility: strom's lz4 encoder has one level.",
        default: |d| d.compression_levels.lz4.to_string(),
        apply: |e, v| {
            e.log.compression_levels.lz4 = parse_int(v, 1)?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "compression.type",
        broker_name: Some("compression.type"),
        config_type: ConfigType::String,
        doc: "The codec batches are stored in: `producer` keeps each batch as the producer compressed it; `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd` recompresses batches in another codec on produce (offsets, timestamps, headers and producer ids kept) and stores matching ones untouched.",
        default: |d| d.compression_type.to_string(),
        apply: |e, v| {
            e.log.compression_type = CompressionType::parse(v).map_err(|_| {
                format!("compression.type must be one of {}", CompressionType::NAMES.join(", "))
            })?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        broker_name: Some("compression.zstd.level"),
        config_type: ConfigType::Int,
        doc: "Level of batches the broker compresses with zstd (compression.type=zstd), -131072 to 22.",
        default: |d| d.compression_levels.zstd.to_string(),
        apply: |e, v| {
            e.log.compression_levels.zstd = parse_int(v, -131_072)?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_name: Some("log.cleaner.delete.retention.ms"),
        config_type: ConfigType::Long,
        doc: "On compacted topics, how long tombstones (null values) and transaction markers stay readable after the cleaning that first found them removable, so consumers reading from the start see the delete.",
        default: |d| d.delete_retention_ms.to_string(),
        apply: |e, v| {
            e.log.delete_retention_ms = parse_long(v, 0)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        broker_name: Some("log.segment.delete.delay.ms"),
        config_type: ConfigType::Long,
        doc: "Accepted for compatibility: strom deletes a segment's files as soon as retention or DeleteRecords removes it.",
        default: |_| "60000".into(),
        apply: |_, v| parse_long(v, 0).map(drop),
    },
    TopicConfigDef {
        name: "flush.messages",
        broker_name: Some("log.flush.interval.messages"),
        config_type: ConfigType::Long,
        doc: "1 syncs every write before acks=all is answered (group commit, strom's default). Any larger value leaves syncing to flush.ms, or to the OS if flush.ms is unset.",
        default: |d| match d.flush_policy {
            FlushPolicy::Always => "1".into(),
            _ => i64::MAX.to_string(),
        },
        apply: |e, v| {
            e.flush_messages = parse_long(v, 1)?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_name: Some("log.flush.interval.ms"),
        config_type: ConfigType::Long,
        doc: "When flush.messages is not 1: sync in the background at most this many milliseconds after a write.",
        default: |d| match d.flush_policy {
            FlushPolicy::Interval(every) => every.as_millis().to_string(),
            _ => i64::MAX.to_string(),
        },
        apply: |e, v| {
            e.flush_ms = parse_long(v, 0)?;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        broker_name: None,
        config_type: ConfigType::List,
        doc: "Replicas whose replication is throttled, as partition:broker pairs or `*`. Accepted for compatibility: a single node has no followers.",
        default: |_| String::new(),
        apply: |_, v| parse_replica_list(v),
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_name: Some("log.index.interval.bytes"),
        config_type: ConfigType::Int,
        doc: "Bytes of batches between entries of the sparse offset index.",
        default: |d| d.index_interval_bytes.to_string(),
        apply: |e, v| {
            e.log.index_interval_bytes = parse_int(v, 0)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_name: Some("message.max.bytes"),
        config_type: ConfigType::Int,
        doc: "Largest record batch accepted, in bytes; larger ones are refused with MESSAGE_TOO_LARGE.",
        default: |d| d.max_message_bytes.to_string(),
        apply: |e, v| {
            e.log.max_message_bytes = parse_int(v, 0)? as usize;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        broker_name: None,
        config_type: ConfigType::List,
        doc: "Replicas whose replication is throttled on the leader's side, as partition:broker pairs or `*`. Accepted for compatibility: a single node replicates nothing.",
        default: |_| String::new(),
        apply: |_, v| parse_replica_list(v),
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        broker_name: Some("log.local.retention.bytes"),
        config_type: ConfigType::Long,
        doc: "Tiered storage's local retention by size (-2: retention.bytes). Accepted for compatibility: strom keeps every segment locally.",
        default: |_| "-2".into(),
        apply: |_, v| parse_long(v, -2).map(drop),
    },
    TopicConfigDef {
        name: "local.retention.ms",
        broker_name: Some("log.local.retention.ms"),
        config_type: ConfigType::Long,
        doc: "Tiered storage's local retention by time (-2: retention.ms). Accepted for compatibility: strom keeps every segment locally.",
        default: |_| "-2".into(),
        apply: |_, v| parse_long(v, -2).map(drop),
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_name: Some("log.cleaner.max.compaction.lag.ms"),
        config_type: ConfigType::Long,
        doc: "On compacted topics, the longest a record stays uncompacted: older dirty data is cleaned whatever min.cleanable.dirty.ratio says, and the active segment rolls within this time.",
        default: |d| d.max_compaction_lag_ms.to_string(),
        apply: |e, v| {
            e.log.max_compaction_lag_ms = parse_long(v, 1)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_name: Some("log.message.timestamp.after.max.ms"),
        config_type: ConfigType::Long,
        doc: "How far after the broker's clock a CreateTime record's timestamp may be; a batch with a later one is refused with INVALID_TIMESTAMP.",
        default: |d| optional_max(d.timestamp_after_max_ms),
        apply: |e, v| {
            e.log.timestamp_after_max_ms = bounded(parse_long(v, 0)?);
            Ok(())
        },
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_name: Some("log.message.timestamp.before.max.ms"),
        config_type: ConfigType::Long,
        doc: "How far before the broker's clock a CreateTime record's timestamp may be; a batch with an earlier one is refused with INVALID_TIMESTAMP.",
        default: |d| optional_max(d.timestamp_before_max_ms),
        apply: |e, v| {
            e.log.timestamp_before_max_ms = bounded(parse_long(v, 0)?);
            Ok(())
        },
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_name: Some("log.message.timestamp.type"),
        config_type: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
        default: |d| timestamp_type_name(d.timestamp_type).into(),
        apply: |e, v| {
            e.log.timestamp_type = match v {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => {
                    return Err(format!(
                        "message.timestamp.type must be CreateTime or LogAppendTime, not {v}"
                    ))
                }
            };
            Ok(())
        },
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_name: Some("log.cleaner.min.cleanable.ratio"),
        config_type: ConfigType::Double,
        doc: "On compacted topics, the share of the cleanable log that must be dirty (written since the last cleaning) before the cleaner compacts it, from 0 to 1.",
        default: |d| d.min_cleanable_dirty_ratio.to_string(),
        apply: |e, v| {
            let ratio: f64 = v.parse().map_err(|_| "not a number".to_string())?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err("must be between 0 and 1".into());
            }
            e.log.min_cleanable_dirty_ratio = ratio;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_name: Some("log.cleaner.min.compaction.lag.ms"),
        config_type: ConfigType::Long,
        doc: "On compacted topics, the shortest time a record stays uncompacted after it was written (by its timestamp).",
        default: |d| d.min_compaction_lag_ms.to_string(),
        apply: |e, v| {
            e.log.min_compaction_lag_ms = parse_long(v, 0)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_name: Some("min.insync.replicas"),
        config_type: ConfigType::Int,
        doc: "Replicas that must have a write before acks=all is answered. A single node is its only in-sync replica: acks=all means written and synced on it.",
        default: |_| "1".into(),
        apply: |_, v| parse_int(v, 1).map(drop),
    },
    TopicConfigDef {
        name: "preallocate",
        broker_name: Some("log.preallocate"),
        config_type: ConfigType::Boolean,
        doc: "Accepted for compatibility: strom grows segment files as it writes them.",
        default: |_| "false".into(),
        apply: |_, v| parse_bool(v).map(drop),
    },
    TopicConfigDef {
        name: "remote.log.copy.disable",
        broker_name: None,
        config_type: ConfigType::Boolean,
        doc: "Tiered storage: stop copying segments to remote storage. Accepted for compatibility: strom has no remote storage.",
        default: |_| "false".into(),
        apply: |_, v| parse_bool(v).map(drop),
    },
    TopicConfigDef {
        name: "remote.log.delete.on.disable",
        broker_name: None,
        config_type: ConfigType::Boolean,
        doc: "Tiered storage: delete remote segments when it is turned off. Accepted for compatibility: strom has no remote storage.",
        default: |_| "false".into(),
        apply: |_, v| parse_bool(v).map(drop),
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        broker_name: None,
        config_type: ConfigType::Boolean,
        doc: "Tiered storage. strom has none: only false is accepted.",
        default: |_| "false".into(),
        apply: |_, v| match parse_bool(v)? {
            false => Ok(()),
            true => Err("tiered storage is not available on this broker".into()),
        },
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_name: Some("log.retention.bytes"),
        config_type: ConfigType::Long,
        doc: "Delete the oldest segments while a partition is larger than this; -1 for no limit.",
        default: |d| optional(d.retention_bytes),
        apply: |e, v| {
            e.log.retention_bytes = non_negative(parse_long(v, -1)?);
            Ok(())
        },
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_name: Some("log.retention.ms"),
        config_type: ConfigType::Long,
        doc: "Delete segments whose newest record is older than this many milliseconds; -1 keeps them forever.",
        default: |d| optional(d.retention_ms),
        apply: |e, v| {
            e.log.retention_ms = non_negative(parse_long(v, -1)?);
            Ok(())
        },
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_name: Some("log.segment.bytes"),
        config_type: ConfigType::Int,
        doc: "Roll a new segment file before the active one would exceed this many bytes.",
        default: |d| d.segment_bytes_max.to_string(),
        apply: |e, v| {
            e.log.segment_bytes_max = parse_int(v, 1024)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_name: Some("log.index.size.max.bytes"),
        config_type: ConfigType::Int,
        doc: "Largest offset index file; a full index rolls the segment.",
        default: |d| d.index_bytes_max.to_string(),
        apply: |e, v| {
            e.log.index_bytes_max = parse_int(v, 48)? as usize;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        broker_name: Some("log.roll.jitter.ms"),
        config_type: ConfigType::Long,
        doc: "Random time subtracted from segment.ms so that segments do not all roll at once. Accepted for compatibility: strom rolls at segment.ms.",
        default: |_| "0".into(),
        apply: |_, v| parse_long(v, 0).map(drop),
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_name: Some("log.roll.ms"),
        config_type: ConfigType::Long,
        doc: "Roll a new segment this many milliseconds after the active one's first write.",
        default: |d| d.segment_ms.to_string(),
        apply: |e, v| {
            e.log.segment_ms = parse_long(v, 1)? as u64;
            Ok(())
        },
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_name: Some("unclean.leader.election.enable"),
        config_type: ConfigType::Boolean,
        doc: "Whether an out-of-sync replica may become leader. Accepted for compatibility: a single node is always the leader.",
        default: |_| "false".into(),
        apply: |_, v| parse_bool(v).map(drop),
    },
];

/// Topic configs Kafka 3 accepted and Kafka 4 removed: accepted and ignored (with a
/// warning) so that tools written for Kafka 3 keep working.
pub(crate) const REMOVED_TOPIC_CONFIGS: &[&str] = &[
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
];

/// `overrides` without the configs Kafka 4 removed, each logged as ignored.
pub(crate) fn without_removed(topic: &str, mut overrides: Overrides) -> Overrides {
    overrides.retain(|name, value| {
        let removed = REMOVED_TOPIC_CONFIGS.contains(&name.as_str());
        if removed {
            tracing::warn!(topic, config = %name, value = %value, "ignoring a topic config Kafka 4 removed");
        }
        !removed
    });
    overrides
}

/// The definition of the topic config `name`.
pub(crate) fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// A config problem, reported as INVALID_CONFIG with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub String);

/// The log config of a topic with these overrides on top of the broker's defaults.
pub(crate) fn log_config(
    defaults: &LogConfig,
    overrides: &Overrides,
) -> Result<LogConfig, ConfigError> {
    let (flush_messages, flush_ms) = match defaults.flush_policy {
        FlushPolicy::Always => (1, i64::MAX),
        FlushPolicy::Interval(every) => (i64::MAX, every.as_millis() as i64),
        FlushPolicy::Os => (i64::MAX, i64::MAX),
    };
    let mut effective = Effective {
        log: defaults.clone(),
        flush_messages,
        flush_ms,
    };
    for (name, value) in overrides {
        let def = topic_config(name)
            .ok_or_else(|| ConfigError(format!("unknown topic config {name}")))?;
        (def.apply)(&mut effective, value.trim())
            .map_err(|reason| ConfigError(format!("invalid value {value} for {name}: {reason}")))?;
    }
    effective.log.flush_policy = match (effective.flush_messages, effective.flush_ms) {
        (1, _) | (_, 0) => FlushPolicy::Always,
        (_, i64::MAX) => FlushPolicy::Os,
        (_, ms) => FlushPolicy::Interval(Duration::from_millis(ms as u64)),
    };
    effective
        .log
        .validate()
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok(effective.log)
}

/// Kafka's name of a timestamp type.
pub(crate) fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "-1".into(), |v| v.to_string())
}

/// A bound where Kafka's `Long.MAX_VALUE` means none.
fn optional_max(value: Option<u64>) -> String {
    value.map_or_else(|| i64::MAX.to_string(), |v| v.to_string())
}

/// `None` for `Long.MAX_VALUE` (no bound), else the bound.
fn bounded(value: i64) -> Option<u64> {
    (value != i64::MAX).then_some(value as u64)
}

fn non_negative(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

fn parse_long(text: &str, min: i64) -> Result<i64, String> {
    let value: i64 = text.parse().map_err(|_| "not a whole number".to_string())?;
    if value < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(value)
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// Kafka's throttled-replica list: empty, `*`, or `partition:broker` pairs.
fn parse_replica_list(text: &str) -> Result<(), String> {
    let pair = |item: &str| {
        item.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        })
    };
    let text = text.trim();
    if text.is_empty() || text == "*" || text.split(',').all(pair) {
        Ok(())
    } else {
        Err("must be empty, * or a list of partition:broker pairs".into())
    }
}

fn parse_int(text: &str, min: i32) -> Result<i32, String> {
    let value: i32 = text
        .parse()
        .map_err(|_| "not a whole number that fits in 32 bits".to_string())?;
    if value < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> Overrides {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_round_trip_through_their_own_values() {
        let defaults = LogConfig::default();
        let all: Overrides = TOPIC_CONFIGS
            .iter()
            .map(|d| (d.name.to_string(), d.default_value(&defaults)))
            .collect();
        assert_eq!(log_config(&defaults, &all), Ok(defaults));
    }

    #[test]
    fn overrides_change_the_log_config() {
        let defaults = LogConfig::default();
        let config = log_config(
            &defaults,
            &overrides(&[
                ("retention.ms", "-1"),
                ("retention.bytes", "1000000"),
                ("message.timestamp.type", "LogAppendTime"),
                ("max.message.bytes", "2000"),
                ("flush.messages", "9223372036854775807"),
                ("flush.ms", "250"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.retention_bytes, Some(1_000_000));
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.max_message_bytes, 2000);
        let compacted = log_config(
            &defaults,
            &overrides(&[
                ("cleanup.policy", "compact,delete"),
                ("min.cleanable.dirty.ratio", "0.1"),
                ("min.compaction.lag.ms", "5"),
                ("max.compaction.lag.ms", "60000"),
                ("delete.retention.ms", "0"),
            ]),
        )
        .expect("valid");
        assert!(compacted.cleanup_policy.compact && compacted.cleanup_policy.delete);
        assert_eq!(compacted.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(compacted.min_compaction_lag_ms, 5);
        assert_eq!(compacted.max_compaction_lag_ms, 60_000);
        assert_eq!(compacted.delete_retention_ms, 0);
        assert_eq!(
            config.flush_policy,
            FlushPolicy::Interval(Duration::from_millis(250))
        );
        let os = log_config(&defaults, &overrides(&[("flush.messages", "10")])).expect("valid");
        assert_eq!(os.flush_policy, FlushPolicy::Os);
    }

    #[test]
    fn compression_type_and_levels_reach_the_log_config() {
        let defaults = LogConfig::default();
        let config = log_config(
            &defaults,
            &overrides(&[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "-5"),
                ("compression.gzip.level", "9"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            config.compression_type,
            CompressionType::Codec(strom_log::Compression::Zstd)
        );
        assert_eq!(config.compression_levels.zstd, -5);
        assert_eq!(config.compression_levels.gzip, 9);
        let accepted = overrides(&[
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "true"),
            ("follower.replication.throttled.replicas", "0:1,1:1"),
            ("leader.replication.throttled.replicas", "*"),
            ("local.retention.ms", "-2"),
            ("segment.jitter.ms", "100"),
        ]);
        assert_eq!(log_config(&defaults, &accepted), Ok(defaults));
    }

    #[test]
    fn configs_kafka_4_removed_are_dropped() {
        let kept = without_removed(
            "t",
            overrides(&[("message.format.version", "2.8"), ("retention.ms", "5")]),
        );
        assert_eq!(kept, overrides(&[("retention.ms", "5")]));
    }

    #[test]
    fn bad_values_and_names_are_refused_with_a_reason() {
        let defaults = LogConfig::default();
        for (name, value, needle) in [
            ("retention.ms", "soon", "whole number"),
            ("segment.bytes", "10", "at least"),
            ("segment.bytes", "99999999999", "32 bits"),
            (
                "cleanup.policy",
                "shred",
                "delete, compact or compact,delete",
            ),
            ("min.cleanable.dirty.ratio", "1.5", "between 0 and 1"),
            ("min.cleanable.dirty.ratio", "half", "not a number"),
            ("max.compaction.lag.ms", "0", "at least 1"),
            ("delete.retention.ms", "-5", "at least 0"),
            ("message.timestamp.type", "Now", "CreateTime"),
            ("no.such.config", "1", "unknown topic config"),
            ("flush.messages", "0", "at least 1"),
            ("compression.type", "brotli", "gzip"),
            ("compression.gzip.level", "10", "compression.gzip.level"),
            ("compression.zstd.level", "23", "compression.zstd.level"),
            ("compression.lz4.level", "0", "at least 1"),
            ("remote.storage.enable", "true", "tiered storage"),
            ("preallocate", "yes", "true or false"),
            ("min.insync.replicas", "0", "at least 1"),
            (
                "leader.replication.throttled.replicas",
                "0:x",
                "partition:broker",
            ),
            ("message.format.version", "3.0", "unknown topic config"),
        ] {
            let err = log_config(&defaults, &overrides(&[(name, value)])).expect_err(name);
            assert!(err.0.contains(needle), "{name}={value}: {}", err.0);
        }
    }
}
