//! `strom serve`: flags and an optional TOML file (flags win) become a
//! [`BrokerConfig`]; the broker runs until SIGINT or SIGTERM, then shuts down cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use strom_broker::{
    AuthorizerConfig, Broker, BrokerConfig, CleanerConfig, CleanupPolicy, CompressionType,
    FlushPolicy, ListenerConfig, SaslConfig, TlsConfig, UserConfig,
};

/// Flags of `strom serve`. Each is also a key of the `--config` file, spelled with
/// underscores (`--kafka-addr` is `kafka_addr`).
#[derive(Debug, Args, Default)]
#[command(
    after_help = "Examples:\n  strom serve\n  strom serve --data-dir /var/lib/strom --kafka-addr 0.0.0.0:9092 --advertised-addr broker1.example.com:9092\n  strom serve --config strom.toml"
)]
pub struct ServeArgs {
    /// TOML file with any of the keys below; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run every pipeline file (`*.yaml`, `*.yml`) of this directory inside the broker
    /// process, against its first listener; state under `<data-dir>/pipelines`.
    #[cfg(feature = "tools")]
    #[arg(long, value_name = "DIR")]
    pipelines: Option<PathBuf>,
    /// Directory for logs and metadata [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka listener (PLAINTEXT); port 0 picks a free one [default: 127.0.0.1:9092,
    /// unless the config file has [[listeners]]; then it is one more listener].
    #[arg(long, value_name = "HOST:PORT")]
    kafka_addr: Option<SocketAddr>,
    /// Address clients are told to connect to [default: the bound Kafka address].
    #[arg(long, value_name = "HOST:PORT")]
    advertised_addr: Option<String>,
    /// HTTP endpoint for /healthz and /readyz [default: 127.0.0.1:9644].
    #[arg(long, value_name = "HOST:PORT")]
    http_addr: Option<SocketAddr>,
    /// Default flush policy of topics: `always` (fdatasync before acks=all is
    /// answered), `os`, or a number of milliseconds [default: always].
    #[arg(long, value_name = "POLICY")]
    flush_policy: Option<String>,
    /// Partitions of automatically created topics [default: 1].
    #[arg(long, value_name = "N")]
    num_partitions: Option<i32>,
    /// Create topics on first use [default: true].
    #[arg(long, value_name = "BOOL")]
    auto_create_topics: Option<bool>,
    /// Largest request accepted, in bytes [default: 104857600].
    #[arg(long, value_name = "BYTES")]
    request_bytes_max: Option<usize>,
    /// How long a new group's first rebalance waits for more members, in ms
    /// (Kafka's group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, value_name = "MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// How long an empty group's offsets are kept after their last commit, in minutes
    /// (Kafka's offsets.retention.minutes) [default: 10080].
    #[arg(long, value_name = "MINUTES")]
    offsets_retention_minutes: Option<u64>,
    /// Default cleanup.policy of topics: delete, compact or compact,delete
    /// (Kafka's log.cleanup.policy) [default: delete].
    #[arg(long, value_name = "POLICY")]
    log_cleanup_policy: Option<String>,
    /// Memory of the log cleaner's key map, in bytes, 24 per key (Kafka's
    /// log.cleaner.dedupe.buffer.size) [default: 134217728].
    #[arg(long, value_name = "BYTES")]
    log_cleaner_dedupe_buffer_size: Option<usize>,
    /// Bytes the log cleaner may read plus write per second; 0 = no limit (Kafka's
    /// log.cleaner.io.max.bytes.per.second) [default: 0].
    #[arg(long, value_name = "BYTES")]
    log_cleaner_io_max_bytes_per_second: Option<u64>,
    /// How long the log cleaner sleeps when no log needs cleaning, in ms (Kafka's
    /// log.cleaner.backoff.ms) [default: 15000].
    #[arg(long, value_name = "MS")]
    log_cleaner_backoff_ms: Option<u64>,
    /// Shortest session timeout a group member may ask for, in ms (Kafka's
    /// group.min.session.timeout.ms) [default: 6000].
    #[arg(long, value_name = "MS")]
    group_min_session_timeout_ms: Option<u64>,
    /// Longest session timeout a group member may ask for, in ms (Kafka's
    /// group.max.session.timeout.ms) [default: 1800000].
    #[arg(long, value_name = "MS")]
    group_max_session_timeout_ms: Option<u64>,
    /// How long a member of a new-protocol (KIP-848) consumer group may go without a
    /// heartbeat before its partitions move, in ms (Kafka's
    /// group.consumer.session.timeout.ms) [default: 45000].
    #[arg(long, value_name = "MS")]
    group_consumer_session_timeout_ms: Option<u64>,
    /// How often members of a new-protocol (KIP-848) consumer group heartbeat, in ms
    /// (Kafka's group.consumer.heartbeat.interval.ms) [default: 5000].
    #[arg(long, value_name = "MS")]
    group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Members one consumer group may have; more get GROUP_MAX_SIZE_REACHED
    /// (Kafka's group.max.size) [default: 1000].
    #[arg(long, value_name = "N")]
    group_max_size: Option<usize>,
    /// Open client connections, all listeners together; more are closed at once
    /// with a log line (Kafka's max.connections) [default: 10000].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Open client connections from one IP address; more are closed at once
    /// (Kafka's max.connections.per.ip) [default: 10000].
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Segment files (of all partitions) open at once; beyond it the least
    /// recently used is closed and reopened on its next use, so the number of
    /// partitions is not bounded by the open-file limit [default: half the
    /// open-file limit, which serve raises to the hard limit].
    #[arg(long, value_name = "N")]
    open_files_max: Option<usize>,
    /// Bytes of requests read but not yet answered, all connections together;
    /// a connection whose next request does not fit waits (Kafka's
    /// queued.max.request.bytes) [default: 536870912].
    #[arg(long, value_name = "BYTES")]
    queued_max_request_bytes: Option<usize>,
    /// How long a transactional id without a transaction is remembered, in ms
    /// (Kafka's transactional.id.expiration.ms) [default: 604800000].
    #[arg(long, value_name = "MS")]
    transactional_id_expiration_ms: Option<u64>,
    /// How long a partition remembers an idempotent producer after its last
    /// write, in ms (Kafka's producer.id.expiration.ms) [default: 86400000].
    #[arg(long, value_name = "MS")]
    producer_id_expiration_ms: Option<u64>,
    /// Producer ids one partition remembers; a new one makes it forget the idle one
    /// heard of least recently [default: 10000].
    #[arg(long, value_name = "N")]
    producer_ids_per_partition_max: Option<usize>,
    /// Transactional ids the coordinator remembers; a new one makes it forget the
    /// idle one used least recently [default: 100000].
    #[arg(long, value_name = "N")]
    transactional_ids_max: Option<usize>,
    /// Default compression.type of topics: producer, uncompressed, gzip, snappy,
    /// lz4 or zstd (Kafka's compression.type) [default: producer].
    #[arg(long, value_name = "TYPE")]
    compression_type: Option<String>,
    /// Schema registry listener (Confluent's REST API); port 0 picks a free one
    /// [default: 127.0.0.1:8081].
    #[arg(long, value_name = "HOST:PORT")]
    schema_registry_addr: Option<SocketAddr>,
    /// Run the schema registry [default: true].
    #[arg(long, value_name = "BOOL")]
    schema_registry_enabled: Option<bool>,
    /// Serve the schema registry over TLS with the `[tls]` certificate of the config
    /// file [default: false].
    #[arg(long, value_name = "BOOL")]
    schema_registry_tls: Option<bool>,
    /// Require HTTP Basic authentication against the broker's SCRAM users, and the
    /// broker's ACLs per subject, on the schema registry [default: false].
    #[arg(long, value_name = "BOOL")]
    schema_registry_basic_auth: Option<bool>,
}

