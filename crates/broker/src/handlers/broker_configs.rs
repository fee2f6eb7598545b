//! The broker's configs as DescribeConfigs shows them, under Kafka's names: the
//! settings of `strom serve` (a value that differs from strom's default is reported as
//! a static broker config, as Kafka does for `server.properties`), this node's
//! identity and listeners, and the defaults topics inherit.

use strom_log::LogConfig;

use crate::broker::Shared;
use crate::cluster::topic_config::{ConfigType, TOPIC_CONFIGS};
use crate::config::BrokerConfig;
use crate::net::listener::Listener;
use crate::security::config::SecurityProtocol;

use super::configs::{ConfigEntry, ConfigSource};

/// One broker setting: Kafka's name, its type and documentation, and how to read its
/// value off a [`BrokerConfig`].
struct Setting {
    name: &'static str,
    config_type: ConfigType,
    doc: &'static str,
    value: fn(&BrokerConfig) -> String,
}

/// The `strom serve` settings that have a Kafka name.
const SETTINGS: &[Setting] = &[
    Setting {
        name: "auto.create.topics.enable",
        config_type: ConfigType::Boolean,
        doc: "Create a topic when a client asks for metadata of one that does not exist.",
        value: |c| c.auto_create_topics.to_string(),
    },
    Setting {
        name: "group.initial.rebalance.delay.ms",
        config_type: ConfigType::Int,
        doc: "How long the first rebalance of an empty group waits for more members.",
        value: |c| c.group_initial_rebalance_delay.as_millis().to_string(),
    },
    Setting {
        name: "group.consumer.session.timeout.ms",
        config_type: ConfigType::Int,
        doc: "How long a member of a new-protocol (KIP-848) group may go without a heartbeat.",
        value: |c| c.group_consumer_session_timeout.as_millis().to_string(),
    },
    Setting {
        name: "group.consumer.heartbeat.interval.ms",
        config_type: ConfigType::Int,
        doc: "How often members of a new-protocol (KIP-848) group heartbeat.",
        value: |c| c.group_consumer_heartbeat_interval.as_millis().to_string(),
    },
    Setting {
        name: "group.max.session.timeout.ms",
        config_type: ConfigType::Int,
        doc: "Longest session timeout a group member may ask for.",
        value: |c| c.group_max_session_timeout.as_millis().to_string(),
    },
    Setting {
        name: "group.max.size",
        config_type: ConfigType::Int,
        doc: "Members one group may have; a member that would exceed it gets GROUP_MAX_SIZE_REACHED.",
        value: |c| c.group_size_max.to_string(),
    },
    Setting {
        name: "group.min.session.timeout.ms",
        config_type: ConfigType::Int,
        doc: "Shortest session timeout a group member may ask for.",
        value: |c| c.group_min_session_timeout.as_millis().to_string(),
    },
    Setting {
        name: "log.cleaner.backoff.ms",
        config_type: ConfigType::Long,
        doc: "How long the log cleaner sleeps when no log needs cleaning.",
        value: |c| c.cleaner.backoff.as_millis().to_string(),
    },
    Setting {
        name: "log.cleaner.dedupe.buffer.size",
        config_type: ConfigType::Long,
        doc: "Memory of the log cleaner's key map, 24 bytes per key.",
        value: |c| c.cleaner.dedupe_buffer_bytes.to_string(),
    },
    Setting {
        name: "log.cleaner.io.max.bytes.per.second",
        config_type: ConfigType::Double,
        doc: "Bytes the log cleaner may read plus write per second.",
        value: |c| {
            c.cleaner
                .io_bytes_per_second_max
                .map_or_else(|| f64::MAX.to_string(), |rate| rate.to_string())
        },
    },
    Setting {
        name: "max.connections",
        config_type: ConfigType::Int,
        doc: "Open client connections, all listeners together; more are closed at once.",
        value: |c| c.connections_max.to_string(),
    },
    Setting {
        name: "max.connections.per.ip",
        config_type: ConfigType::Int,
        doc: "Open client connections from one IP address; more are closed at once.",
        value: |c| c.connections_per_ip_max.to_string(),
    },
    Setting {
        name: "num.partitions",
        config_type: ConfigType::Int,
        doc: "Partitions of an automatically created topic.",
        value: |c| c.num_partitions.to_string(),
    },
    Setting {
        name: "offsets.retention.minutes",
        config_type: ConfigType::Int,
        doc: "How long an empty group's committed offsets are kept after their last commit.",
        value: |c| (c.offsets_retention.as_secs() / 60).to_string(),
    },
    Setting {
        name: "producer.id.expiration.ms",
        config_type: ConfigType::Int,
        doc: "How long a partition remembers an idempotent producer after its last write.",
        value: |c| c.producer_id_expiration.as_millis().to_string(),
    },
    Setting {
        name: "queued.max.request.bytes",
        config_type: ConfigType::Long,
        doc: "Bytes of requests read but not yet answered, all connections together; a connection whose next request does not fit waits.",
        value: |c| c.queued_request_bytes_max.to_string(),
    },
    Setting {
        name: "socket.request.max.bytes",
        config_type: ConfigType::Int,
        doc: "Largest request accepted on a connection.",
        value: |c| c.request_bytes_max.to_string(),
    },
    Setting {
        name: "transactional.id.expiration.ms",
        config_type: ConfigType::Int,
        doc: "How long a transactional id without a transaction is remembered.",
        value: |c| c.transactional_id_expiration.as_millis().to_string(),
    },
];

