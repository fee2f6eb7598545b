//! `strom serve`: flags and an optional TOML file (flags win) become a
//! [`BrokerConfig`]; the broker runs until SIGINT or SIGTERM, then shuts down cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use strom_broker::{
    AuthorizerConfig, Broker, BrokerConfig, CleanerConfig, CleanupPolicy, FlushPolicy,
    ListenerConfig, SaslConfig, TlsConfig, UserConfig,
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
}

impl FileConfig {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Flags over file over defaults.
fn broker_config(args: ServeArgs) -> anyhow::Result<BrokerConfig> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut config = BrokerConfig::default();
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
    Ok(config)
}

/// Runs the broker until a signal asks it to stop.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let config = broker_config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let data_dir = config.data_dir.clone();
        let broker = Broker::start(config)
            .await
            .with_context(|| format!("cannot start on {}", data_dir.display()))?;
        let signal = wait_for_signal().await?;
        tracing::info!(
            signal,
            "shutting down: finishing in-flight requests and closing logs"
        );
        broker.shutdown().await.context("clean shutdown failed")
    })
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
    fn bad_files_are_clear_errors() {
        for (text, needle) in [
            ("kafka_adr = \"x\"", "unknown field"),
            ("kafka_addr = \"nope\"", "invalid"),
            ("flush_policy = \"sometimes\"", "flush"),
            ("num_partitions = 0", "num_partitions"),
            ("log_cleanup_policy = \"shred\"", "log_cleanup_policy"),
            ("log_cleaner_dedupe_buffer_size = 10", "log_cleaner_dedupe_buffer_size"),
            ("log_cleaner_backoff_ms = 0", "log_cleaner_backoff_ms"),
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
