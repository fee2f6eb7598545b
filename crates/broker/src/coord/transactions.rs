//! The transaction coordinator: every transactional id's producer and transaction
//! ([`super::txn_state`]), durable in the internal `__transaction_state` log (one
//! event per change, replayed at start). Ending a transaction writes a commit or
//! abort marker to every partition in it and completes its offset commits in the
//! group coordinator; a crash in the middle is finished at the next start, and
//! transactions that outlive their timeout are aborted.
//!
//! Concurrency: each transactional id has its own lock, held while its next state
//! is made durable but never while markers are written. Produce verification takes
//! a partition's lock, then an id's lock; marker writing takes only partition locks,
//! so the two cannot deadlock, and a batch verified as part of a transaction is
//! always in the log before that transaction's marker.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strom_log::{now_ms, PartitionLog};

use super::producer_ids::ProducerIdAllocator;
use super::txn_state::{self, EndStep, InitStep, TxnMetadata, TxnState};
use super::GroupCoordinator;
use crate::cluster::{event_log, Cluster};
use crate::error::StartError;

/// The log is compacted once it holds this many records and twice the live state.
const COMPACT_MIN_RECORDS: u64 = 10_000;

/// One change, as stored in `__transaction_state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TxnEvent {
    Txn { id: String, metadata: TxnMetadata },
    TxnDelete { id: String },
}

#[derive(Debug, Default)]
struct Entry {
    /// `None` once removed (expired) or before the first InitProducerId succeeds.
    metadata: Option<TxnMetadata>,
    /// Markers of a prepared end are being written by someone.
    finishing: bool,
}

type EntryRef = Arc<Mutex<Entry>>;

/// A transactional id as DescribeTransactions and ListTransactions show it.
pub(crate) struct TxnDescription {
    pub id: String,
    pub metadata: TxnMetadata,
}

/// The coordinator of every transactional id on this node.
pub(crate) struct TransactionCoordinator {
    ids: Mutex<HashMap<String, EntryRef>>,
    log: Arc<PartitionLog>,
    cluster: Arc<Cluster>,
    groups: Arc<GroupCoordinator>,
    producer_ids: Arc<ProducerIdAllocator>,
    /// Appends take it shared; compaction exclusively, so that no change is
    /// appended between its snapshot of the state and its rewrite.
    compaction: RwLock<()>,
    /// Dropping it stops the ticker thread.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

/// Whether an id in `state` has no transaction going on (it may be forgotten).
fn is_idle(state: TxnState) -> bool {
    matches!(
        state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    )
}

fn lock(entry: &EntryRef) -> MutexGuard<'_, Entry> {
    entry.lock().unwrap_or_else(|e| e.into_inner())
}

impl TransactionCoordinator {
    /// Replays the `__transaction_state` log and finishes every end a crash
    /// interrupted (markers written again, offsets completed).
    pub fn open(
        log: Arc<PartitionLog>,
        cluster: Arc<Cluster>,
        groups: Arc<GroupCoordinator>,
        producer_ids: Arc<ProducerIdAllocator>,
    ) -> Result<Arc<Self>, StartError> {
        let mut ids: HashMap<String, TxnMetadata> = HashMap::new();
        event_log::replay(&log, |event: TxnEvent| match event {
            TxnEvent::Txn { id, metadata } => {
                ids.insert(id, metadata);
            }
            TxnEvent::TxnDelete { id } => {
                ids.remove(&id);
            }
        })?;
        let preparing: Vec<String> = ids
            .iter()
            .filter(|(_, m)| m.is_preparing())
            .map(|(id, _)| id.clone())
            .collect();
        tracing::info!(
            transactional_ids = ids.len(),
            interrupted = preparing.len(),
            "transaction coordinator loaded"
        );
        let coordinator = Arc::new(TransactionCoordinator {
            ids: Mutex::new(
                ids.into_iter()
                    .map(|(id, metadata)| {
                        let entry = Entry {
                            metadata: Some(metadata),
                            finishing: false,
                        };
                        (id, Arc::new(Mutex::new(entry)))
                    })
                    .collect(),
            ),
            log,
            cluster,
            groups,
            producer_ids,
            compaction: RwLock::new(()),
            stop: Mutex::new(None),
        });
        for id in preparing {
            coordinator
                .finish_if_preparing(&id)
                .map_err(|e| StartError::Metadata(format!("finishing transaction {id}: {e:?}")))?;
        }
        Ok(coordinator)
    }

