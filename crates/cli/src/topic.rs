//! `strom topic create|list|describe|delete|alter-config`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AlterConfig, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;

use crate::client::{
    admin_error, admin_results, block_on, parse_key_value, partitions_of, print_deleted,
    topic_names, Connection,
};
use crate::log_dirs;
use crate::table::Table;

/// `strom topic …`: manage topics.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom topic create orders --partitions 3 --config retention.ms=86400000
  strom topic list
  strom topic describe orders
  strom topic alter-config orders --set flush.ms=1000 --delete retention.ms
  strom topic delete orders --brokers kafka1:9092")]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: i32,
        /// Replicas of each partition.
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic config (repeatable), e.g. `--config retention.ms=86400000`.
        #[arg(long, short, value_name = "KEY=VALUE", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// List topics with their partition counts.
    List,
    /// Show partitions (leader, replicas, log start and end offsets, size on disk) and
    /// configs with their sources.
    Describe {
        /// Topic name.
        name: String,
        /// strom's HTTP address, asked for the log cleaner's state of a compacted
        /// topic (`strom serve --http-addr`).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9644")]
        http_addr: String,
    },
    /// Delete topics and all their records.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic config overrides; other overrides are kept.
    AlterConfig {
        /// Topic name.
        name: String,
        /// Set an override (repeatable).
        #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove an override, back to the broker default (repeatable).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// Runs a `strom topic` command.
pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => create(connection, &name, partitions, replication_factor, &config),
        TopicCommand::List => list(connection),
        TopicCommand::Describe { name, http_addr } => describe(connection, &name, &http_addr),
        TopicCommand::Delete { names } => delete(connection, &names),
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(connection, &name, &set, &delete)
        }
    }
}

fn create(
    connection: &Connection,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    config: &[(String, String)],
) -> anyhow::Result<()> {
    let mut topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (key, value) in config {
        topic = topic.set(key, value);
    }
    let admin = connection.admin()?;
    let results = block_on(admin.create_topics([&topic], &connection.admin_options()))?
        .with_context(|| format!("cannot create topic {name}"))?;
    admin_results(results, "cannot create topic")?;
    println!("created topic {name} with {partitions} partition(s)");
    Ok(())
}

fn list(connection: &Connection) -> anyhow::Result<()> {
    let consumer = connection.consumer(None, &[])?;
    let metadata = connection.metadata(&consumer, None)?;
    let mut table = Table::new(&["TOPIC", "PARTITIONS"]);
    for name in topic_names(&metadata) {
        let count = partitions_of(&metadata, &name).len();
        table.row(vec![name, count.to_string()]);
    }
    print!("{}", table.render());
    Ok(())
}

fn describe(connection: &Connection, name: &str, http_addr: &str) -> anyhow::Result<()> {
    let consumer = connection.consumer(None, &[])?;
    let metadata = connection.metadata(&consumer, Some(name))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .context("topic missing from metadata")?;
    let brokers: BTreeMap<i32, String> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let sizes = sizes_on_disk(connection, name, topic.partitions(), &brokers);
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());

    println!("topic {name}: {} partition(s)", partitions.len());
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "LOG-END",
        "SIZE-BYTES",
    ]);
    for p in partitions {
        let (start, end) = consumer
            .fetch_watermarks(name, p.id(), connection.timeout())
            .with_context(|| format!("cannot read the offsets of {name}/{}", p.id()))?;
        let size = match &sizes {
            Ok(sizes) => sizes.get(&p.id()).map_or("-".to_owned(), i64::to_string),
            Err(_) => "-".to_owned(),
        };
        table.row(vec![
            p.id().to_string(),
            p.leader().to_string(),
            join_ids(p.replicas()),
            join_ids(p.isr()),
            start.to_string(),
            end.to_string(),
            size,
        ]);
    }
    print!("{}", table.render());
    if let Err(error) = sizes {
        eprintln!("strom: sizes on disk unknown: {error:#}");
    }

    let resource = describe_config(connection, name)?;
    let mut entries: Vec<&ConfigEntry> = resource.entries.iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    println!();
    let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for entry in entries {
        let value = if entry.is_sensitive {
            "(sensitive)".to_owned()
        } else {
            entry.value.clone().unwrap_or_else(|| "-".to_owned())
        };
        table.row(vec![
            entry.name.clone(),
            value,
            source_name(&entry.source).to_owned(),
        ]);
    }
    print!("{}", table.render());
    let compacted = resource.entries.iter().any(|e| {
        e.name == "cleanup.policy" && e.value.as_deref().is_some_and(|v| v.contains("compact"))
    });
    if compacted {
        match cleaner_state(http_addr, name, connection.timeout()) {
            Ok(table) => print!("\nlog cleaner:\n{}", table.render()),
            Err(error) => eprintln!(
                "strom: log cleaner state unknown: {error:#} (is --http-addr strom's HTTP address?)"
            ),
        }
    }
    Ok(())
}