/// The `--config` file: the same keys as the flags, plus the security tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listeners: Vec<ListenerConfig>,
    tls: Option<TlsConfig>,
    #[serde(default)]
    sasl: SaslConfig,
    #[serde(default)]
    users: Vec<UserConfig>,
    #[serde(default)]
    authorizer: AuthorizerConfig,
    data_dir: Option<PathBuf>,
    kafka_addr: Option<SocketAddr>,
    advertised_addr: Option<String>,
    http_addr: Option<SocketAddr>,
    flush_policy: Option<String>,
    num_partitions: Option<i32>,
    auto_create_topics: Option<bool>,
    request_bytes_max: Option<usize>,
    group_initial_rebalance_delay_ms: Option<u64>,
    offsets_retention_minutes: Option<u64>,
    log_cleanup_policy: Option<String>,
    log_cleaner_dedupe_buffer_size: Option<usize>,
    log_cleaner_io_max_bytes_per_second: Option<u64>,
    log_cleaner_backoff_ms: Option<u64>,
    group_min_session_timeout_ms: Option<u64>,
    group_max_session_timeout_ms: Option<u64>,
    group_consumer_session_timeout_ms: Option<u64>,
    group_consumer_heartbeat_interval_ms: Option<u64>,
    group_max_size: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    open_files_max: Option<usize>,
    queued_max_request_bytes: Option<usize>,
    transactional_id_expiration_ms: Option<u64>,
    producer_id_expiration_ms: Option<u64>,
    producer_ids_per_partition_max: Option<usize>,
    transactional_ids_max: Option<usize>,
    compression_type: Option<String>,
    schema_registry_addr: Option<SocketAddr>,
    schema_registry_enabled: Option<bool>,
    schema_registry_tls: Option<bool>,
    schema_registry_basic_auth: Option<bool>,
}

