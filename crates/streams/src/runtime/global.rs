//! The global thread: reads every partition of each global table's topic, first up to
//! the end (before any stream thread starts, so lookups see the whole table), then
//! follows updates until shutdown.
//!
//! With the persistent backend the tables are **checkpointed**: their contents and the
//! next offset of every partition go to the state directory in one atomic batch (a
//! reserved task, [`GLOBAL_TASK`]) after loading, every commit interval and at
//! shutdown. A restart loads the checkpoint and reads only the topic's tail. A
//! checkpoint that does not fit the topic any more (an offset below its log start or
//! beyond its end: records deleted, topic recreated) is dropped and the tables are read
//! from the beginning, as Kafka Streams does on an invalid global offset.
//!
//! Invariant: the checkpointed contents are exactly the result of reading each
//! partition up to its checkpointed offset (exclusive).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::admin::client_config;
use super::{Shared, StateBackendKind};
use crate::error::StreamsError;
use crate::record::TaskId;
use crate::store::{StoreWrites, TaskMeta, TaskState};

/// The backend task that holds the global stores' checkpoint (no sub-topology has this
/// id: they are numbered from 0).
pub(crate) const GLOBAL_TASK: TaskId = TaskId {
    subtopology: u32::MAX,
    partition: 0,
};

fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

/// The checkpoint's key for one partition of a global store's topic.
fn position_key(store: &str, partition: i32) -> String {
    format!("{store}#{partition}")
}

/// One global table being read: its store, topic, consumer and partitions.
struct GlobalSource {
    store: String,
    topic: String,
    consumer: BaseConsumer,
    partitions: i32,
    /// Where each partition was assigned from: its position until a record is read.
    starts: Vec<i64>,
}

/// Updates read since the last checkpoint.
#[derive(Default)]
struct Pending {
    writes: BTreeMap<String, StoreWrites>,
    records: u64,
}

impl Pending {
    fn add(&mut self, store: &str, key: &[u8], value: Option<&[u8]>) {
        self.writes
            .entry(store.to_string())
            .or_default()
            .insert(key.to_vec(), value.map(<[u8]>::to_vec));
        self.records += 1;
    }
}

/// The checkpoint: present only with the persistent backend.
struct Checkpoint {
    state: Box<dyn TaskState>,
}

impl Checkpoint {
    /// Writes what was read since the last checkpoint with every partition's position.
    fn write(
        &mut self,
        sources: &[GlobalSource],
        pending: &mut Pending,
    ) -> Result<(), StreamsError> {
        let mut meta = TaskMeta {
            changelog_next: BTreeMap::new(),
            stream_time_ms: -1,
        };
        for s in sources {
            let positions = s.consumer.position().map_err(kafka)?;
            for (p, &start) in s.starts.iter().enumerate() {
                let p = p as i32;
                let next = match positions.find_partition(&s.topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(next)) => next,
                    _ => start,
                };
                meta.changelog_next.insert(position_key(&s.store, p), next);
            }
        }
        if pending.records == 0 && meta == self.state.meta()? {
            return Ok(());
        }
        self.state.apply(&pending.writes, &meta)?;
        *pending = Pending::default();
        Ok(())
    }
}

/// Loads the checkpoint (when the backend keeps one and it still fits the topics) into
/// the in-memory global stores and returns where each partition resumes.
fn restore(
    shared: &Shared,
    sources: &[GlobalSource],
    checkpoint: &mut Option<Checkpoint>,
) -> Result<BTreeMap<String, i64>, StreamsError> {
    let Some(cp) = checkpoint else {
        return Ok(BTreeMap::new());
    };
    let meta = cp.state.meta()?;
    let fits = !meta.changelog_next.is_empty() && checkpoint_fits(shared, sources, &meta)?;
    if !fits {
        if !meta.changelog_next.is_empty() {
            cp.state.wipe()?;
        }
        return Ok(BTreeMap::new());
    }
    for s in sources {
        for (k, v) in cp
            .state
            .range(&s.store, Bound::Unbounded, Bound::Unbounded)?
        {
            shared.globals.apply(&s.store, k, Some(v));
        }
    }
    tracing::info!(
        partitions = meta.changelog_next.len(),
        "global tables restored from their checkpoint"
    );
    Ok(meta.changelog_next)
}