/// The log cleaner's state of each partition, from strom's
/// `GET /v1/topics/{topic}/cleaner` (Kafka's protocol has no API for it).
fn cleaner_state(http_addr: &str, topic: &str, timeout: Duration) -> anyhow::Result<Table> {
    let body = http_get(http_addr, &format!("/v1/topics/{topic}/cleaner"), timeout)?;
    let partitions: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("the cleaner state is not JSON")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut table = Table::new(&[
        "PARTITION",
        "FIRST-DIRTY",
        "DIRTY-RATIO",
        "CLEANABLE-BYTES",
        "LAST-CLEANED",
        "STATE",
    ]);
    for p in partitions {
        let last = p["last_cleaned_ms"]
            .as_i64()
            .map_or("never (since start)".to_owned(), |ms| {
                format!("{:.1}s ago", (now_ms - ms) as f64 / 1000.0)
            });
        let state = match p["failed"].as_str() {
            Some(reason) => format!("failed: {reason}"),
            None if p["needs_cleaning"].as_bool() == Some(true) => "needs cleaning".to_owned(),
            None => "ok".to_owned(),
        };
        table.row(vec![
            p["partition"].to_string(),
            p["first_dirty_offset"].to_string(),
            format!("{:.2}", p["dirty_ratio"].as_f64().unwrap_or(0.0)),
            p["cleanable_bytes"].to_string(),
            last,
            state,
        ]);
    }
    Ok(table)
}

/// A plain HTTP/1.0 GET of strom's own HTTP endpoint; the body of a 200 answer.
fn http_get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("cannot read the answer of {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        bail!("GET {path} answered {status}: {}", body.trim());
    }
    Ok(body.to_owned())
}

/// Sizes of the partitions, asking each partition's leader.
fn sizes_on_disk(
    connection: &Connection,
    topic: &str,
    partitions: &[rdkafka::metadata::MetadataPartition],
    brokers: &BTreeMap<i32, String>,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        by_leader.entry(p.leader()).or_default().push(p.id());
    }
    let mut sizes = BTreeMap::new();
    for (leader, ids) in by_leader {
        let addr = brokers
            .get(&leader)
            .with_context(|| format!("leader {leader} is not in the metadata"))?;
        let found = log_dirs::partition_sizes(addr, topic, &ids, connection.timeout())?;
        sizes.extend(found.into_iter().filter(|(id, _)| ids.contains(id)));
    }
    Ok(sizes)
}

fn delete(connection: &Connection, names: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let admin = connection.admin()?;
    print_deleted(
        "topic",
        block_on(admin.delete_topics(&names, &connection.admin_options()))?,
    )
}

/// AlterConfigs replaces a topic's whole set of overrides, so the current overrides
/// are read first and carried over; only `set` and `delete` change.
fn alter_config(
    connection: &Connection,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
    }
    let resource = describe_config(connection, name)?;
    let mut overrides: BTreeMap<String, String> = resource
        .entries
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    for key in delete {
        if overrides.remove(key).is_none() {
            bail!("topic {name} has no override of {key} to delete");
        }
    }
    overrides.extend(set.iter().cloned());
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (key, value) in &overrides {
        alter = alter.set(key, value);
    }
    let admin = connection.admin()?;
    let results = block_on(admin.alter_configs([&alter], &connection.admin_options()))?
        .with_context(|| format!("cannot alter the configs of topic {name}"))?;
    for result in results {
        result.map_err(|(_, code)| admin_error("cannot alter the configs of topic", name, code))?;
    }
    for (key, value) in set {
        println!("set {key}={value} on topic {name}");
    }
    for key in delete {
        println!("removed the override of {key} on topic {name}");
    }
    Ok(())
}

fn describe_config(connection: &Connection, name: &str) -> anyhow::Result<ConfigResource> {
    let admin = connection.admin()?;
    let specifier = ResourceSpecifier::Topic(name);
    let results = block_on(admin.describe_configs([&specifier], &connection.admin_options()))?
        .with_context(|| format!("cannot describe the configs of topic {name}"))?;
    results
        .into_iter()
        .next()
        .context("empty DescribeConfigs response")?
        .map_err(|code| admin_error("cannot describe the configs of topic", name, code))
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "unknown",
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "dynamic-broker",
        ConfigSource::DynamicDefaultBroker => "dynamic-default-broker",
        ConfigSource::StaticBroker => "static-broker",
        ConfigSource::Default => "default",
    }
}

fn join_ids(ids: &[i32]) -> String {
    let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
    ids.join(",")
}
