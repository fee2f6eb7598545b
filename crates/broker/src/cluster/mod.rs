//! The cluster's state on this node: its identity, its topics and their partition
//! logs, and the changes to them (create, delete, add partitions, alter configs), each
//! made durable in the metadata log before it takes effect.

pub(crate) mod event_log;
pub(crate) mod identity;
pub(crate) mod metadata_log;
mod partition;
pub(crate) mod producer_snapshot;
pub(crate) mod producer_state;
pub(crate) mod topic_config;

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use kafka_protocol::ResponseError;
use strom_log::{
    is_valid_topic_name, CleanerStats, CleaningOutcome, FileBudget, LogConfig, LogManager,
    Maintenance, MaintenanceConfig, PartitionLog, TopicPartition,
};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::StartError;
use identity::Identity;
use metadata_log::{MetadataEvent, TopicRecord, METADATA_TOPIC};
pub(crate) use partition::Partition;
use topic_config::Overrides;

/// Internal topic holding committed offsets and group membership.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Internal topic holding the transaction coordinator's state.
pub(crate) const TRANSACTIONS_TOPIC: &str = "__transaction_state";

/// Topics the broker keeps for itself: never listed, never created by clients.
pub(crate) const INTERNAL_TOPICS: [&str; 3] = [METADATA_TOPIC, OFFSETS_TOPIC, TRANSACTIONS_TOPIC];

/// Most partitions one topic may have; keeps a single request from creating an
/// unbounded number of directories and open files.
pub(crate) const PARTITIONS_MAX: i32 = 10_000;

/// A topic: an immutable snapshot, replaced as a whole when it changes.
pub(crate) struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Explicitly set configs.
    pub overrides: Overrides,
    /// The config its logs run with (defaults plus overrides).
    pub log_config: LogConfig,
    /// Partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// Partition `index`, if the topic has it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// Why an admin change was refused: the Kafka error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdminError {
    /// Kafka error code.
    pub code: ResponseError,
    /// Human-readable reason.
    pub message: String,
}

