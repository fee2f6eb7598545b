//! The global thread: reads every partition of each global table's topic, first up to
//! the end (before any stream thread starts, so lookups see the whole table), then
//! follows updates until shutdown.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::admin::client_config;
use super::Shared;
use crate::error::StreamsError;

fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

/// Loads the global tables and starts the thread that keeps them current; `None`
/// without global tables.
pub(crate) fn start(shared: &Arc<Shared>) -> Result<Option<JoinHandle<()>>, StreamsError> {
    let globals = shared.topology.global_tables();
    if globals.is_empty() {
        return Ok(None);
    }
    let cfg = &shared.config;
    // One consumer per topic: end-of-partition events name only the partition.
    let mut consumers = Vec::new();
    for (topic, store) in &globals {
        let mut c = client_config(cfg);
        c.set(
            "group.id",
            format!("{}-global-{}", cfg.application_id, shared.instance_id),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
        let consumer: BaseConsumer = c.create().map_err(kafka)?;
        let md = consumer
            .fetch_metadata(Some(topic), cfg.request_timeout)
            .map_err(kafka)?;
        let partitions = md
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        if partitions == 0 {
            return Err(StreamsError::MissingSourceTopic(topic.clone()));
        }
        let mut tpl = TopicPartitionList::new();
        let mut pending: BTreeSet<i32> = BTreeSet::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(kafka)?;
            pending.insert(p);
        }
        consumer.assign(&tpl).map_err(kafka)?;
        let mut last_progress = Instant::now();
        while !pending.is_empty() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if let Some(k) = m.key() {
                        shared
                            .globals
                            .apply(store, k.to_vec(), m.payload().map(<[u8]>::to_vec));
                    }
                    last_progress = Instant::now();
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => tracing::warn!(error = %e, topic, "global table consumer"),
                None => {}
            }
            if last_progress.elapsed() > cfg.request_timeout {
                return Err(kafka(format!(
                    "loading global table {topic} made no progress for {:?}",
                    cfg.request_timeout
                )));
            }
        }
        tracing::info!(topic, "global table loaded");
        consumers.push((store.clone(), consumer));
    }
    let shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("{}-global", shared.config.application_id))
        .spawn(move || {
            while !shared.shutdown.load(Ordering::Relaxed) {
                for (store, consumer) in &consumers {
                    match consumer.poll(Duration::from_millis(20)) {
                        Some(Ok(m)) => {
                            if let Some(k) = m.key() {
                                shared.globals.apply(
                                    store,
                                    k.to_vec(),
                                    m.payload().map(<[u8]>::to_vec),
                                );
                            }
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                        Some(Err(e)) => tracing::warn!(error = %e, "global table consumer"),
                    }
                }
            }
        })
        .map_err(|e| StreamsError::Store(e.into()))?;
    Ok(Some(handle))
}
