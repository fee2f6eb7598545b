//! Broker configuration: where to listen, where the data lives, and the defaults new
//! topics get. Every field has a default that works on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use strom_log::{CleanerConfig, LogConfig};

use crate::security::config::{ListenerConfig, SecurityConfig, SecurityProtocol};

/// Everything [`crate::Broker::start`] needs.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Directory holding every partition log and the broker's identity.
    pub data_dir: PathBuf,
    /// Address of the Kafka listener when `listeners` is empty (one PLAINTEXT
    /// listener); port 0 picks a free one.
    pub kafka_addr: SocketAddr,
    /// Address clients of `kafka_addr` are told to connect to (Metadata); `None` = the
    /// bound address.
    pub advertised_addr: Option<String>,
    /// Listeners with their security protocols; when set, `kafka_addr` is not used.
    pub listeners: Vec<ListenerConfig>,
    /// TLS, SASL, bootstrap users and the authorizer.
    pub security: SecurityConfig,
    /// Address of the HTTP endpoint (health now; metrics and admin later). `None` = off.
    pub http_addr: Option<SocketAddr>,
    /// Largest request frame accepted on a connection (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Requests read ahead on one connection before its responses are written.
    pub requests_in_flight_max: usize,
    /// Create a topic when a client asks Metadata or produces to one that does not exist.
    pub auto_create_topics: bool,
    /// Partitions of an automatically created topic (Kafka's `num.partitions`).
    pub num_partitions: i32,
    /// Log settings of a topic that overrides nothing (Kafka's `log.*` broker configs).
    pub topic_defaults: LogConfig,
    /// The log cleaner of compacted topics (Kafka's `log.cleaner.*`).
    pub cleaner: CleanerConfig,
    /// How long the first rebalance of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay: Duration,
    /// How long an empty group's committed offsets are kept after their last commit
    /// (Kafka's `offsets.retention.minutes`).
    pub offsets_retention: Duration,
    /// Shortest session a group member may ask for (Kafka's `group.min.session.timeout.ms`).
    pub group_min_session_timeout: Duration,
    /// Longest session a group member may ask for (Kafka's `group.max.session.timeout.ms`).
    pub group_max_session_timeout: Duration,
    /// How long a member of a KIP-848 group may go without a heartbeat before it is
    /// removed and its partitions move (Kafka's `group.consumer.session.timeout.ms`).
    pub group_consumer_session_timeout: Duration,
    /// How often KIP-848 members are asked to heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`); below the session timeout.
    pub group_consumer_heartbeat_interval: Duration,
    /// Members one classic group may have; more get GROUP_MAX_SIZE_REACHED (Kafka's
    /// `group.max.size`).
    pub group_size_max: usize,
    /// Open client connections, all listeners together; more are closed at once with
    /// a log line (Kafka's `max.connections`).
    pub connections_max: usize,
    /// Open client connections from one IP address (Kafka's `max.connections.per.ip`).
    pub connections_per_ip_max: usize,
    /// Bytes of requests read but not yet answered, all connections together; a
    /// connection whose next request does not fit waits (Kafka's
    /// `queued.max.request.bytes`).
    pub queued_request_bytes_max: usize,
    /// How long a transactional id with no transaction is remembered (Kafka's
    /// `transactional.id.expiration.ms`).
    pub transactional_id_expiration: Duration,
    /// How long a partition remembers an idempotent producer after its last write
    /// (Kafka's `producer.id.expiration.ms`).
    pub producer_id_expiration: Duration,
    /// Producers one partition remembers; a new one makes it forget the one heard of
    /// least recently that has no open transaction (strom's own bound).
    pub producer_ids_per_partition_max: usize,
    /// Transactional ids the coordinator remembers; a new one makes it forget the
    /// idle one used least recently (strom's own bound).
    pub transactional_ids_max: usize,
    /// Segment files open at once, all partitions together; the least recently used
    /// is closed to open another (strom's own bound). `None` = half the open-file
    /// limit (`strom_log::default_open_files_max`), leaving the rest to connections.
    pub open_files_max: Option<usize>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./data"),
            kafka_addr: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_addr: None,
            listeners: Vec::new(),
            security: SecurityConfig::default(),
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
            request_bytes_max: 100 * 1024 * 1024,
            requests_in_flight_max: 128,
            auto_create_topics: true,
            num_partitions: 1,
            topic_defaults: LogConfig::default(),
            cleaner: CleanerConfig::default(),
            group_initial_rebalance_delay: Duration::from_millis(3_000),
            offsets_retention: Duration::from_secs(7 * 24 * 60 * 60),
            group_min_session_timeout: Duration::from_millis(6_000),
            group_max_session_timeout: Duration::from_millis(1_800_000),
            group_consumer_session_timeout: Duration::from_millis(45_000),
            group_consumer_heartbeat_interval: Duration::from_millis(5_000),
            group_size_max: 1_000,
            connections_max: 10_000,
            connections_per_ip_max: 10_000,
            queued_request_bytes_max: 512 * 1024 * 1024,
            transactional_id_expiration: Duration::from_millis(604_800_000),
            producer_id_expiration: Duration::from_millis(86_400_000),
            producer_ids_per_partition_max: 10_000,
            transactional_ids_max: 100_000,
            open_files_max: None,
        }
    }
}

impl BrokerConfig {
    /// The listeners to bind: `listeners`, or else one PLAINTEXT listener on
    /// `kafka_addr` named `PLAINTEXT`.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        vec![ListenerConfig {
            name: "PLAINTEXT".into(),
            address: self.kafka_addr,
            security_protocol: SecurityProtocol::Plaintext,
            advertised_address: self.advertised_addr.clone(),
        }]
    }

    /// A config for tests and embedding: `data_dir`, ephemeral ports on 127.0.0.1.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            kafka_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..BrokerConfig::default()
        }
    }
}
