//! Runtime settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::task::ErrorHandler;

/// The processing guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Outputs are flushed, the store is updated, then input offsets are committed: a
    /// crash may reprocess records (duplicates downstream), never lose them.
    AtLeastOnce,
    /// Outputs, changelog records, dead-letter records and input offsets are committed in
    /// one Kafka transaction per stream thread; inputs are read with read_committed.
    ExactlyOnce,
}

/// Where task state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBackendKind {
    /// fjall under `state_dir`: survives restarts, restores only the changelog's tail.
    Fjall,
    /// Memory: every start restores from the changelog.
    Memory,
}

/// Settings of a [`super::KafkaStreams`] instance.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// The consumer group, the prefix of internal topics and transactional ids.
    pub application_id: String,
    /// `host:port[,host:port…]` of the cluster.
    pub bootstrap_servers: String,
    /// Stream threads (OS threads) in this instance.
    pub num_stream_threads: usize,
    /// At-least-once or exactly-once.
    pub processing_guarantee: ProcessingGuarantee,
    /// The instance's state directory (its id, the fjall database).
    pub state_dir: PathBuf,
    /// The state backend.
    pub state_backend: StateBackendKind,
    /// Commit at least this often (keep it far below `transaction_timeout`).
    pub commit_interval: Duration,
    /// Commit early when a thread processed this many records since its last commit.
    pub commit_records_max: usize,
    /// Commit early when the overlays of a thread's tasks hold this many bytes.
    pub overlay_bytes_max: usize,
    /// Handler for records that fail to deserialize.
    pub deserialization_errors: ErrorHandler,
    /// Handler for records whose processing fails.
    pub processing_errors: ErrorHandler,
    /// `cleanup.policy` of changelog topics the runtime creates (`compact`).
    pub changelog_cleanup_policy: String,
    /// Replication factor of internal topics the runtime creates (-1: broker default).
    pub replication_factor: i32,
    /// The transaction timeout (exactly-once).
    pub transaction_timeout: Duration,
    /// Timeout of every blocking client call (commit, flush, metadata, restore polls).
    pub request_timeout: Duration,
    /// Extra librdkafka settings for every client (e.g. `session.timeout.ms`).
    pub client_config: BTreeMap<String, String>,
    /// Opt-in: move each task's stream time up to `now - lag` on the wall clock, so the
    /// windows of partitions that went quiet still close (outputs then depend on timing,
    /// outside the determinism guarantee). Default `None`.
    pub stream_time_wall_clock_lag: Option<Duration>,
    /// `HOST:PORT` where this instance serves interactive queries
    /// ([`super::KafkaStreams::serve_http`]); other instances learn it through the
    /// consumer group and redirect queries for keys this instance holds here
    /// (Kafka Streams' `application.server`). Default `None`.
    pub application_server: Option<String>,
    /// OTLP/HTTP base URL (`http://collector:4318`) to export spans to, with service name
    /// = `application_id`: each input record's processing span (a child of the record's
    /// W3C `traceparent`; records it produces carry a `traceparent` naming it), commits
    /// and restores. Needs the cargo feature `otel`; without it, a set endpoint fails
    /// the start. Default `None`.
    pub otlp_endpoint: Option<String>,
}

impl StreamsConfig {
    /// Defaults for an application on a cluster.
    pub fn new(application_id: &str, bootstrap_servers: &str) -> Self {
        StreamsConfig {
            application_id: application_id.to_string(),
            bootstrap_servers: bootstrap_servers.to_string(),
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            state_dir: std::env::temp_dir()
                .join("strom-streams")
                .join(application_id),
            state_backend: StateBackendKind::Fjall,
            commit_interval: Duration::from_millis(100),
            commit_records_max: 10_000,
            overlay_bytes_max: 16 << 20,
            deserialization_errors: ErrorHandler::Fail,
            processing_errors: ErrorHandler::Fail,
            changelog_cleanup_policy: "compact".into(),
            replication_factor: -1,
            transaction_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            client_config: BTreeMap::new(),
            stream_time_wall_clock_lag: None,
            application_server: None,
            otlp_endpoint: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), crate::error::StreamsError> {
        use crate::error::StreamsError::Config;
        if self.application_id.is_empty()
            || !self
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(Config(format!(
                "application.id {:?} must be non-empty and use only [a-zA-Z0-9._-]",
                self.application_id
            )));
        }
        if self.num_stream_threads == 0 {
            return Err(Config("num_stream_threads must be at least 1".into()));
        }
        if self.processing_guarantee == ProcessingGuarantee::ExactlyOnce
            && self.commit_interval * 4 > self.transaction_timeout
        {
            return Err(Config(format!(
                "commit_interval {:?} must stay far below transaction_timeout {:?} (librdkafka has no KIP-588: a timed-out transaction is fatal)",
                self.commit_interval, self.transaction_timeout
            )));
        }
        Ok(())
    }
}
