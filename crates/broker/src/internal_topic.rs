//! Topics the embedding binary keeps its own state in, through the broker's storage
//! rather than over the network: the schema registry's `_schemas`. They are ordinary
//! one-partition topics (Kafka clients see, read and may even write them, as with a
//! Confluent deployment); this is only a shortcut past the protocol for the process
//! that owns them.
//!
//! Appends go through the same log and wake-ups as Produce (non-idempotent batches),
//! and are synced before they return whatever the topic's flush policy, because the
//! owner acknowledges its own clients on the strength of it.

use std::sync::Arc;

use strom_log::batch::builder::BatchBuilder;
use strom_log::batch::records::Records;
use strom_log::batch::validate_all;
use strom_log::now_ms;

use crate::broker::BrokerHandle;
use crate::cluster::{Cluster, Partition};

/// How much one read of the log asks for while replaying.
const READ_BYTES_MAX: usize = 1024 * 1024;

/// A record's key and value; `None` is a null key or a tombstone.
pub type InternalRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Why an internal-topic operation failed.
#[derive(Debug, thiserror::Error)]
#[error("internal topic {topic}: {reason}")]
pub struct InternalTopicError {
    /// The topic.
    pub topic: String,
    /// What went wrong.
    pub reason: String,
}

/// A handle on a one-partition topic this process owns.
#[derive(Clone)]
pub struct InternalTopic {
    cluster: Arc<Cluster>,
    name: String,
}

impl std::fmt::Debug for InternalTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTopic")
            .field("name", &self.name)
            .finish()
    }
}

impl BrokerHandle {
    /// The one-partition topic `name`, created with `configs` if it does not exist.
    /// A config the broker refuses (`cleanup.policy=compact` before log compaction
    /// landed) is dropped with a warning and tried again at the next start, so the
    /// topic works either way and becomes compacted once the broker supports it.
    pub fn internal_topic(
        &self,
        name: &str,
        configs: &[(&str, &str)],
    ) -> Result<InternalTopic, InternalTopicError> {
        let cluster = Arc::clone(&self.shared.cluster);
        let error = |reason: String| InternalTopicError {
            topic: name.to_owned(),
            reason,
        };
        let wanted: crate::cluster::topic_config::Overrides = configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match cluster.topic(name) {
            None => {
                if let Err(refused) = cluster.create_topic(name, 1, wanted.clone(), true) {
                    tracing::warn!(
                        topic = name,
                        reason = refused.message,
                        "creating the topic without the configs the broker refuses"
                    );
                    let accepted = wanted
                        .iter()
                        .filter(|(k, v)| {
                            let one = [((*k).clone(), (*v).clone())].into_iter().collect();
                            cluster.log_config(&one).is_ok()
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    cluster
                        .create_topic(name, 1, accepted, false)
                        .map_err(|e| error(e.message))?;
                } else {
                    cluster
                        .create_topic(name, 1, wanted, false)
                        .map_err(|e| error(e.message))?;
                }
            }
            Some(topic) => {
                let missing: Vec<_> = wanted
                    .iter()
                    .filter(|(k, v)| topic.overrides.get(*k) != Some(*v))
                    .collect();
                if !missing.is_empty() {
                    let result = cluster.alter_topic_configs(
                        name,
                        |current| {
                            let mut next = current.clone();
                            for (k, v) in &missing {
                                next.insert((*k).clone(), (*v).clone());
                            }
                            Ok(next)
                        },
                        false,
                    );
                    if let Err(refused) = result {
                        tracing::warn!(
                            topic = name,
                            reason = refused.message,
                            "keeping the topic's configs"
                        );
                    }
                }
            }
        }
        Ok(InternalTopic {
            cluster,
            name: name.to_owned(),
        })
    }
}

impl InternalTopic {
    fn partition(&self) -> Result<Arc<Partition>, InternalTopicError> {
        self.cluster
            .topic(&self.name)
            .and_then(|t| t.partition(0).cloned())
            .ok_or_else(|| self.error("the topic was deleted".to_owned()))
    }

    fn error(&self, reason: String) -> InternalTopicError {
        InternalTopicError {
            topic: self.name.clone(),
            reason,
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's current configs (explicit overrides only).
    pub fn configs(&self) -> Vec<(String, String)> {
        self.cluster
            .topic(&self.name)
            .map(|t| t.overrides.clone().into_iter().collect())
            .unwrap_or_default()
    }

    /// Appends `records` as one batch and returns once it is on disk (blocking: call
    /// it from a blocking thread). Returns the offset of the first record.
    pub fn append(&self, records: &[InternalRecord]) -> Result<u64, InternalTopicError> {
        let partition = self.partition()?;
        let now = now_ms();
        let mut builder = BatchBuilder::new(now);
        for (key, value) in records {
            builder.push(key.as_deref(), value.as_deref(), now);
        }
        let mut batch = builder.finish();
        let info = partition
            .log
            .append(&mut batch)
            .map_err(|e| self.error(e.to_string()))?;
        partition.appended.notify_waiters();
        partition
            .log
            .flush()
            .map_err(|e| self.error(e.to_string()))?;
        Ok(info.base_offset)
    }

    /// Every record from the log start to the log end, oldest first; control batches
    /// (transaction markers) skipped (blocking).
    pub fn read_all(&self) -> Result<Vec<InternalRecord>, InternalTopicError> {
        let partition = self.partition()?;
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        let decompressed_max = log.config().decompressed_bytes_max;
        let mut out = Vec::new();
        while offset < end {
            let read = log
                .read(offset, READ_BYTES_MAX, None)
                .map_err(|e| self.error(e.to_string()))?;
            if read.records.is_empty() {
                break;
            }
            for batch in validate_all(&read.records) {
                let (position, header) =
                    batch.map_err(|(at, e)| self.error(format!("batch at byte {at}: {e}")))?;
                let next = header.last_offset() as u64 + 1;
                if header.is_control() {
                    offset = offset.max(next);
                    continue;
                }
                let bytes = &read.records[position..position + header.size_bytes()];
                let records =
                    Records::new(bytes, decompressed_max).map_err(|e| self.error(e.to_string()))?;
                for record in records.iter() {
                    let record = record.map_err(|e| self.error(e.to_string()))?;
                    if (record.offset as u64) < offset {
                        continue;
                    }
                    out.push((
                        record.key.map(<[u8]>::to_vec),
                        record.value.map(<[u8]>::to_vec),
                    ));
                }
                offset = offset.max(next);
            }
        }
        Ok(out)
    }
}