/// The default schema registry listener: Confluent's port.
const SCHEMA_REGISTRY_ADDR: &str = "127.0.0.1:8081";

/// Everything `strom serve` runs: the broker and, unless turned off, the registry.
#[derive(Debug)]
struct ServeConfig {
    broker: BrokerConfig,
    /// Where the schema registry listens; `None` when it is off.
    schema_registry_addr: Option<SocketAddr>,
    /// The registry serves HTTPS with the broker's `[tls]` certificate.
    schema_registry_tls: bool,
    /// The registry requires Basic auth against the broker's users and its ACLs.
    schema_registry_basic_auth: bool,
}

impl FileConfig {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The broker's part of the configuration (tests look at it alone).
#[cfg(test)]
fn broker_config(args: ServeArgs) -> anyhow::Result<BrokerConfig> {
    serve_config(args).map(|c| c.broker)
}

/// Flags over file over defaults.
fn serve_config(args: ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let registry_on = args
        .schema_registry_enabled
        .or(file.schema_registry_enabled)
        .unwrap_or(true);
    let schema_registry_addr = match args.schema_registry_addr.or(file.schema_registry_addr) {
        Some(addr) => addr,
        None => SCHEMA_REGISTRY_ADDR
            .parse()
            .context("the default schema registry address")?,
    };
    let schema_registry_tls = args
        .schema_registry_tls
        .or(file.schema_registry_tls)
        .unwrap_or(false);
    let schema_registry_basic_auth = args
        .schema_registry_basic_auth
        .or(file.schema_registry_basic_auth)
        .unwrap_or(false);
    if schema_registry_tls && file.tls.is_none() {
        bail!("schema_registry_tls needs a [tls] section in the config file");
    }
    let mut config = BrokerConfig::default();
    apply_limits(&mut config, &args, &file)?;
    if let Some(dir) = args.data_dir.or(file.data_dir) {
        config.data_dir = dir;
    }
    let kafka_addr = args.kafka_addr.or(file.kafka_addr);
    if let Some(addr) = kafka_addr {
        config.kafka_addr = addr;
    }
    config.advertised_addr = args.advertised_addr.or(file.advertised_addr);
    if !file.listeners.is_empty() {
        // An explicit kafka_addr next to [[listeners]] is one more PLAINTEXT listener.
        config.listeners = file.listeners;
        if kafka_addr.is_some() {
            config.listeners.extend(
                BrokerConfig {
                    listeners: Vec::new(),
                    ..config.clone()
                }
                .effective_listeners(),
            );
        }
    }
    config.security.tls = file.tls;
    config.security.sasl = file.sasl;
    config.security.users = file.users;
    config.security.authorizer = file.authorizer;
    if let Some(addr) = args.http_addr.or(file.http_addr) {
        config.http_addr = Some(addr);
    }
    if let Some(policy) = args.flush_policy.or(file.flush_policy) {
        config.topic_defaults.flush_policy =
            FlushPolicy::parse(&policy).context("invalid flush_policy")?;
    }
    if let Some(n) = args.num_partitions.or(file.num_partitions) {
        if n < 1 {
            bail!("num_partitions must be at least 1, not {n}");
        }
        config.num_partitions = n;
    }
    if let Some(on) = args.auto_create_topics.or(file.auto_create_topics) {
        config.auto_create_topics = on;
    }
    if let Some(max) = args.request_bytes_max.or(file.request_bytes_max) {
        if max < 1024 {
            bail!("request_bytes_max must be at least 1024, not {max}");
        }
        config.request_bytes_max = max;
    }
    if let Some(ms) = args
        .group_initial_rebalance_delay_ms
        .or(file.group_initial_rebalance_delay_ms)
    {
        config.group_initial_rebalance_delay = Duration::from_millis(ms);
    }
    if let Some(minutes) = args
        .offsets_retention_minutes
        .or(file.offsets_retention_minutes)
    {
        if minutes == 0 {
            bail!("offsets_retention_minutes must be at least 1");
        }
        config.offsets_retention = Duration::from_secs(minutes * 60);
    }
    if let Some(policy) = args.log_cleanup_policy.or(file.log_cleanup_policy) {
        config.topic_defaults.cleanup_policy =
            CleanupPolicy::parse(&policy).context("invalid log_cleanup_policy")?;
    }
    if let Some(bytes) = args
        .log_cleaner_dedupe_buffer_size
        .or(file.log_cleaner_dedupe_buffer_size)
    {
        let min = CleanerConfig::DEDUPE_BUFFER_BYTES_MIN;
        if bytes < min {
            bail!("log_cleaner_dedupe_buffer_size must be at least {min}, not {bytes}");
        }
        config.cleaner.dedupe_buffer_bytes = bytes;
    }
    if let Some(rate) = args
        .log_cleaner_io_max_bytes_per_second
        .or(file.log_cleaner_io_max_bytes_per_second)
    {
        config.cleaner.io_bytes_per_second_max = (rate > 0).then_some(rate);
    }
    if let Some(ms) = args.log_cleaner_backoff_ms.or(file.log_cleaner_backoff_ms) {
        if ms == 0 {
            bail!("log_cleaner_backoff_ms must be at least 1");
        }
        config.cleaner.backoff = Duration::from_millis(ms);
    }
    if config.queued_request_bytes_max < config.request_bytes_max {
        bail!(
            "queued_max_request_bytes ({}) must be at least request_bytes_max ({}), or the largest request could never be read",
            config.queued_request_bytes_max,
            config.request_bytes_max
        );
    }
    Ok(ServeConfig {
        broker: config,
        schema_registry_addr: registry_on.then_some(schema_registry_addr),
        schema_registry_tls,
        schema_registry_basic_auth,
    })
}

/// The group, connection, request and producer limits and the default
/// `compression.type`, flags over file.
fn apply_limits(
    config: &mut BrokerConfig,
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    for (flag, key, setting) in [
        (
            args.group_min_session_timeout_ms,
            file.group_min_session_timeout_ms,
            &mut config.group_min_session_timeout,
        ),
        (
            args.group_max_session_timeout_ms,
            file.group_max_session_timeout_ms,
            &mut config.group_max_session_timeout,
        ),
        (
            args.group_consumer_session_timeout_ms,
            file.group_consumer_session_timeout_ms,
            &mut config.group_consumer_session_timeout,
        ),
        (
            args.group_consumer_heartbeat_interval_ms,
            file.group_consumer_heartbeat_interval_ms,
            &mut config.group_consumer_heartbeat_interval,
        ),
        (
            args.transactional_id_expiration_ms,
            file.transactional_id_expiration_ms,
            &mut config.transactional_id_expiration,
        ),
        (
            args.producer_id_expiration_ms,
            file.producer_id_expiration_ms,
            &mut config.producer_id_expiration,
        ),
    ] {
        if let Some(ms) = flag.or(key) {
            *setting = Duration::from_millis(ms);
        }
    }
    if config.group_min_session_timeout > config.group_max_session_timeout {
        bail!(
            "group_min_session_timeout_ms ({}) must not exceed group_max_session_timeout_ms ({})",
            config.group_min_session_timeout.as_millis(),
            config.group_max_session_timeout.as_millis()
        );
    }
    if config.group_consumer_heartbeat_interval >= config.group_consumer_session_timeout {
        bail!(
            "group_consumer_heartbeat_interval_ms ({}) must be below group_consumer_session_timeout_ms ({})",
            config.group_consumer_heartbeat_interval.as_millis(),
            config.group_consumer_session_timeout.as_millis()
        );
    }
    for (name, flag, key, setting) in [
        (
            "group_max_size",
            args.group_max_size,
            file.group_max_size,
            &mut config.group_size_max,
        ),
        (
            "max_connections",
            args.max_connections,
            file.max_connections,
            &mut config.connections_max,
        ),
        (
            "max_connections_per_ip",
            args.max_connections_per_ip,
            file.max_connections_per_ip,
            &mut config.connections_per_ip_max,
        ),
        (
            "producer_ids_per_partition_max",
            args.producer_ids_per_partition_max,
            file.producer_ids_per_partition_max,
            &mut config.producer_ids_per_partition_max,
        ),
        (
            "transactional_ids_max",
            args.transactional_ids_max,
            file.transactional_ids_max,
            &mut config.transactional_ids_max,
        ),
    ] {
        match flag.or(key) {
            Some(0) => bail!("{name} must be at least 1"),
            Some(n) => *setting = n,
            None => {}
        }
    }
    if let Some(files) = args.open_files_max.or(file.open_files_max) {
        if files < strom_broker::OPEN_FILES_MIN {
            bail!(
                "open_files_max must be at least {}",
                strom_broker::OPEN_FILES_MIN
            );
        }
        config.open_files_max = Some(files);
    }
    if let Some(bytes) = args
        .queued_max_request_bytes
        .or(file.queued_max_request_bytes)
    {
        config.queued_request_bytes_max = bytes;
    }
    if let Some(text) = args
        .compression_type
        .clone()
        .or(file.compression_type.clone())
    {
        config.topic_defaults.compression_type =
            CompressionType::parse(&text).context("invalid compression_type")?;
    }
    Ok(())
}

/// Runs the broker until a signal asks it to stop.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    #[cfg(feature = "tools")]
    let pipelines_dir = args.pipelines.clone();
    let ServeConfig {
        broker: config,
        schema_registry_addr,
        schema_registry_tls,
        schema_registry_basic_auth,
    } = serve_config(args)?;
    match crate::fd_limit::raise_to_hard_limit() {
        Ok((before, now, hard)) => tracing::info!(
            soft_before = before,
            soft = now,
            hard,
            "open-file limit (segment files, within their budget, and connections hold descriptors)"
        ),
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-file limit"),
    }
    let registry_tls = match (&config.security.tls, schema_registry_tls) {
        (Some(tls), true) => Some(tls.clone()),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let data_dir = config.data_dir.clone();
        // Bound before the broker starts, so a taken port fails fast.
        let registry_listener = match schema_registry_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (schema registry)"))?,
            ),
            None => None,
        };
        let broker = Broker::start(config)
            .await
            .with_context(|| format!("cannot start on {}", data_dir.display()))?;
        let registry = match registry_listener {
            Some(listener) => Some(
                start_registry(&broker, listener, registry_tls, schema_registry_basic_auth).await?,
            ),
            None => None,
        };
        #[cfg(feature = "tools")]
        let pipelines = match &pipelines_dir {
            Some(dir) => {
                let bootstrap = broker.kafka_addr().to_string();
                let state = data_dir.join("pipelines");
                match tokio::task::block_in_place(|| {
                    crate::serve_pipelines::start_all(dir, &bootstrap, &state)
                }) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let _ = broker.shutdown().await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let signal = wait_for_signal().await?;
        tracing::info!(
            signal,
            "shutting down: finishing in-flight requests and closing logs"
        );
        #[cfg(feature = "tools")]
        if let Some(p) = pipelines {
            tokio::task::block_in_place(|| p.close());
        }
        if let Some((stop, task)) = registry {
            let _ = stop.send(());
            let _ = task.await;
        }
        broker.shutdown().await.context("clean shutdown failed")
    })
}

