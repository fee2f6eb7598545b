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

/// A handle on a one-partition topic this process owns. The topic is created on the
/// first append, so a broker whose owner never writes shows no such topic.
#[derive(Clone)]
pub struct InternalTopic {
    cluster: Arc<Cluster>,
    name: String,
    configs: crate::cluster::topic_config::Overrides,
}

impl std::fmt::Debug for InternalTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTopic")
            .field("name", &self.name)
            .finish()
    }
}

impl BrokerHandle {
    /// The one-partition topic `name`, to be created with `configs` on the first
    /// append. If it exists already, `configs` it lacks are set now. A config the
    /// broker refuses is dropped with a warning (and tried again at the next start),
    /// so the topic works either way.
    pub fn internal_topic(
        &self,
        name: &str,
        configs: &[(&str, &str)],
    ) -> Result<InternalTopic, InternalTopicError> {
        let topic = InternalTopic {
            cluster: Arc::clone(&self.shared.cluster),
            name: name.to_owned(),
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        topic.update_configs();
        Ok(topic)
    }
}

impl InternalTopic {
    /// Sets the wanted configs an existing topic lacks.
    fn update_configs(&self) {
        let Some(topic) = self.cluster.topic(&self.name) else {
            return;
        };
        let missing: Vec<_> = self
            .configs
            .iter()
            .filter(|(k, v)| topic.overrides.get(*k) != Some(*v))
            .collect();
        if missing.is_empty() {
            return;
        }
        let result = self.cluster.alter_topic_configs(
            &self.name,
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
                topic = self.name,
                reason = refused.message,
                "keeping the topic's configs"
            );
        }
    }

    /// Creates the topic if it does not exist.
    fn ensure_created(&self) -> Result<(), InternalTopicError> {
        if self.cluster.topic(&self.name).is_some() {
            return Ok(());
        }
        let configs = if self
            .cluster
            .create_topic(&self.name, 1, self.configs.clone(), true)
            .is_ok()
        {
            self.configs.clone()
        } else {
            let accepted: crate::cluster::topic_config::Overrides = self
                .configs
                .iter()
                .filter(|(k, v)| {
                    let one = [((*k).clone(), (*v).clone())].into_iter().collect();
                    self.cluster.log_config(&one).is_ok()
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tracing::warn!(
                topic = self.name,
                "creating the topic without the configs the broker refuses"
            );
            accepted
        };
        match self.cluster.create_topic(&self.name, 1, configs, false) {
            Ok(_) => Ok(()),
            // Created meanwhile by a client: use it.
            Err(_) if self.cluster.topic(&self.name).is_some() => Ok(()),
            Err(e) => Err(self.error(e.message)),
        }
    }

    fn partition(&self) -> Result<Arc<Partition>, InternalTopicError> {
        self.cluster
            .topic(&self.name)
            .and_then(|t| t.partition(0).cloned())
            .ok_or_else(|| self.error("the topic does not exist".to_owned()))
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

    /// Appends `records` as one batch (creating the topic first if needed) and
    /// returns once it is on disk (blocking: call it from a blocking thread). Returns
    /// the offset of the first record.
    pub fn append(&self, records: &[InternalRecord]) -> Result<u64, InternalTopicError> {
        self.ensure_created()?;
        let partition = self.partition()?;
        let now = now_ms();
        let mut builder = BatchBuilder::new(now);
        for (key, value) in records {
            builder.push(key.as_deref(), value.as_deref(), now);
        }
        let mut batch = builder.finish();
        // The topic's compression.type applies to the owner's writes too.
        if let Some(converted) = partition
            .log
            .conform_compression(&batch)
            .map_err(|e| self.error(e.to_string()))?
        {
            batch = converted;
        }
        let info = partition
            .log
            .append(&mut batch)
            .map_err(|e| self.error(e.to_string()))?;
        partition
            .log
            .flush()
            .map_err(|e| self.error(e.to_string()))?;
        // Only now is the batch below the high watermark (under `flush.messages=1`),
        // so only now can a long-polling fetch see it.
        partition.appended.notify_waiters();
        Ok(info.base_offset)
    }

    /// Every record from the log start to the log end, oldest first; control batches
    /// (transaction markers) skipped; nothing if the topic does not exist yet
    /// (blocking).
    pub fn read_all(&self) -> Result<Vec<InternalRecord>, InternalTopicError> {
        if self.cluster.topic(&self.name).is_none() {
            return Ok(Vec::new());
        }
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
