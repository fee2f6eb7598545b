//! The metadata log: every change to topics (create, add partitions, alter configs,
//! delete) as one JSON record in an internal partition log, synced before the change
//! takes effect and replayed at start. The same storage engine and crash recovery
//! that protect data protect metadata.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strom_log::{PartitionLog, TopicPartition};
use uuid::Uuid;

use super::event_log;
use super::topic_config::Overrides;
use crate::error::StartError;
use crate::security::SecurityEvent;

/// Name of the internal topic holding the metadata log (as KRaft names it). Clients
/// never see it and cannot create it.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

/// The metadata log's partition.
pub(crate) fn metadata_partition() -> TopicPartition {
    TopicPartition::new(METADATA_TOPIC, 0)
}

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum MetadataEvent {
    /// A topic was created.
    TopicCreated {
        /// Topic name.
        name: String,
        /// Topic id (KIP-516).
        id: Uuid,
        /// Partition count.
        partitions: i32,
        /// Config overrides.
        configs: Overrides,
    },
    /// A topic's partition count grew to `partitions`.
    PartitionsCreated {
        /// Topic name.
        name: String,
        /// New partition count.
        partitions: i32,
    },
    /// A topic's config overrides were replaced by `configs`.
    TopicConfigsSet {
        /// Topic name.
        name: String,
        /// The complete new set of overrides.
        configs: Overrides,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Topic name.
        name: String,
    },
    /// Credentials or ACLs changed (see `security`); the topic table ignores these.
    Security(SecurityEvent),
}

/// A topic as the metadata log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicRecord {
    /// Topic id.
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
    /// Config overrides.
    pub configs: Overrides,
}

/// Applies `event` to the topic table.
pub(crate) fn apply(topics: &mut BTreeMap<String, TopicRecord>, event: &MetadataEvent) {
    match event {
        MetadataEvent::TopicCreated {
            name,
            id,
            partitions,
            configs,
        } => {
            topics.insert(
                name.clone(),
                TopicRecord {
                    id: *id,
                    partitions: *partitions,
                    configs: configs.clone(),
                },
            );
        }
        MetadataEvent::PartitionsCreated { name, partitions } => {
            if let Some(topic) = topics.get_mut(name) {
                topic.partitions = topic.partitions.max(*partitions);
            }
        }
        MetadataEvent::TopicConfigsSet { name, configs } => {
            if let Some(topic) = topics.get_mut(name) {
                topic.configs = configs.clone();
            }
        }
        MetadataEvent::TopicDeleted { name } => {
            topics.remove(name);
        }
        MetadataEvent::Security(_) => {}
    }
}

/// Reads the whole metadata log and returns the topic table it describes.
pub(crate) fn replay(log: &PartitionLog) -> Result<Replayed, StartError> {
    let mut replayed = Replayed::default();
    event_log::replay(log, |event: MetadataEvent| {
        match &event {
            MetadataEvent::TopicDeleted { name } => {
                replayed.deleted.insert(name.clone());
            }
            MetadataEvent::TopicCreated { name, .. } => {
                replayed.deleted.remove(name);
            }
            _ => {}
        }
        apply(&mut replayed.topics, &event)
    })?;
    Ok(replayed)
}

/// What the metadata log says at start.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The topics, by name.
    pub topics: BTreeMap<String, TopicRecord>,
    /// Topics deleted (and not created again) in the part of the log still kept.
    pub deleted: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::event_log::{self, event_log_config};
    use super::*;

    #[test]
    fn events_replay_to_the_same_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(&dir.path().join("m-0"), event_log_config()).expect("open");
        let id = Uuid::new_v4();
        let events = vec![
            MetadataEvent::TopicCreated {
                name: "a".into(),
                id,
                partitions: 2,
                configs: Overrides::new(),
            },
            MetadataEvent::TopicCreated {
                name: "b".into(),
                id: Uuid::new_v4(),
                partitions: 1,
                configs: Overrides::new(),
            },
            MetadataEvent::PartitionsCreated {
                name: "a".into(),
                partitions: 5,
            },
            MetadataEvent::TopicConfigsSet {
                name: "a".into(),
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            },
            MetadataEvent::TopicDeleted { name: "b".into() },
        ];
        let mut expected = BTreeMap::new();
        for event in &events {
            event_log::append(&log, std::slice::from_ref(event)).expect("append");
            apply(&mut expected, event);
        }
        log.close().expect("close");
        let log = PartitionLog::open(&dir.path().join("m-0"), event_log_config()).expect("reopen");
        let replayed = replay(&log).expect("replay");
        assert_eq!(replayed.deleted, ["b".to_string()].into());
        let topics = replayed.topics;
        assert_eq!(topics, expected);
        assert_eq!(topics.len(), 1);
        assert_eq!(topics["a"].partitions, 5);
        assert_eq!(topics["a"].id, id);
        assert_eq!(topics["a"].configs["retention.ms"], "1000");
    }
}