impl AdminError {
    /// An error with this code and message.
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

impl From<strom_log::LogError> for AdminError {
    fn from(e: strom_log::LogError) -> Self {
        AdminError::new(crate::protocol::log_error_code(&e), e.to_string())
    }
}

#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// This node's view of the cluster.
pub(crate) struct Cluster {
    /// Node and cluster ids.
    pub identity: Identity,
    /// The broker's configuration.
    pub config: BrokerConfig,
    logs: Arc<LogManager>,
    metadata_log: Arc<PartitionLog>,
    topics: RwLock<Topics>,
    /// Serializes metadata changes: check, append, apply happen as one step.
    admin: Mutex<()>,
    maintenance: Mutex<Option<Maintenance>>,
    /// The log cleaner thread (compacted topics).
    cleaner: Mutex<Option<Maintenance>>,
    /// The log cleaner's totals, for `/metrics`.
    pub cleaner_stats: Arc<CleanerStats>,
    /// The producer-snapshot thread and the sender whose drop stops it.
    snapshots: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Cluster {
    /// The open-file budget every partition log's segment files share.
    pub fn file_budget(&self) -> &Arc<FileBudget> {
        self.logs.file_budget()
    }

    /// Opens the data directory: locks it, recovers every log, replays the metadata
    /// log, creates logs the metadata names but the disk lacks, removes the logs of
    /// deleted topics and sets aside (under `orphaned/`) other logs the metadata does
    /// not know, without opening either.
    pub fn open(config: BrokerConfig) -> Result<Self, StartError> {
        let defaults = config.topic_defaults.clone();
        defaults
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let internal = |tp: &TopicPartition| INTERNAL_TOPICS.contains(&tp.topic.as_str());
        let config_for = |tp: &TopicPartition| {
            if internal(tp) {
                event_log::event_log_config()
            } else {
                defaults.clone()
            }
        };
        let budget = FileBudget::new(
            config
                .open_files_max
                .unwrap_or_else(strom_log::default_open_files_max),
        );
        tracing::info!(
            open_files_max = budget.open_files_max(),
            "open-file budget of segment files (least recently used closed beyond it)"
        );
        // The internal logs first: the metadata log says which of the others exist.
        let logs = Arc::new(LogManager::open_first(
            &config.data_dir,
            &budget,
            internal,
            config_for,
        )?);
        let identity = Identity::load_or_create(&config.data_dir)?;
        let metadata_tp = metadata_log::metadata_partition();
        let metadata_log = match logs.get(&metadata_tp) {
            Some(log) => log,
            None => logs.create(&metadata_tp, event_log::event_log_config())?,
        };
        let metadata_log::Replayed {
            topics: records,
            deleted,
        } = metadata_log::replay(&metadata_log)?;
        let unknown = logs.open_rest(
            |tp| {
                records
                    .get(&tp.topic)
                    .is_some_and(|t| tp.partition < t.partitions)
            },
            config_for,
        )?;
        // Directories the metadata does not name, never opened: those of a deleted
        // topic (a crash between a delete's two steps) are removed; the others (a
        // crash between a create's two steps, or anything unexplained) are kept, out
        // of the way.
        for partition in unknown {
            if deleted.contains(&partition.topic) {
                logs.remove_unopened(&partition)?;
                tracing::info!(%partition, "removed a partition directory of a deleted topic");
            } else {
                let moved_to = logs.set_aside_unopened(&partition)?;
                tracing::warn!(%partition, moved_to = %moved_to.display(), "a partition directory the metadata does not know was set aside");
            }
        }
        let mut topics = Topics::default();
        for (name, record) in &records {
            let topic = open_topic(&logs, &defaults, name, record)?;
            topics.by_id.insert(topic.id, Arc::clone(&topic));
            topics.by_name.insert(name.clone(), topic);
        }
        let maintenance = logs.spawn_maintenance(MaintenanceConfig::default());
        tracing::info!(
            node_id = identity.node_id,
            cluster_id = %identity.cluster_id,
            topics = topics.by_name.len(),
            recovered_clean = logs.recovered_clean(),
            "cluster state loaded"
        );
        Ok(Cluster {
            identity,
            config,
            logs,
            metadata_log,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            maintenance: Mutex::new(Some(maintenance)),
            cleaner: Mutex::new(None),
            cleaner_stats: Arc::new(CleanerStats::default()),
            snapshots: Mutex::new(None),
        })
    }

    /// Starts the log cleaner thread. After a cleaning that removed abort markers, the
    /// partition forgets those aborted transactions.
    pub fn spawn_cleaner(self: &Arc<Self>) {
        let cluster = Arc::downgrade(self);
        let on_cleaned = Box::new(move |tp: &TopicPartition, outcome: &CleaningOutcome| {
            if outcome.removed_abort_markers.is_empty() {
                return;
            }
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            let partition = cluster
                .topic(&tp.topic)
                .and_then(|t| t.partitions.get(tp.partition as usize).cloned());
            if let Some(partition) = partition {
                if let Err(error) = partition.forget_aborted(&outcome.removed_abort_markers) {
                    tracing::warn!(%tp, %error, "cannot snapshot producers after cleaning");
                }
            }
        });
        let cleaner = self.logs.spawn_cleaner(
            self.config.cleaner,
            Arc::clone(&self.cleaner_stats),
            on_cleaned,
        );
        *self.cleaner.lock().unwrap_or_else(|e| e.into_inner()) = Some(cleaner);
    }

    /// Starts the thread that snapshots producer states every second where due, so
    /// that recovery replays a bounded part of each log.
    pub fn spawn_snapshots(self: &Arc<Self>) {
        let (stop, stopped) = mpsc::channel::<()>();
        let cluster = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("strom-snapshots".into())
            .spawn(move || {
                // Ticks every second until the sender is dropped.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_secs(1))
                {
                    match cluster.upgrade() {
                        Some(cluster) => cluster.snapshot_producers(false),
                        None => break,
                    }
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the snapshot thread: {e}"));
        *self.snapshots.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, thread));
    }

    /// Snapshots every partition's producers where due (all that changed, with
    /// `force`), after forgetting producers idle longer than `producer.id.expiration.ms`.
    fn snapshot_producers(&self, force: bool) {
        let cutoff_ms = strom_log::now_ms()
            .saturating_sub(self.config.producer_id_expiration.as_millis() as i64);
        for topic in self.topics() {
            for partition in &topic.partitions {
                let expired = partition.producers().expire(cutoff_ms);
                if expired > 0 {
                    tracing::debug!(
                        topic = topic.name,
                        partition = partition.index,
                        expired,
                        "idle producer ids expired"
                    );
                }
                if let Err(error) = partition.snapshot_producers(force) {
                    tracing::warn!(%error, topic = topic.name, partition = partition.index, "producer snapshot failed");
                }
            }
        }
    }

    /// Writes the markers ending `producer_id`'s transaction in `partitions` (skipping
    /// partitions that no longer exist): all are appended first, then their syncs
    /// are awaited together, one thread per partition, so a transaction over many
    /// partitions costs about one fdatasync, not one per partition. Blocking.
    pub fn write_markers(
        &self,
        partitions: &[(String, i32)],
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), strom_log::LogError> {
        let mut appended = Vec::with_capacity(partitions.len());
        for (topic, index) in partitions {
            let partition = self.topic(topic).and_then(|t| t.partition(*index).cloned());
            if let Some(partition) = partition {
                let info = partition.append_marker(producer_id, epoch, commit)?;
                appended.push((partition, info));
            }
        }
        std::thread::scope(|scope| {
            let waits: Vec<_> = appended
                .iter()
                .map(|(partition, info)| scope.spawn(move || partition.await_durable(info)))
                .collect();
            waits.into_iter().try_for_each(|wait| {
                wait.join().unwrap_or_else(|_| {
                    Err(strom_log::LogError::Config(
                        "a marker sync thread panicked".into(),
                    ))
                })
            })
        })
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().by_name.get(name).cloned()
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.read_topics().by_id.get(id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_topics().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The log of an internal topic (partition 0), created on first use.
    pub fn internal_log(&self, topic: &str) -> Result<Arc<PartitionLog>, strom_log::LogError> {
        let tp = TopicPartition::new(topic, 0);
        match self.logs.get(&tp) {
            Some(log) => Ok(log),
            None => self.logs.create(&tp, event_log::event_log_config()),
        }
    }

    /// The log end offset of the metadata log (the quorum's high watermark: a single
    /// node's writes are committed once written).
    pub fn metadata_end_offset(&self) -> u64 {
        self.metadata_log.log_end_offset()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.logs.data_dir()
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be created).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: Overrides,
        validate_only: bool,
    ) -> Result<Arc<Topic>, AdminError> {
        let _admin = self.lock_admin();
        check_new_topic_name(name)?;
        {
            let topics = self.read_topics();
            if topics.by_name.contains_key(name) {
                return Err(AdminError::new(
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                ));
            }
            let collides = |other: &str| other.replace('.', "_") == name.replace('.', "_");
            if let Some(other) = topics.by_name.keys().find(|other| collides(other)) {
                return Err(AdminError::new(
                    ResponseError::InvalidTopicException,
                    format!("Topic '{name}' collides with existing topic '{other}': '.' and '_' are the same in metric names."),
                ));
            }
        }
        check_partition_count(partitions)?;
        let overrides = topic_config::without_removed(name, overrides);
        let log_config = self.log_config(&overrides)?;
        let record = TopicRecord {
            id: Uuid::new_v4(),
            partitions,
            configs: overrides,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                id: record.id,
                overrides: record.configs,
                log_config,
                partitions: Vec::new(),
            }));
        }
        // Logs first, then the metadata record that makes the topic exist: a failure
        // at either step leaves neither (an interrupted create leaves directories the
        // metadata does not know, which the next start sets aside).
        let created = self.create_partitions_logs(name, 0..partitions, &log_config)?;
        if let Err(e) = self.record(&MetadataEvent::TopicCreated {
            name: name.to_string(),
            id: record.id,
            partitions,
            configs: record.configs.clone(),
        }) {
            self.delete_logs(name, 0..partitions);
            return Err(e);
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: record.id,
            overrides: record.configs,
            log_config,
            partitions: created,
        });
        self.publish(Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<Topic>, AdminError> {
        let _admin = self.lock_admin();
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        self.record(&MetadataEvent::TopicDeleted {
            name: name.to_string(),
        })?;
        {
            let mut topics = self.write_topics();
            topics.by_name.remove(name);
            topics.by_id.remove(&topic.id);
        }
        for partition in &topic.partitions {
            partition.appended.notify_waiters();
            self.logs
                .delete(&TopicPartition::new(name, partition.index))?;
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _admin = self.lock_admin();
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than or equal to the requested {count}."),
            ));
        }
        check_partition_count(count)?;
        if validate_only {
            return Ok(());
        }
        let created = self.create_partitions_logs(name, current..count, &topic.log_config)?;
        if let Err(e) = self.record(&MetadataEvent::PartitionsCreated {
            name: name.to_string(),
            partitions: count,
        }) {
            self.delete_logs(name, current..count);
            return Err(e);
        }
        let mut partitions = topic.partitions.clone();
        partitions.extend(created);
        self.publish(Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            log_config: topic.log_config.clone(),
            partitions,
        }));
        tracing::info!(topic = name, partitions = count, "partitions created");
        Ok(())
    }

    /// Replaces a topic's config overrides with what `change` makes of the current
    /// ones (AlterConfigs replaces all; IncrementalAlterConfigs edits some).
    pub fn alter_topic_configs(
        &self,
        name: &str,
        change: impl FnOnce(&Overrides) -> Result<Overrides, AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _admin = self.lock_admin();
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let overrides = topic_config::without_removed(name, change(&topic.overrides)?);
        let log_config = self.log_config(&overrides)?;
        if validate_only {
            return Ok(());
        }
        self.record(&MetadataEvent::TopicConfigsSet {
            name: name.to_string(),
            configs: overrides.clone(),
        })?;
        for partition in &topic.partitions {
            partition.log.set_config(log_config.clone())?;
        }
        self.publish(Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides,
            log_config,
            partitions: topic.partitions.clone(),
        }));
        tracing::info!(topic = name, "topic configs altered");
        Ok(())
    }

    /// Creates the logs of partitions `indexes` of `name`; if one fails, deletes those
    /// created before it (directories and descriptors) and reports the failure.
    fn create_partitions_logs(
        &self,
        name: &str,
        indexes: std::ops::Range<i32>,
        config: &LogConfig,
    ) -> Result<Vec<Arc<Partition>>, AdminError> {
        let mut created = Vec::with_capacity(indexes.len());
        for index in indexes.clone() {
            let opened = self
                .logs
                .create(&TopicPartition::new(name, index), config.clone())
                .and_then(|log| Partition::open(index, log));
            match opened {
                Ok(partition) => created.push(Arc::new(partition)),
                Err(error) => {
                    drop(created);
                    self.delete_logs(name, indexes.start..index + 1);
                    tracing::warn!(topic = name, partition = index, %error, "partition creation failed; the partitions created before it are removed");
                    return Err(AdminError::new(
                        ResponseError::KafkaStorageError,
                        format!("cannot create partition {index} of {name}: {error}"),
                    ));
                }
            }
        }
        Ok(created)
    }

    /// Deletes whichever logs of partitions `indexes` of `name` exist (rollback of a
    /// failed creation).
    fn delete_logs(&self, name: &str, indexes: std::ops::Range<i32>) {
        for index in indexes {
            let tp = TopicPartition::new(name, index);
            if self.logs.get(&tp).is_some() {
                if let Err(error) = self.logs.delete(&tp) {
                    tracing::warn!(partition = %tp, %error, "cannot remove a partition of a failed creation");
                }
            }
        }
    }

    /// The log config for a topic with these overrides, or INVALID_CONFIG.
    pub fn log_config(&self, overrides: &Overrides) -> Result<LogConfig, AdminError> {
        topic_config::log_config(&self.config.topic_defaults, overrides)
            .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.0))
    }

    /// Stops background maintenance, syncs and closes every log, and writes the
    /// clean-shutdown marker.
    pub fn close(&self) -> Result<(), strom_log::LogError> {
        for thread in [&self.maintenance, &self.cleaner] {
            let thread = thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(thread) = thread {
                thread.stop();
            }
        }
        let snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, thread)) = snapshots {
            drop(stop);
            let _ = thread.join();
        }
        self.snapshot_producers(true);
        self.logs.close()
    }

    /// Appends `events` to the metadata log as one batch and waits until they are on
    /// disk (for state kept outside the topic table, such as ACLs).
    pub fn record_metadata(&self, events: &[MetadataEvent]) -> Result<(), AdminError> {
        event_log::append(&self.metadata_log, events).map_err(|e| {
            AdminError::new(
                ResponseError::KafkaStorageError,
                format!("metadata log: {e}"),
            )
        })
    }

    /// Calls `apply` with every event of the metadata log, oldest first.
    pub fn replay_metadata(&self, apply: impl FnMut(MetadataEvent)) -> Result<(), StartError> {
        event_log::replay(&self.metadata_log, apply)
    }

    fn record(&self, event: &MetadataEvent) -> Result<(), AdminError> {
        self.record_metadata(std::slice::from_ref(event))
    }

    fn publish(&self, topic: Arc<Topic>) {
        let mut topics = self.write_topics();
        topics.by_id.insert(topic.id, Arc::clone(&topic));
        topics.by_name.insert(topic.name.clone(), topic);
    }

    fn lock_admin(&self) -> MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens (creating where missing) the logs of a topic the metadata log describes.