/// Whether every partition has a checkpointed position within its topic's offsets.
fn checkpoint_fits(
    shared: &Shared,
    sources: &[GlobalSource],
    meta: &TaskMeta,
) -> Result<bool, StreamsError> {
    for s in sources {
        for p in 0..s.partitions {
            let Some(&next) = meta.changelog_next.get(&position_key(&s.store, p)) else {
                return Ok(false);
            };
            let (low, high) = s
                .consumer
                .fetch_watermarks(&s.topic, p, shared.config.request_timeout)
                .map_err(kafka)?;
            if next < low || next > high {
                tracing::warn!(
                    topic = s.topic,
                    partition = p,
                    next,
                    low,
                    high,
                    "global table checkpoint does not fit the topic; reading it from the beginning"
                );
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Applies one consumed record to the in-memory store and the pending checkpoint.
fn apply(
    shared: &Shared,
    pending: &mut Pending,
    store: &str,
    m: &rdkafka::message::BorrowedMessage<'_>,
) {
    shared
        .metrics
        .global_records_read
        .fetch_add(1, Ordering::Relaxed);
    if let Some(k) = m.key() {
        shared
            .globals
            .apply(store, k.to_vec(), m.payload().map(<[u8]>::to_vec));
        pending.add(store, k, m.payload());
    }
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
    let mut sources = Vec::new();
    for (topic, store) in &globals {
        let mut c = client_config(cfg);
        c.set(
            "group.id",
            format!("{}-global-{}", cfg.application_id, shared.instance_id),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
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
        sources.push(GlobalSource {
            store: store.clone(),
            topic: topic.clone(),
            consumer,
            partitions,
            starts: Vec::new(),
        });
    }
    let mut checkpoint = match cfg.state_backend {
        StateBackendKind::Fjall => {
            let stores: Vec<String> = sources.iter().map(|s| s.store.clone()).collect();
            Some(Checkpoint {
                state: shared.backend.open_task(GLOBAL_TASK, &stores)?,
            })
        }
        StateBackendKind::Memory => None,
    };
    let resume = restore(shared, &sources, &mut checkpoint)?;
    let mut pending = Pending::default();
    for s in &mut sources {
        let mut tpl = TopicPartitionList::new();
        let mut waiting: BTreeSet<i32> = BTreeSet::new();
        for p in 0..s.partitions {
            // A concrete offset, never `Beginning`: it is the partition's checkpointed
            // position until the first record is read.
            let from = match resume.get(&position_key(&s.store, p)) {
                Some(&next) => next,
                None => {
                    s.consumer
                        .fetch_watermarks(&s.topic, p, cfg.request_timeout)
                        .map_err(kafka)?
                        .0
                }
            };
            s.starts.push(from);
            tpl.add_partition_offset(&s.topic, p, Offset::Offset(from))
                .map_err(kafka)?;
            waiting.insert(p);
        }
        s.consumer.assign(&tpl).map_err(kafka)?;
        let mut last_progress = Instant::now();
        while !waiting.is_empty() {
            match s.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    apply(shared, &mut pending, &s.store, &m);
                    last_progress = Instant::now();
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    waiting.remove(&p);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, topic = s.topic, "global table consumer")
                }
                None => {}
            }
            if last_progress.elapsed() > cfg.request_timeout {
                return Err(kafka(format!(
                    "loading global table {} made no progress for {:?}",
                    s.topic, cfg.request_timeout
                )));
            }
        }
        tracing::info!(topic = s.topic, "global table loaded");
    }
    if let Some(cp) = &mut checkpoint {
        cp.write(&sources, &mut pending)?;
    }
    let shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("{}-global", shared.config.application_id))
        .spawn(move || follow(&shared, &sources, checkpoint, pending))
        .map_err(|e| StreamsError::Store(e.into()))?;
    Ok(Some(handle))
}

/// Follows the global topics until shutdown, checkpointing every commit interval and
/// at the end.
fn follow(
    shared: &Shared,
    sources: &[GlobalSource],
    mut checkpoint: Option<Checkpoint>,
    mut pending: Pending,
) {
    let mut last_checkpoint = Instant::now();
    while !shared.shutdown.load(Ordering::Relaxed) {
        for s in sources {
            match s.consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => apply(shared, &mut pending, &s.store, &m),
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "global table consumer"),
            }
        }
        if last_checkpoint.elapsed() >= shared.config.commit_interval {
            checkpoint_or_warn(&mut checkpoint, sources, &mut pending);
            last_checkpoint = Instant::now();
        }
    }
    checkpoint_or_warn(&mut checkpoint, sources, &mut pending);
    if checkpoint.is_some() {
        if let Err(e) = shared.backend.persist() {
            tracing::warn!(error = %e, "persisting the global tables' checkpoint");
        }
    }
}

/// A failed checkpoint only makes the next start read more of the topics.
fn checkpoint_or_warn(
    checkpoint: &mut Option<Checkpoint>,
    sources: &[GlobalSource],
    pending: &mut Pending,
) {
    if let Some(cp) = checkpoint {
        if let Err(e) = cp.write(sources, pending) {
            tracing::warn!(error = %e, "global tables' checkpoint");
        }
    }
}