/// Kafka's name of a security protocol.
fn protocol_name(protocol: SecurityProtocol) -> &'static str {
    match protocol {
        SecurityProtocol::Plaintext => "PLAINTEXT",
        SecurityProtocol::Ssl => "SSL",
        SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        SecurityProtocol::SaslSsl => "SASL_SSL",
    }
}

/// `NAME://host:port,…` over the listeners, with `address` picking host and port.
fn listener_list(
    listeners: &[std::sync::Arc<Listener>],
    address: fn(&Listener) -> String,
) -> String {
    listeners
        .iter()
        .map(|l| format!("{}://{}", l.name, address(l)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every broker config, sorted by name.
pub(super) fn entries(shared: &Shared) -> Vec<ConfigEntry> {
    let cluster = &shared.cluster;
    let config = &cluster.config;
    let entry = |name: &str, value: String, config_type, doc, source| ConfigEntry {
        name: name.to_string(),
        synonyms: vec![(name.to_string(), value.clone(), source)],
        value,
        source,
        read_only: true,
        config_type,
        doc,
    };
    let node_id = cluster.identity.node_id.to_string();
    let listeners = &shared.listeners;
    let fixed = [
        (
            "advertised.listeners",
            listener_list(listeners, |l| {
                format!("{}:{}", l.advertised_host, l.advertised_port)
            }),
            ConfigType::List,
            "The addresses clients are told to connect to, per listener.",
        ),
        (
            "broker.id",
            node_id.clone(),
            ConfigType::Int,
            "This node's id (kept in meta.properties).",
        ),
        (
            "listener.security.protocol.map",
            listeners
                .iter()
                .map(|l| format!("{}:{}", l.name, protocol_name(l.protocol)))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
            "The security protocol of each listener.",
        ),
        (
            "listeners",
            listener_list(listeners, |l| l.bound.to_string()),
            ConfigType::List,
            "The addresses the broker is bound to, per listener.",
        ),
        (
            "log.dirs",
            cluster.data_dir().display().to_string(),
            ConfigType::String,
            "The data directory.",
        ),
        (
            "node.id",
            node_id,
            ConfigType::Int,
            "This node's id (kept in meta.properties).",
        ),
        (
            "process.roles",
            "broker,controller".into(),
            ConfigType::List,
            "A single strom node is both the broker and the controller of its metadata.",
        ),
    ];
    let mut entries: Vec<ConfigEntry> = fixed
        .into_iter()
        .map(|(name, value, config_type, doc)| {
            entry(name, value, config_type, doc, ConfigSource::StaticBroker)
        })
        .collect();
    let defaults = BrokerConfig::default();
    entries.extend(SETTINGS.iter().map(|setting| {
        let value = (setting.value)(config);
        let source = if value == (setting.value)(&defaults) {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        entry(
            setting.name,
            value,
            setting.config_type,
            setting.doc,
            source,
        )
    }));
    entries.push(entry(
        "default.replication.factor",
        "1".into(),
        ConfigType::Int,
        "strom runs a single node: every partition has one replica.",
        ConfigSource::Default,
    ));
    let topic_defaults = LogConfig::default();
    entries.extend(TOPIC_CONFIGS.iter().filter_map(|def| {
        let name = def.broker_name?;
        let value = def.default_value(&config.topic_defaults);
        let source = if value == def.default_value(&topic_defaults) {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        Some(entry(name, value, def.config_type, def.doc, source))
    }));
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    entries
}