/// Rebuilds the registry from `_schemas` and serves its REST API on `listener`.
/// Returns the sender that stops it and its task.
async fn start_registry(
    broker: &strom_broker::BrokerHandle,
    listener: tokio::net::TcpListener,
    tls: Option<TlsConfig>,
    basic_auth: bool,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    use crate::schema_store::{TopicStore, SCHEMAS_TOPIC};
    let topic = broker
        .internal_topic(SCHEMAS_TOPIC, &[("cleanup.policy", "compact")])
        .context("cannot open the schema registry's topic")?;
    let store = std::sync::Arc::new(TopicStore::new(topic));
    let registry = strom_registry::Registry::open(store)
        .await
        .context("cannot rebuild the schema registry")?;
    let addr = listener
        .local_addr()
        .context("schema registry listener address")?;
    let acceptor = match &tls {
        Some(config) => Some(strom_broker::tls_acceptor(config).context("schema registry TLS")?),
        None => None,
    };
    let guard: Option<std::sync::Arc<dyn strom_registry::auth::Guard>> = basic_auth.then(|| {
        std::sync::Arc::new(crate::registry_guard::BrokerGuard::new(
            broker.embedded_security(),
        )) as _
    });
    let router = strom_registry::api::router_with_guard(registry, guard);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) =
            strom_registry::api::serve_with(listener, router, acceptor, shutdown).await
        {
            tracing::warn!(%error, "schema registry server failed");
        }
    });
    tracing::info!(
        schema_registry_addr = %addr,
        tls = tls.is_some(),
        basic_auth,
        "schema registry serving"
    );
    Ok((stop, task))
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_with_file(text: &str) -> (tempfile::NamedTempFile, ServeArgs) {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
        let args = ServeArgs {
            config: Some(file.path().to_path_buf()),
            ..ServeArgs::default()
        };
        (file, args)
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = broker_config(ServeArgs::default()).expect("defaults");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.kafka_addr.to_string(), "127.0.0.1:9092");
        assert_eq!(
            config.http_addr.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9644")
        );
        assert_eq!(config.advertised_addr, None);
        assert_eq!(config.topic_defaults.flush_policy, FlushPolicy::Always);
    }

    #[test]
    fn file_keys_apply_and_flags_win() {
        let (_file, mut args) = args_with_file(
            "data_dir = \"/tmp/x\"\nkafka_addr = \"127.0.0.1:19092\"\nadvertised_addr = \"kafka.example:9092\"\nhttp_addr = \"127.0.0.1:19644\"\nflush_policy = \"os\"\nnum_partitions = 3\ngroup_initial_rebalance_delay_ms = 0\noffsets_retention_minutes = 60\n",
        );
        args.kafka_addr = Some("127.0.0.1:29092".parse().expect("addr"));
        let config = broker_config(args).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.kafka_addr.to_string(), "127.0.0.1:29092");
        assert_eq!(
            config.advertised_addr.as_deref(),
            Some("kafka.example:9092")
        );
        assert_eq!(config.topic_defaults.flush_policy, FlushPolicy::Os);
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.group_initial_rebalance_delay, Duration::ZERO);
        assert_eq!(config.offsets_retention, Duration::from_secs(3600));
    }

    #[test]
    fn limits_and_compression_type_apply_under_kafkas_names() {
        let (_file, mut args) = args_with_file(
            "group_min_session_timeout_ms = 1000\ngroup_max_size = 5\nmax_connections = 50\nmax_connections_per_ip = 7\ntransactional_ids_max = 9\nqueued_max_request_bytes = 209715200\ntransactional_id_expiration_ms = 60000\nproducer_id_expiration_ms = 30000\ncompression_type = \"zstd\"\n",
        );
        args.max_connections = Some(60);
        let config = broker_config(args).expect("valid");
        assert_eq!(
            config.group_min_session_timeout,
            Duration::from_millis(1000)
        );
        assert_eq!(config.group_size_max, 5);
        assert_eq!(config.connections_max, 60, "the flag wins");
        assert_eq!(config.connections_per_ip_max, 7);
        assert_eq!(config.transactional_ids_max, 9);
        assert_eq!(config.queued_request_bytes_max, 209_715_200);
        assert_eq!(config.transactional_id_expiration, Duration::from_secs(60));
        assert_eq!(config.producer_id_expiration, Duration::from_secs(30));
        assert_eq!(config.topic_defaults.compression_type.to_string(), "zstd");
    }

    #[test]
    fn the_open_file_budget_is_derived_unless_set_and_has_a_floor() {
        assert_eq!(
            broker_config(ServeArgs::default())
                .expect("defaults")
                .open_files_max,
            None,
            "derived from the raised open-file limit at start"
        );
        let with_flag = |flag: Option<usize>| {
            let (file, mut args) = args_with_file("open_files_max = 5000\n");
            args.open_files_max = flag;
            (file, broker_config(args))
        };
        assert_eq!(with_flag(None).1.expect("valid").open_files_max, Some(5000));
        assert_eq!(
            with_flag(Some(256)).1.expect("valid").open_files_max,
            Some(256),
            "the flag wins"
        );
        let error = with_flag(Some(8)).1.expect_err("below the floor");
        assert!(error.to_string().contains("open_files_max"), "{error}");
    }

    #[test]
    fn security_tables_apply() {
        let (_file, mut args) = args_with_file(
            r#"
[[listeners]]
name = "secure"
address = "127.0.0.1:19093"
security_protocol = "SASL_SSL"
advertised_address = "kafka.example:19093"

[tls]
cert_file = "server.pem"
key_file = "server.key"
client_ca_file = "ca.pem"
client_auth = "requested"

[sasl]
mechanisms = ["SCRAM-SHA-512"]
connections_max_reauth_ms = 60000

[[users]]
name = "admin"
password = "admin-secret"

[authorizer]
enabled = true
super_users = ["User:admin"]
"#,
        );
        args.kafka_addr = Some("127.0.0.1:19092".parse().expect("addr"));
        let config = broker_config(args).expect("valid");
        let names: Vec<_> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["secure", "PLAINTEXT"]);
        assert_eq!(
            config.listeners[0].advertised_address.as_deref(),
            Some("kafka.example:19093")
        );
        assert_eq!(config.security.sasl.mechanisms, ["SCRAM-SHA-512"]);
        assert_eq!(config.security.sasl.connections_max_reauth_ms, Some(60_000));
        assert_eq!(config.security.users[0].name, "admin");
        assert!(!format!("{config:?}").contains("admin-secret"));
        assert!(config.security.authorizer.enabled);
        assert!(config.security.tls.is_some());
    }

    #[test]
    fn schema_registry_settings() {
        let config = serve_config(ServeArgs::default()).expect("defaults");
        assert_eq!(
            config
                .schema_registry_addr
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:8081")
        );
        assert!(!config.schema_registry_tls && !config.schema_registry_basic_auth);
        let (_file, mut args) = args_with_file(
            "schema_registry_addr = \"127.0.0.1:18081\"\nschema_registry_basic_auth = true\n",
        );
        args.schema_registry_enabled = Some(true);
        let config = serve_config(args).expect("valid");
        assert_eq!(
            config
                .schema_registry_addr
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:18081")
        );
        assert!(config.schema_registry_basic_auth);
        let (_file, args) = args_with_file("schema_registry_enabled = false\n");
        assert_eq!(
            serve_config(args).expect("valid").schema_registry_addr,
            None
        );
        let (_file, args) = args_with_file("schema_registry_tls = true\n");
        let err = serve_config(args).expect_err("tls without [tls]");
        assert!(format!("{err:#}").contains("[tls]"), "{err:#}");
    }

    #[test]
    fn bad_files_are_clear_errors() {
        for (text, needle) in [
            ("kafka_adr = \"x\"", "unknown field"),
            ("kafka_addr = \"nope\"", "invalid"),
            ("flush_policy = \"sometimes\"", "flush"),
            ("num_partitions = 0", "num_partitions"),
            ("log_cleanup_policy = \"shred\"", "log_cleanup_policy"),
            ("log_cleaner_dedupe_buffer_size = 10", "log_cleaner_dedupe_buffer_size"),
            ("log_cleaner_backoff_ms = 0", "log_cleaner_backoff_ms"),
            ("compression_type = \"brotli\"", "compression_type"),
            ("max_connections = 0", "max_connections"),
            ("group_max_size = 0", "group_max_size"),
            ("queued_max_request_bytes = 1024", "queued_max_request_bytes"),
            (
                "group_min_session_timeout_ms = 10\ngroup_max_session_timeout_ms = 5",
                "group_min_session_timeout_ms",
            ),
            (
                "[[listeners]]\nname = \"x\"\naddress = \"127.0.0.1:1\"\nsecurity_protocol = \"TLS\"",
                "unknown variant",
            ),
            ("[sasl]\nmechanism = []", "unknown field"),
        ] {
            let (_file, args) = args_with_file(text);
            let err = broker_config(args).expect_err(text);
            let message = format!("{err:#}");
            assert!(message.contains(needle), "{text}: {message}");
        }
    }
}
