//! The crate's error types: one enum for the library, one for serdes, one for stores.

use thiserror::Error;

/// A serializer or deserializer failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SerdeError {
    /// The payload was null (a Kafka tombstone or a null key) and the serde has no value
    /// for null; wrap the serde in [`crate::serdes::Nullable`] to accept nulls.
    #[error("null payload where a value was expected")]
    Null,
    /// The payload has the wrong length for a fixed-width type.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Bytes the type needs.
        expected: usize,
        /// Bytes the payload had.
        got: usize,
    },
    /// The payload could not be decoded.
    #[error("invalid payload: {0}")]
    Invalid(String),
    /// The record has no usable event time (a negative timestamp, or the timestamp
    /// extractor found none).
    #[error("no usable timestamp: {0}")]
    Timestamp(String),
    /// A service the serde needs (the schema registry) cannot be reached: not the
    /// record's fault. The record's partition is paused and the record tried again
    /// after `after_ms`, as for [`ProcessError::Retry`]; no error handler sees it.
    #[error("unavailable, retry in {after_ms} ms: {reason}")]
    Unavailable {
        /// Wall-clock milliseconds to wait.
        after_ms: i64,
        /// Why.
        reason: String,
    },
}

/// A state store backend failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The persistent backend (fjall) reported an error.
    #[error("fjall: {0}")]
    Fjall(String),
    /// The store's metadata could not be decoded.
    #[error("corrupt store metadata in {store}: {reason}")]
    CorruptMeta {
        /// The store or keyspace.
        store: String,
        /// What was wrong.
        reason: String,
    },
    /// An I/O error around the state directory.
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A processor (user code or an operator) failed on one record.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// A serde failed inside the topology (store values, sinks).
    #[error("serde: {0}")]
    Serde(SerdeError),
    /// A state store failed; never sent to a dead-letter topic (it is not the record's fault).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// User code reported an error.
    #[error("{0}")]
    User(String),
    /// Process this record again after `after_ms` of wall-clock time (an external system
    /// is down or a circuit breaker is open). The runtime pauses the record's input
    /// partition meanwhile; it is not an error for the handlers.
    #[error("retry after {after_ms} ms: {reason}")]
    Retry {
        /// Wall-clock milliseconds to wait.
        after_ms: i64,
        /// Why.
        reason: String,
    },
}

impl From<SerdeError> for ProcessError {
    /// An unavailable service is a retry; every other serde error is the record's.
    fn from(e: SerdeError) -> Self {
        match e {
            SerdeError::Unavailable { after_ms, reason } => {
                ProcessError::Retry { after_ms, reason }
            }
            other => ProcessError::Serde(other),
        }
    }
}

impl ProcessError {
    /// An error from user code with a message.
    pub fn user(message: impl Into<String>) -> Self {
        ProcessError::User(message.into())
    }
}

/// Everything that can go wrong in strom-streams.
#[derive(Debug, Error)]
pub enum StreamsError {
    /// The topology is invalid (unknown store, a source topic used twice, ...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// Input topics of one sub-topology differ in partition count.
    #[error("topics {topics:?} must be co-partitioned (same partition count) but have {partitions:?} partitions")]
    NotCoPartitioned {
        /// The topics read by one sub-topology.
        topics: Vec<String>,
        /// Their partition counts, in the same order.
        partitions: Vec<i32>,
    },
    /// A source topic does not exist.
    #[error("source topic {0} does not exist")]
    MissingSourceTopic(String),
    /// A record could not be deserialized and the handler says fail.
    #[error("deserialization failed on {topic}-{partition}@{offset}: {source}")]
    Deserialization {
        /// Topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The serde error.
        source: SerdeError,
    },
    /// Processing failed and the handler says fail.
    #[error("processing failed on {topic}-{partition}@{offset}: {source}")]
    Processing {
        /// Topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The processor's error.
        source: ProcessError,
    },
    /// A state store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The Kafka client failed in a way the runtime does not recover from.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Invalid configuration.
    #[error("config: {0}")]
    Config(String),
}
