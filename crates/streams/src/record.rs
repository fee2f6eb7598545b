//! Records as processors see them, and the raw records the runtime and the test driver
//! move in and out of a task.

use std::fmt;

/// Record headers: ordered name/value pairs (a value may be null), as Kafka has them.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A typed record inside a topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Timestamp in milliseconds since the epoch (event time).
    pub timestamp_ms: i64,
    /// Headers, carried from input to output unless an operator changes them.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp_ms: i64) -> Self {
        Record {
            key,
            value,
            timestamp_ms,
            headers: Vec::new(),
        }
    }
}

/// A task: one partition number of one sub-topology. Co-partitioned input topics of a
/// sub-topology share their tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology (a connected part of the topology).
    pub subtopology: u32,
    /// The input partition number.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A serialized input record as it came from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// A serialized record a task wants produced.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` lets the partitioner choose (murmur2 of the key).
    pub partition: Option<i32>,
    /// Key bytes (`None` is a null key).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` is a tombstone).
    pub value: Option<Vec<u8>>,
    /// Timestamp in milliseconds.
    pub timestamp_ms: i64,
    /// Headers.
    pub headers: Headers,
}