fn open_topic(
    logs: &LogManager,
    defaults: &LogConfig,
    name: &str,
    record: &TopicRecord,
) -> Result<Arc<Topic>, StartError> {
    let log_config = topic_config::log_config(defaults, &record.configs)
        .map_err(|e| StartError::Metadata(format!("topic {name}: {}", e.0)))?;
    let mut partitions = Vec::with_capacity(record.partitions.max(0) as usize);
    for index in 0..record.partitions {
        let tp = TopicPartition::new(name, index);
        let log = match logs.get(&tp) {
            Some(log) => {
                log.set_config(log_config.clone())?;
                log
            }
            None => logs.create(&tp, log_config.clone())?,
        };
        partitions.push(Arc::new(Partition::open(index, log)?));
    }
    Ok(Arc::new(Topic {
        name: name.to_string(),
        id: record.id,
        overrides: record.configs.clone(),
        log_config,
        partitions,
    }))
}

/// Kafka's topic-name rule, plus strom's reserved internal names.
pub(crate) fn check_new_topic_name(name: &str) -> Result<(), AdminError> {
    if !is_valid_topic_name(name) {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Topic name '{name}' is illegal: use 1 to 249 ASCII letters, digits, '.', '_' or '-', and not '.' or '..'."),
        ));
    }
    if INTERNAL_TOPICS.contains(&name) {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Topic name '{name}' is reserved for strom's internal state."),
        ));
    }
    Ok(())
}

fn check_partition_count(partitions: i32) -> Result<(), AdminError> {
    if !(1..=PARTITIONS_MAX).contains(&partitions) {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!(
                "Number of partitions must be between 1 and {PARTITIONS_MAX}, not {partitions}."
            ),
        ));
    }
    Ok(())
}

fn unknown_topic(name: &str) -> AdminError {
    AdminError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{name}' does not exist."),
    )
}
