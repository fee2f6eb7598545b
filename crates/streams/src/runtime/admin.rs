//! Start-up checks and internal topics: source topics must exist, the inputs of a
//! sub-topology must be co-partitioned, and repartition, retry and changelog topics are
//! created with the right partition counts (changelogs with `cleanup.policy=compact`).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use super::config::StreamsConfig;
use crate::error::StreamsError;
use crate::topology::{TopicName, Topology};

fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

/// Partition count per sub-topology, after the checks.
pub(crate) type Partitions = BTreeMap<u32, i32>;

pub(crate) fn client_config(config: &StreamsConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.client_config {
        c.set(k, v);
    }
    c
}

fn topic_partitions(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
) -> Result<BTreeMap<String, i32>, StreamsError> {
    let md = admin.inner().fetch_metadata(None, timeout).map_err(kafka)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Checks sources and co-partitioning, creates internal topics; returns partitions per
/// sub-topology.
pub(crate) fn prepare(
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<Partitions, StreamsError> {
    let app = &config.application_id;
    let admin: AdminClient<DefaultClientContext> = client_config(config).create().map_err(kafka)?;
    let existing = topic_partitions(&admin, config.request_timeout)?;
    let inner = &topology.inner;

    // Sub-topologies with external sources: those must exist and agree.
    let mut subs: Partitions = BTreeMap::new();
    for sub in &inner.subtopologies {
        let mut topics = Vec::new();
        let mut counts = Vec::new();
        for &s in &sub.sources {
            if let TopicName::External(t) = &inner.sources[s].topic {
                let n = *existing
                    .get(t)
                    .ok_or_else(|| StreamsError::MissingSourceTopic(t.clone()))?;
                topics.push(t.clone());
                counts.push(n);
            }
        }
        if let Some(&first) = counts.first() {
            if counts.iter().any(|&c| c != first) {
                return Err(StreamsError::NotCoPartitioned {
                    topics,
                    partitions: counts,
                });
            }
            subs.insert(sub.id, first);
        }
    }
    // Repartition topics: as many partitions as the sub-topology that reads them (when it
    // has external inputs), else as the one that writes them.
    let mut repartition: BTreeMap<TopicName, i32> = BTreeMap::new();
    for _round in 0..=inner.subtopologies.len() {
        for sub in &inner.subtopologies {
            for t in &sub.repartition_sinks {
                let reader = inner
                    .subtopologies
                    .iter()
                    .find(|r| r.sources.iter().any(|&s| &inner.sources[s].topic == t));
                let count = reader
                    .and_then(|r| subs.get(&r.id))
                    .or_else(|| subs.get(&sub.id))
                    .copied();
                if let Some(c) = count {
                    repartition.insert(t.clone(), c);
                }
            }
        }
        for sub in &inner.subtopologies {
            if subs.contains_key(&sub.id) {
                continue;
            }
            let counts: Vec<i32> = sub
                .sources
                .iter()
                .filter_map(|&s| repartition.get(&inner.sources[s].topic).copied())
                .collect();
            if let Some(&c) = counts.iter().max() {
                subs.insert(sub.id, c);
            }
        }
    }
    for sub in &inner.subtopologies {
        if !subs.contains_key(&sub.id) {
            return Err(StreamsError::Topology(format!(
                "cannot derive the partition count of sub-topology {}",
                sub.id
            )));
        }
    }

    // (topic, partitions, configs)
    type Configs<'a> = Vec<(&'a str, &'a str)>;
    let mut wanted: Vec<(String, i32, Configs<'_>)> = Vec::new();
    for (t, &n) in &repartition {
        wanted.push((t.resolve(app), n, vec![("cleanup.policy", "delete")]));
    }
    for sub in &inner.subtopologies {
        for &s in &sub.sources {
            let source = &inner.sources[s];
            if source.retry_topic {
                // As many partitions as the sub-topology: a record keeps its task's
                // partition. Records stay until consumed (purged after commit), however
                // old their timestamps: a time-based retention would drop retries of
                // reprocessed old data, or of an application stopped for a while.
                wanted.push((
                    source.topic.resolve(app),
                    subs[&sub.id],
                    vec![("cleanup.policy", "delete"), ("retention.ms", "-1")],
                ));
            }
        }
        for store in &sub.stores {
            wanted.push((
                Topology::changelog_topic(app, store),
                subs[&sub.id],
                vec![("cleanup.policy", config.changelog_cleanup_policy.as_str())],
            ));
        }
    }
    let mut to_create = Vec::new();
    for (name, n, configs) in &wanted {
        match existing.get(name) {
            Some(&have) if have != *n => {
                return Err(StreamsError::Topology(format!(
                    "internal topic {name} has {have} partitions, the topology needs {n}"
                )))
            }
            Some(_) => {}
            None => {
                let replication = if config.replication_factor > 0 {
                    TopicReplication::Fixed(config.replication_factor)
                } else {
                    TopicReplication::Fixed(-1)
                };
                let mut topic = NewTopic::new(name, *n, replication);
                for (k, v) in configs {
                    topic = topic.set(k, v);
                }
                to_create.push(topic);
            }
        }
    }
    if !to_create.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(kafka)?;
        let options = AdminOptions::new().operation_timeout(Some(config.request_timeout));
        let results = rt
            .block_on(admin.create_topics(&to_create, &options))
            .map_err(kafka)?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StreamsError::Kafka(format!(
                        "creating internal topic {topic}: {code}"
                    )));
                }
            }
        }
        tracing::info!(topics = ?to_create.iter().map(|t| t.name).collect::<Vec<_>>(), "created internal topics");
    }
    Ok(subs)
}