    /// Starts the thread that aborts expired transactions, retries interrupted ends,
    /// forgets idle ids and compacts the log.
    pub fn spawn_ticker(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let coordinator = Arc::clone(self);
        let (stop, stopped) = mpsc::channel::<()>();
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        std::thread::Builder::new()
            .name("strom-txns".into())
            .spawn(move || {
                let mut ticks = 0u64;
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(200))
                {
                    coordinator.tick(now_ms());
                    ticks += 1;
                    if ticks.is_multiple_of(300) {
                        coordinator.compact();
                    }
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the transaction coordinator thread: {e}"))
    }

    /// Stops the ticker thread.
    pub fn stop(&self) {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn entry(&self, id: &str) -> Option<EntryRef> {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn entries(&self) -> Vec<(String, EntryRef)> {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, e)| (id.clone(), Arc::clone(e)))
            .collect()
    }

    fn new_producer_id(&self) -> Result<i64, ResponseError> {
        self.producer_ids.next().map_err(|error| {
            tracing::error!(%error, "cannot reserve producer ids");
            ResponseError::KafkaStorageError
        })
    }

    /// Makes `metadata` durable as `id`'s state (the caller holds `id`'s lock).
    fn persist(&self, id: &str, metadata: &TxnMetadata) -> Result<(), ResponseError> {
        self.append(&TxnEvent::Txn {
            id: id.to_string(),
            metadata: metadata.clone(),
        })
    }

    fn append(&self, event: &TxnEvent) -> Result<(), ResponseError> {
        let _shared = self.compaction.read().unwrap_or_else(|e| e.into_inner());
        event_log::append(&self.log, std::slice::from_ref(event)).map_err(|error| {
            tracing::error!(%error, "cannot write the transaction log");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// InitProducerId for a transactional id: its producer id and (bumped) epoch,
    /// aborting an open transaction of an earlier producer first (blocking).
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i64,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        self.make_room_for(id)?;
        // Twice at most: once to abort an open transaction, once to bump.
        for _ in 0..3 {
            let entry = Arc::clone(
                self.ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(id.to_string())
                    .or_default(),
            );
            let mut guard = lock(&entry);
            let step = txn_state::init(
                guard.metadata.as_ref(),
                timeout_ms,
                expected,
                now_ms(),
                &mut || self.new_producer_id(),
            );
            let step = match step {
                Ok(step) => step,
                Err(error) => {
                    if guard.metadata.is_none() {
                        self.forget_if_unused(id, &entry);
                    }
                    return Err(error);
                }
            };
            match step {
                InitStep::Ready(next) => {
                    self.persist(id, &next)?;
                    let answer = (next.producer_id, next.producer_epoch);
                    guard.metadata = Some(next);
                    return Ok(answer);
                }
                InitStep::AbortFirst(prepared) => {
                    if guard.finishing {
                        return Err(ResponseError::ConcurrentTransactions);
                    }
                    self.persist(id, &prepared)?;
                    guard.metadata = Some(prepared.clone());
                    guard.finishing = true;
                    drop(guard);
                    self.finish(id, &entry, &prepared)?;
                }
            }
        }
        Err(ResponseError::ConcurrentTransactions)
    }

    /// Keeps the number of transactional ids within `transactional_ids_max`: a new id
    /// at the bound makes the coordinator forget (durably) the id updated least
    /// recently that has no transaction going on. When every id has one, the new id
    /// gets CONCURRENT_TRANSACTIONS, which clients retry. (The bound is checked before
    /// the new id is added, so concurrent first InitProducerIds may pass it by their
    /// number.)
    fn make_room_for(&self, id: &str) -> Result<(), ResponseError> {
        let max = self.cluster.config.transactional_ids_max;
        {
            let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            if ids.len() < max || ids.contains_key(id) {
                return Ok(());
            }
        }
        let mut oldest: Option<(i64, String, EntryRef)> = None;
        for (other, entry) in self.entries() {
            let guard = lock(&entry);
            if let Some(metadata) = guard.metadata.as_ref().filter(|_| !guard.finishing) {
                if is_idle(metadata.state)
                    && oldest
                        .as_ref()
                        .is_none_or(|(updated_ms, ..)| metadata.updated_ms < *updated_ms)
                {
                    oldest = Some((metadata.updated_ms, other, Arc::clone(&entry)));
                }
            }
        }
        let Some((_, other, entry)) = oldest else {
            tracing::warn!(
                id,
                max,
                "transactional.ids bound reached and every id has a transaction going on"
            );
            return Err(ResponseError::ConcurrentTransactions);
        };
        let mut guard = lock(&entry);
        // It may have started a transaction since it was chosen.
        if guard.finishing || !guard.metadata.as_ref().is_some_and(|m| is_idle(m.state)) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        self.append(&TxnEvent::TxnDelete { id: other.clone() })?;
        guard.metadata = None;
        drop(guard);
        self.forget_if_unused(&other, &entry);
        tracing::info!(
            forgotten = other,
            id,
            max,
            "transactional id bound reached: forgot the least recently used idle id"
        );
        Ok(())
    }

    /// Drops a map entry that never got a state.
    fn forget_if_unused(&self, id: &str, entry: &EntryRef) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.get(id).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            ids.remove(id);
        }
    }

    /// Runs `f` on `id`'s state under its lock; an unknown id is
    /// INVALID_PRODUCER_ID_MAPPING.
    fn with_state<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Entry, &TxnMetadata) -> Result<T, ResponseError>,
    ) -> Result<T, ResponseError> {
        let entry = self
            .entry(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut guard = lock(&entry);
        let current = guard
            .metadata
            .clone()
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        f(&mut guard, &current)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions and groups to the open
    /// transaction, opening it if needed (blocking).
    pub fn add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        groups: &[String],
    ) -> Result<(), ResponseError> {
        self.with_state(id, |entry, current| {
            if let Some(next) = current.add(producer_id, epoch, partitions, groups, now_ms())? {
                self.persist(id, &next)?;
                entry.metadata = Some(next);
            }
            Ok(())
        })
    }

    /// Checks that a transactional batch belongs to `id`'s open transaction and
    /// includes `partition`; with `implicit_add` (Produce v12+, transactions V2) the
    /// partition is added instead. The caller holds the partition's lock until the
    /// batch is appended (blocking when it adds).
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
        implicit_add: bool,
    ) -> Result<(), ResponseError> {
        self.with_state(id, |entry, current| {
            match current.verify(producer_id, epoch, partition) {
                Err(ResponseError::InvalidTxnState) if implicit_add => {
                    let added = current.add(
                        producer_id,
                        epoch,
                        std::slice::from_ref(partition),
                        &[],
                        now_ms(),
                    )?;
                    if let Some(next) = added {
                        self.persist(id, &next)?;
                        entry.metadata = Some(next);
                    }
                    Ok(())
                }
                other => other,
            }
        })
    }

