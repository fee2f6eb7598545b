//! The connection every client command shares: `--brokers`, `--timeout` and `-X`
//! client properties, turned into librdkafka clients (through the `rdkafka` crate) that
//! talk to any Kafka-protocol broker, strom or Apache Kafka.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;

/// Flags that say which cluster to talk to and how long to wait for it.
#[derive(Debug, Args, Clone)]
pub struct Connection {
    /// Bootstrap broker(s), comma-separated.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Give up on a request after this many seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Extra librdkafka client property (repeatable), e.g. `-X security.protocol=ssl`.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub property: Vec<(String, String)>,
}

impl Connection {
    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Client properties: bootstrap servers and the request timeout, then `settings`,
    /// then the `-X` properties (which win).
    pub fn config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "strom-cli")
            .set("socket.timeout.ms", (self.timeout * 1000).to_string());
        for (key, value) in settings {
            config.set(*key, *value);
        }
        for (key, value) in &self.property {
            config.set(key, value);
        }
        config
    }

    /// An admin client.
    pub fn admin(&self) -> anyhow::Result<AdminClient<DefaultClientContext>> {
        self.config(&[])
            .create()
            .context("cannot create an admin client")
    }

    /// Admin request options with this connection's timeout.
    pub fn admin_options(&self) -> AdminOptions {
        AdminOptions::new().request_timeout(Some(self.timeout()))
    }

    /// A consumer that never joins a group (it is assigned partitions, or only asks
    /// for metadata and offsets); with `group` set it reads and commits that group's
    /// offsets. `settings` are extra client properties.
    pub fn consumer(
        &self,
        group: Option<&str>,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<BaseConsumer> {
        let mut all = vec![
            ("group.id", group.unwrap_or("strom-cli")),
            ("enable.auto.commit", "false"),
        ];
        all.extend_from_slice(settings);
        self.config(&all)
            .create()
            .context("cannot create a consumer")
    }

    /// Cluster metadata, of one topic or of all; a missing topic is an error.
    pub fn metadata(
        &self,
        consumer: &BaseConsumer,
        topic: Option<&str>,
    ) -> anyhow::Result<Metadata> {
        let metadata = consumer
            .fetch_metadata(topic, self.timeout())
            .with_context(|| format!("cannot fetch metadata from {}", self.brokers))?;
        if let Some(name) = topic {
            let found = metadata.topics().iter().find(|t| t.name() == name);
            match found.and_then(|t| t.error()) {
                None if found.is_some_and(|t| !t.partitions().is_empty()) => {}
                Some(error) => bail!(
                    "topic {name}: {}",
                    rdkafka::error::RDKafkaErrorCode::from(error)
                ),
                None => bail!("topic {name} does not exist"),
            }
        }
        Ok(metadata)
    }
}

/// Runs an rdkafka future (admin requests) to completion on a small runtime.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// The names in per-item admin results (topics, groups), or an error for the first
/// item that failed: `what` says what was being done, e.g. "cannot delete topic".
pub fn admin_results(
    results: Vec<Result<String, (String, RDKafkaErrorCode)>>,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    results
        .into_iter()
        .map(|result| result.map_err(|(name, code)| admin_error(what, &name, code)))
        .collect()
}

/// Prints `deleted KIND NAME` for each deleted topic or group, or fails on the first
/// that could not be deleted.
pub fn print_deleted(
    kind: &str,
    results: KafkaResult<Vec<Result<String, (String, RDKafkaErrorCode)>>>,
) -> anyhow::Result<()> {
    let results = results.with_context(|| format!("cannot delete {kind}s"))?;
    for name in admin_results(results, &format!("cannot delete {kind}"))? {
        println!("deleted {kind} {name}");
    }
    Ok(())
}

/// A one-line error for a failed admin operation on `name`.
pub fn admin_error(what: &str, name: &str, code: RDKafkaErrorCode) -> anyhow::Error {
    anyhow::anyhow!("{what} {name}: {code}")
}

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Partition ids of `topic` in `metadata`, in order.
pub fn partitions_of(metadata: &Metadata, topic: &str) -> Vec<i32> {
    let mut ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    ids.sort_unstable();
    ids
}

/// Names of the non-internal topics in `metadata`, sorted.
pub fn topic_names(metadata: &Metadata) -> Vec<String> {
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| t.name().to_owned())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_owned(), "b=c".to_owned()))
        );
        assert_eq!(parse_key_value("a="), Ok(("a".to_owned(), String::new())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
    }
}