    /// TxnOffsetCommit: checks that `group` is part of the open transaction (or adds
    /// it, with `implicit_add`: TxnOffsetCommit v5+), then runs `store` (which records
    /// the pending offsets) under the id's lock, so that the transaction cannot end
    /// between the check and the store (blocking).
    pub fn commit_offsets<T>(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        implicit_add: bool,
        store: impl FnOnce() -> Result<T, ResponseError>,
    ) -> Result<T, ResponseError> {
        self.with_state(id, |entry, current| {
            current.check_producer(producer_id, epoch)?;
            let included = current.state == TxnState::Ongoing && current.groups.contains(group);
            if !included {
                if !implicit_add {
                    return Err(ResponseError::InvalidTxnState);
                }
                let groups = [group.to_string()];
                if let Some(next) = current.add(producer_id, epoch, &[], &groups, now_ms())? {
                    self.persist(id, &next)?;
                    entry.metadata = Some(next);
                }
            }
            store()
        })
    }

    /// EndTxn: commits or aborts the open transaction (blocking). Returns the producer
    /// id and epoch to use next (bumped with `v2`).
    pub fn end(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let entry = self
            .entry(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let prepared = {
            let mut guard = lock(&entry);
            let current = guard
                .metadata
                .as_ref()
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            match current.end(producer_id, epoch, commit, v2, now_ms())? {
                EndStep::AlreadyDone(id, epoch) => return Ok((id, epoch)),
                EndStep::Prepare(next) => {
                    self.persist(id, &next)?;
                    guard.metadata = Some(next.clone());
                    guard.finishing = true;
                    next
                }
            }
        };
        self.finish(id, &entry, &prepared)
    }

    /// Writes a prepared end's markers, completes its offsets, and records it complete.
    /// The caller set `finishing`; it is cleared whatever happens.
    fn finish(
        &self,
        id: &str,
        entry: &EntryRef,
        prepared: &TxnMetadata,
    ) -> Result<(i64, i16), ResponseError> {
        let result = self.write_markers(prepared);
        let mut guard = lock(entry);
        guard.finishing = false;
        result?;
        let completed = prepared.complete(now_ms(), &mut || self.new_producer_id())?;
        self.persist(id, &completed)?;
        let answer = (completed.producer_id, completed.producer_epoch);
        guard.metadata = Some(completed);
        Ok(answer)
    }

    fn write_markers(&self, prepared: &TxnMetadata) -> Result<(), ResponseError> {
        let commit = prepared.commits();
        let partitions: Vec<(String, i32)> = prepared.partitions.iter().cloned().collect();
        self.cluster
            .write_markers(
                &partitions,
                prepared.producer_id,
                prepared.producer_epoch,
                commit,
            )
            .map_err(|error| {
                tracing::error!(%error, "cannot write transaction markers");
                ResponseError::KafkaStorageError
            })?;
        for group in &prepared.groups {
            self.groups
                .end_transaction(group, prepared.producer_id, commit)
                .map_err(|error| {
                    tracing::error!(%error, group, "cannot complete transactional offsets");
                    ResponseError::KafkaStorageError
                })?;
        }
        Ok(())
    }

    /// Finishes `id`'s prepared end if nobody else is (start-up and the ticker).
    fn finish_if_preparing(&self, id: &str) -> Result<(), ResponseError> {
        let Some(entry) = self.entry(id) else {
            return Ok(());
        };
        let prepared = {
            let mut guard = lock(&entry);
            match guard.metadata.clone() {
                Some(m) if m.is_preparing() && !guard.finishing => {
                    guard.finishing = true;
                    m
                }
                _ => return Ok(()),
            }
        };
        self.finish(id, &entry, &prepared).map(|_| ())
    }

    /// Aborts expired transactions, retries interrupted ends and forgets ids idle
    /// longer than the expiration.
    pub fn tick(&self, now_ms: i64) {
        for (id, entry) in self.entries() {
            let mut guard = lock(&entry);
            let Some(current) = guard.metadata.clone() else {
                continue;
            };
            if guard.finishing {
                continue;
            }
            if let Some(prepared) = current.expire(now_ms) {
                tracing::info!(
                    id,
                    producer_id = current.producer_id,
                    "aborting a transaction that outlived its timeout"
                );
                if self.persist(&id, &prepared).is_err() {
                    continue;
                }
                guard.metadata = Some(prepared);
                drop(guard);
                let _ = self.finish_if_preparing(&id);
                continue;
            }
            if current.is_preparing() {
                drop(guard);
                let _ = self.finish_if_preparing(&id);
                continue;
            }
            let idle = is_idle(current.state)
                && now_ms - current.updated_ms
                    > self.cluster.config.transactional_id_expiration.as_millis() as i64;
            if idle && self.append(&TxnEvent::TxnDelete { id: id.clone() }).is_ok() {
                guard.metadata = None;
                drop(guard);
                self.forget_if_unused(&id, &entry);
            }
        }
    }

    /// Rewrites the live state at the log's end and drops what came before, once the
    /// log is large and mostly history.
    fn compact(&self) {
        let _exclusive = self.compaction.write().unwrap_or_else(|e| e.into_inner());
        // An id whose lock is taken may be waiting to append: skip this round rather
        // than wait for it (it waits for us).
        let mut live = Vec::new();
        for (id, entry) in self.entries() {
            let Ok(guard) = entry.try_lock() else {
                return;
            };
            if let Some(metadata) = guard.metadata.clone() {
                live.push(TxnEvent::Txn { id, metadata });
            }
        }
        let batches: Vec<&[TxnEvent]> = live.chunks(500).collect();
        match event_log::compact(&self.log, &batches, COMPACT_MIN_RECORDS) {
            Ok(true) => tracing::info!(live = live.len(), "compacted the transaction log"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "compacting the transaction log failed"),
        }
    }

    /// Every transactional id with its state, by id.
    pub fn describe_all(&self) -> Vec<TxnDescription> {
        let mut all: Vec<TxnDescription> = self
            .entries()
            .into_iter()
            .filter_map(|(id, entry)| {
                lock(&entry)
                    .metadata
                    .clone()
                    .map(|metadata| TxnDescription { id, metadata })
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// One transactional id's state.
    pub fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.entry(id)
            .and_then(|entry| lock(&entry).metadata.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{OFFSETS_TOPIC, TRANSACTIONS_TOPIC};
    use crate::config::BrokerConfig;
    use crate::coord::group::GroupLimits;
    use crate::coord::CommittedOffset;
    use strom_log::batch::builder::BatchBuilder;

    struct Node {
        cluster: Arc<Cluster>,
        groups: Arc<GroupCoordinator>,
        transactions: Arc<TransactionCoordinator>,
    }

    fn open(dir: &std::path::Path) -> Node {
        open_with(BrokerConfig::ephemeral(dir))
    }

    fn open_with(config: BrokerConfig) -> Node {
        let dir = config.data_dir.clone();
        let cluster = Arc::new(Cluster::open(config).expect("cluster"));
        let groups = GroupCoordinator::open(
            cluster.internal_log(OFFSETS_TOPIC).expect("offsets log"),
            GroupLimits::default(),
        )
        .expect("groups");
        let ids = Arc::new(ProducerIdAllocator::open(&dir).expect("ids"));
        let transactions = TransactionCoordinator::open(
            cluster.internal_log(TRANSACTIONS_TOPIC).expect("txn log"),
            Arc::clone(&cluster),
            Arc::clone(&groups),
            ids,
        )
        .expect("transactions");
        Node {
            cluster,
            groups,
            transactions,
        }
    }

    #[test]
    fn a_commit_interrupted_after_prepare_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = open(dir.path());
        node.cluster
            .create_topic("t", 1, Default::default(), false)
            .expect("topic");
        let (pid, epoch) = node
            .transactions
            .init_producer_id("tx", 60_000, None)
            .expect("init");
        let partition = ("t".to_string(), 0);
        node.transactions
            .add(
                "tx",
                pid,
                epoch,
                std::slice::from_ref(&partition),
                &["g".to_string()],
            )
            .expect("add");
        // A transactional record and an offset commit, as Produce and TxnOffsetCommit
        // would write them.
        let topic = node.cluster.topic("t").expect("topic");
        let log_partition = topic.partition(0).expect("partition");
        node.transactions
            .verify("tx", pid, epoch, &partition, false)
            .expect("verified");
        let mut builder = BatchBuilder::producer(0, pid, epoch, 0, true);
        builder.push(None, Some(b"v"), 0);
        let mut batch = builder.finish();
        {
            let mut producers = log_partition.producers();
            let info = log_partition.log.append(&mut batch).expect("append");
            let header = strom_log::BatchHeader::parse(&batch).expect("header");
            let sequence =
                crate::cluster::producer_state::BatchSequence::of(&header).expect("sequence");
            producers.record(&sequence, info.base_offset, info.last_offset);
        }
        let offset = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        };
        node.transactions
            .commit_offsets("tx", pid, epoch, "g", false, || {
                node.groups
                    .commit_pending("g", pid, vec![(partition.clone(), offset)])
                    .map_err(|_| ResponseError::KafkaStorageError)
            })
            .expect("txn offsets");
        assert_eq!(log_partition.last_stable_offset(), 0);
        // The commit is made durable as PrepareCommit, then the node dies before any
        // marker is written.
        let entry = node.transactions.entry("tx").expect("entry");
        let current = lock(&entry).metadata.clone().expect("state");
        let prepared = match current.end(pid, epoch, true, false, now_ms()).expect("end") {
            EndStep::Prepare(m) => m,
            other => panic!("expected Prepare, got {other:?}"),
        };
        node.transactions.persist("tx", &prepared).expect("persist");
        node.cluster.close().expect("close");
        drop(node);

        let node = open(dir.path());
        let described = node.transactions.describe("tx").expect("known");
        assert_eq!(described.state, TxnState::CompleteCommit);
        let topic = node.cluster.topic("t").expect("topic");
        let log_partition = topic.partition(0).expect("partition");
        assert_eq!(log_partition.last_stable_offset(), 2, "record and marker");
        assert!(log_partition.producers().aborted_between(0, 10).is_empty());
        assert_eq!(
            node.groups.offsets("g").get(&partition).map(|c| c.offset),
            Some(1),
            "the transaction's offsets took effect"
        );
        assert!(!node.groups.has_pending("g", "t", 0));
        node.cluster.close().expect("close");
    }

    #[test]
    fn at_the_transactional_id_bound_the_least_recent_idle_id_is_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = open_with(BrokerConfig {
            transactional_ids_max: 2,
            ..BrokerConfig::ephemeral(dir.path())
        });
        node.cluster
            .create_topic("t", 1, Default::default(), false)
            .expect("topic");
        let txn = &node.transactions;
        let (a, a_epoch) = txn.init_producer_id("a", 60_000, None).expect("a");
        txn.init_producer_id("b", 60_000, None).expect("b");
        // "a" has a transaction going on: "b" is the one to go.
        txn.add("a", a, a_epoch, &[("t".to_string(), 0)], &[])
            .expect("add");
        txn.init_producer_id("c", 60_000, None).expect("c");
        assert!(txn.describe("b").is_none(), "b forgotten");
        assert!(txn.describe("a").is_some() && txn.describe("c").is_some());
        // Now "c" is idle and "a" busy: "d" takes "c"'s place; with both busy, "e" waits.
        txn.init_producer_id("d", 60_000, None).expect("d");
        assert!(txn.describe("c").is_none());
        let (d, d_epoch) = txn.init_producer_id("d", 60_000, None).expect("d again");
        txn.add("d", d, d_epoch, &[("t".to_string(), 0)], &[])
            .expect("add");
        assert_eq!(
            txn.init_producer_id("e", 60_000, None),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert!(txn.describe("e").is_none(), "not added");
        node.cluster.close().expect("close");
        // The forgetting is durable.
        drop(node);
        let node = open(dir.path());
        assert!(node.transactions.describe("b").is_none());
        assert!(node.transactions.describe("a").is_some());
        node.cluster.close().expect("close");
    }
}
