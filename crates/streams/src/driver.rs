//! The topology test driver: runs a topology without a broker, deterministically.
//!
//! Every topic is one partition, so every sub-topology has one task. Piped records are
//! appended to their topic's log and processed at once. Outputs, changelog records and
//! dead-letter records become readable when the driver commits — after every input and
//! wall-clock advance by default, or when the test calls [`TopologyTestDriver::commit`]
//! with `auto_commit` off. [`TopologyTestDriver::abort`] drops everything since the last
//! commit and reprocesses the uncommitted inputs (what the runtime does after an aborted
//! transaction); [`TopologyTestDriver::restart`] simulates a crash and restores the
//! stores from their changelogs exactly as the runtime does.
//!
//! Records written to a topic the topology reads (repartition and retry topics) are fed
//! back to it after the commit that makes them visible. A record that asks to wait
//! (`ProcessError::Retry`, a retry-topic record before its due time) holds only its own
//! topic until [`TopologyTestDriver::advance_wall_clock`] reaches the time, as the
//! runtime pauses only that partition.

use std::collections::BTreeMap;

use crate::error::{ProcessError, SerdeError, StreamsError};
use crate::processor::StoreHandle;
use crate::record::{Headers, OutputRecord, RawRecord, Record, TaskId};
use crate::serdes::Serde;
use crate::store::global::GlobalStores;
use crate::store::memory::MemoryBackend;
use crate::store::StateBackend;
use crate::task::{ErrorHandler, Processed, Task};
use crate::telemetry::Tracer;
use crate::topology::Topology;

/// Test driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The application id (prefix of internal topics). Default `test-app`.
    pub application_id: String,
    /// Commit after every input and wall-clock advance. Default true.
    pub auto_commit: bool,
    /// Handler for records that fail to deserialize.
    pub deserialization_errors: ErrorHandler,
    /// Handler for records whose processing fails.
    pub processing_errors: ErrorHandler,
    /// Initial wall-clock time in ms.
    pub wall_clock_start_ms: i64,
    /// Opt-in: each wall-clock advance also moves every task's stream time up to
    /// `wall clock - lag`, so windows of quiet partitions close. Default `None`.
    pub stream_time_wall_clock_lag_ms: Option<i64>,
    /// OTLP/HTTP base URL to export spans to, as `StreamsConfig::otlp_endpoint` (feature
    /// `otel`): a span per piped or fed-back record, per commit and per restore. Spans
    /// still queued go out when the driver is dropped. Default `None`.
    pub otlp_endpoint: Option<String>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            application_id: "test-app".into(),
            auto_commit: true,
            deserialization_errors: ErrorHandler::Fail,
            processing_errors: ErrorHandler::Fail,
            wall_clock_start_ms: 0,
            stream_time_wall_clock_lag_ms: None,
            otlp_endpoint: None,
        }
    }
}

/// Records replayed per store by [`TopologyTestDriver::restart`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Store name → changelog records replayed.
    pub records_restored: BTreeMap<String, u64>,
}

/// Runs a topology in memory, without a broker.
pub struct TopologyTestDriver {
    topology: Topology,
    config: DriverConfig,
    backend: MemoryBackend,
    tasks: BTreeMap<TaskId, Task>,
    log: BTreeMap<String, Vec<OutputRecord>>,
    pending: Vec<OutputRecord>,
    uncommitted_inputs: Vec<RawRecord>,
    read_pos: BTreeMap<String, usize>,
    wall_clock_ms: i64,
    /// Per input partition (task and topic: every topic has one partition here): records
    /// waiting for a retry (the first one asked for it; the others queue behind it to
    /// keep the partition's order), and when to try again. The task's other inputs go
    /// on, as in the runtime, which pauses one partition.
    paused: BTreeMap<(TaskId, String), (i64, std::collections::VecDeque<RawRecord>)>,
    /// Committed records of topics the topology reads that it has not consumed yet.
    unconsumed: std::collections::VecDeque<RawRecord>,
    /// Stream time per task as of the last commit (the runtime keeps it with the offsets).
    committed_stream_time: BTreeMap<TaskId, i64>,
    globals: GlobalStores,
    tracer: Tracer,
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        // Spans still queued are exported before the driver goes.
        self.tracer.shutdown();
    }
}

/// Where [`TopologyTestDriver::crash`] hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before the commit: the open transaction is lost.
    BeforeCommit,
    /// After the transaction committed (outputs, changelog and offsets are durable),
    /// before the stores applied their overlays.
    AfterCommitBeforeApply,
    /// As `AfterCommitBeforeApply`, and again in the restart's restore after this many
    /// changelog records were applied; the instance then restarts once more.
    DuringRestore {
        /// Records applied before the crash.
        records: usize,
    },
}

impl TopologyTestDriver {
    /// A driver with the default settings.
    pub fn new(topology: &Topology) -> Result<Self, StreamsError> {
        Self::with_config(topology, DriverConfig::default())
    }

    /// A driver with explicit settings.
    pub fn with_config(topology: &Topology, config: DriverConfig) -> Result<Self, StreamsError> {
        let tracer = Tracer::start(
            config.otlp_endpoint.as_deref(),
            &config.application_id,
            "test-driver",
        )?;
        let mut driver = TopologyTestDriver {
            tracer,
            topology: topology.clone(),
            wall_clock_ms: config.wall_clock_start_ms,
            config,
            backend: MemoryBackend::new(),
            tasks: BTreeMap::new(),
            log: BTreeMap::new(),
            pending: Vec::new(),
            uncommitted_inputs: Vec::new(),
            read_pos: BTreeMap::new(),
            paused: BTreeMap::new(),
            unconsumed: std::collections::VecDeque::new(),
            committed_stream_time: BTreeMap::new(),
            globals: topology.global_stores(),
        };
        driver.open_tasks()?;
        Ok(driver)
    }

    fn open_tasks(&mut self) -> Result<RestoreReport, StreamsError> {
        self.open_tasks_limited(None)
    }

    /// Opens the tasks; with `limit`, the restore "crashes" after that many changelog
    /// records (applied one per batch, as the runtime's batches), leaving no task open.
    fn open_tasks_limited(
        &mut self,
        mut limit: Option<usize>,
    ) -> Result<RestoreReport, StreamsError> {
        let mut report = RestoreReport::default();
        for sub in self.topology.inner.subtopologies.clone() {
            let id = TaskId {
                subtopology: sub.id,
                partition: 0,
            };
            let state = self.backend.open_task(id, &sub.stores)?;
            let mut task = Task::new(
                &self.topology,
                &self.config.application_id,
                id,
                state,
                self.config.deserialization_errors.clone(),
                self.config.processing_errors.clone(),
                self.globals.clone(),
            )?;
            // Restore: replay each store's changelog from the applied offset.
            let restore_began = std::time::SystemTime::now();
            let mut restored = 0;
            for store in &sub.stores {
                let topic = Topology::changelog_topic(&self.config.application_id, store);
                let applied = task.meta()?.changelog_next.get(store).copied().unwrap_or(0);
                let log = self.log.get(&topic).map(Vec::as_slice).unwrap_or(&[]);
                let start = applied.max(0) as usize;
                let tail: Vec<(Vec<u8>, Option<Vec<u8>>)> = log
                    .iter()
                    .skip(start)
                    .filter(|r| r.partition.unwrap_or(0) == id.partition)
                    .map(|r| (r.key.clone().unwrap_or_default(), r.value.clone()))
                    .collect();
                report
                    .records_restored
                    .insert(store.clone(), tail.len() as u64);
                restored += tail.len() as u64;
                if let Some(left) = limit.as_mut() {
                    for (i, record) in tail.into_iter().enumerate() {
                        if *left == 0 {
                            self.tasks.clear();
                            return Ok(report);
                        }
                        *left -= 1;
                        task.restore_batch(store, vec![record], (start + i + 1) as i64)?;
                    }
                } else if !tail.is_empty() {
                    task.restore_batch(store, tail, log.len() as i64)?;
                }
            }
            if !sub.stores.is_empty() {
                self.tracer.restore_span(id, restored, restore_began);
            }
            let t = self
                .committed_stream_time
                .get(&id)
                .copied()
                .unwrap_or(task.meta()?.stream_time_ms);
            task.set_committed_stream_time(t);
            task.advance_wall_clock(
                self.wall_clock_ms,
                self.config.stream_time_wall_clock_lag_ms,
            )
            .map_err(|e| wall_clock_error(id, e))?;
            self.tasks.insert(id, task);
        }
        Ok(report)
    }

    /// Pipes a typed record into `topic`.
    pub fn pipe<K, V>(
        &mut self,
        topic: &str,
        key_serde: &impl Serde<K>,
        value_serde: &impl Serde<V>,
        key: &K,
        value: &V,
        timestamp_ms: i64,
    ) -> Result<(), StreamsError> {
        let mut headers = Headers::new();
        let key = key_serde
            .serialize_with_headers(key, &mut headers)
            .map_err(|e| StreamsError::Config(e.to_string()))?;
        let value = value_serde
            .serialize_with_headers(value, &mut headers)
            .map_err(|e| StreamsError::Config(e.to_string()))?;
        self.pipe_raw(topic, key, value, timestamp_ms, headers)
    }

    /// Pipes a serialized record (null key/value allowed) into `topic`.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp_ms: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let log = self.log.entry(topic.to_string()).or_default();
        let raw = RawRecord {
            topic: topic.to_string(),
            partition: 0,
            offset: log.len() as i64,
            timestamp_ms,
            key: key.clone(),
            value: value.clone(),
            headers: headers.clone(),
        };
        log.push(OutputRecord {
            topic: topic.to_string(),
            partition: Some(0),
            key,
            value,
            timestamp_ms,
            headers,
        });
        for (topic, store) in self.topology.inner.globals.iter() {
            if *topic == raw.topic {
                if let Some(k) = raw.key.clone() {
                    self.globals.apply(store, k, raw.value.clone());
                }
            }
        }
        self.process(raw)?;
        if self.config.auto_commit {
            self.commit()?;
        }
        Ok(())
    }

    fn process(&mut self, raw: RawRecord) -> Result<(), StreamsError> {
        let Some((sub, _)) = self
            .topology
            .subtopology_of_topic(&self.config.application_id, &raw.topic)
        else {
            // Nobody reads this topic: it is only stored.
            return Ok(());
        };
        let id = TaskId {
            subtopology: sub,
            partition: 0,
        };
        if !self.paused.is_empty() {
            if let Some((_, queue)) = self.paused.get_mut(&(id, raw.topic.clone())) {
                // The partition is paused: keep the order.
                queue.push_back(raw);
                return Ok(());
            }
        }
        self.process_now(id, raw)
    }

    fn process_now(&mut self, id: TaskId, raw: RawRecord) -> Result<(), StreamsError> {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Err(StreamsError::Topology(format!("no task {id}")));
        };
        task.set_wall_clock(self.wall_clock_ms);
        let span = self
            .tracer
            .record_span(id, &self.config.application_id, &raw);
        let outcome = task.process(&raw);
        let mut outputs = task.take_outputs();
        span.finish(&outcome, &mut outputs);
        if let Processed::Retry(after_ms) = outcome? {
            let entry = self
                .paused
                .entry((id, raw.topic.clone()))
                .or_insert_with(|| (0, std::collections::VecDeque::new()));
            entry.0 = self.wall_clock_ms + after_ms;
            entry.1.push_front(raw);
            return Ok(());
        }
        self.pending.extend(outputs);
        self.uncommitted_inputs.push(raw);
        Ok(())
    }

    /// Processes paused records whose retry time has come, in order.
    fn resume_paused(&mut self) -> Result<(), StreamsError> {
        let due: Vec<(TaskId, String)> = self
            .paused
            .iter()
            .filter(|(_, (at, _))| *at <= self.wall_clock_ms)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some((_, mut queue)) = self.paused.remove(&key) else {
                continue;
            };
            while let Some(raw) = queue.pop_front() {
                self.process_now(key.0, raw)?;
                if let Some((_, q)) = self.paused.get_mut(&key) {
                    // Paused again: the rest waits behind the record that asked.
                    q.extend(queue.drain(..));
                    break;
                }
            }
        }
        Ok(())
    }

    /// Records waiting for a retry (paused partitions), per task.
    pub fn paused_records(&self) -> usize {
        self.paused.values().map(|(_, q)| q.len()).sum()
    }

    /// Advances the wall clock by `ms` and fires wall-clock punctuators.
    pub fn advance_wall_clock(&mut self, ms: i64) -> Result<(), StreamsError> {
        self.wall_clock_ms += ms;
        self.resume_paused()?;
        for (id, task) in self.tasks.iter_mut() {
            task.advance_wall_clock(
                self.wall_clock_ms,
                self.config.stream_time_wall_clock_lag_ms,
            )
            .map_err(|e| wall_clock_error(*id, e))?;
            self.pending.extend(task.take_outputs());
        }
        if self.config.auto_commit {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits: outputs and changelog records become visible, overlays are applied to
    /// the stores. Records that reach topics the topology reads are then processed (and,
    /// with `auto_commit`, committed in turn until nothing is left).
    pub fn commit(&mut self) -> Result<(), StreamsError> {
        loop {
            self.commit_transaction(true)?;
            let mut any = false;
            while let Some(raw) = self.unconsumed.pop_front() {
                self.process(raw)?;
                any = true;
            }
            if !any || !self.config.auto_commit {
                return Ok(());
            }
        }
    }

    /// Makes outputs, changelog records and input positions durable; then, if `apply`,
    /// applies the overlays to the stores.
    fn commit_transaction(&mut self, apply: bool) -> Result<(), StreamsError> {
        let traced = (!self.pending.is_empty()
            || !self.uncommitted_inputs.is_empty()
            || self.tasks.values().any(|t| t.overlay_bytes() > 0))
        .then(|| {
            (
                std::time::SystemTime::now(),
                self.tasks.len(),
                self.uncommitted_inputs.len(),
            )
        });
        let outputs = std::mem::take(&mut self.pending);
        for out in outputs {
            if let Some(raw) = self.append(out) {
                self.unconsumed.push_back(raw);
            }
        }
        for task in self.tasks.values_mut() {
            let mut next = BTreeMap::new();
            for (store, rec) in task.changelog_records() {
                let log = self.log.entry(rec.topic.clone()).or_default();
                log.push(rec);
                next.insert(store, log.len() as i64);
            }
            self.committed_stream_time
                .insert(task.id, task.stream_time_ms());
            if apply {
                task.apply(&next)?;
            }
        }
        if let Some((started, tasks, records)) = traced {
            self.tracer.commit_span(0, tasks, records, started, None);
        }
        self.uncommitted_inputs.clear();
        Ok(())
    }

    /// Simulates a crash at `at`, then a restart (restoring from the changelogs) and the
    /// reprocessing of uncommitted inputs. Returns the last restore's report.
    pub fn crash(&mut self, at: CrashPoint) -> Result<RestoreReport, StreamsError> {
        match at {
            CrashPoint::BeforeCommit => self.restart(false),
            CrashPoint::AfterCommitBeforeApply => {
                self.commit_transaction(false)?;
                self.restart(false)
            }
            CrashPoint::DuringRestore { records } => {
                self.commit_transaction(false)?;
                self.pending.clear();
                self.tasks.clear();
                self.open_tasks_limited(Some(records))?;
                self.restart(false)
            }
        }
    }

    /// Appends a committed output; returns it as an input if the topology reads its topic.
    fn append(&mut self, out: OutputRecord) -> Option<RawRecord> {
        let log = self.log.entry(out.topic.clone()).or_default();
        let raw = RawRecord {
            topic: out.topic.clone(),
            partition: 0,
            offset: log.len() as i64,
            timestamp_ms: out.timestamp_ms,
            key: out.key.clone(),
            value: out.value.clone(),
            headers: out.headers.clone(),
        };
        log.push(out);
        self.topology
            .subtopology_of_topic(&self.config.application_id, &raw.topic)
            .map(|_| raw)
    }

    /// Aborts: drops outputs and store writes since the last commit, resets stream time,
    /// and reprocesses the uncommitted inputs (as the runtime does after seeking back to
    /// the committed offsets).
    pub fn abort(&mut self) -> Result<(), StreamsError> {
        self.pending.clear();
        for task in self.tasks.values_mut() {
            task.abort(None);
        }
        for raw in std::mem::take(&mut self.uncommitted_inputs) {
            self.process(raw)?;
        }
        Ok(())
    }

    /// Simulates a crash and restart: uncommitted work is lost, tasks are recreated and
    /// restore the tail of their changelogs (everything when `wipe_state`), then the
    /// uncommitted inputs are reprocessed.
    pub fn restart(&mut self, wipe_state: bool) -> Result<RestoreReport, StreamsError> {
        self.pending.clear();
        self.tasks.clear();
        if wipe_state {
            self.backend = MemoryBackend::new();
        }
        let report = self.open_tasks()?;
        for raw in std::mem::take(&mut self.uncommitted_inputs) {
            self.process(raw)?;
        }
        while let Some(raw) = self.unconsumed.pop_front() {
            self.process(raw)?;
        }
        if self.config.auto_commit {
            self.commit()?;
        }
        Ok(report)
    }

    /// Committed records of `topic` not read yet, deserialized.
    pub fn read_output<K, V>(
        &mut self,
        topic: &str,
        key_serde: &impl Serde<K>,
        value_serde: &impl Serde<V>,
    ) -> Result<Vec<Record<K, V>>, SerdeError> {
        self.read_raw(topic)
            .into_iter()
            .map(|r| {
                Ok(Record {
                    key: key_serde.deserialize_with_headers(r.key.as_deref(), &r.headers)?,
                    value: value_serde.deserialize_with_headers(r.value.as_deref(), &r.headers)?,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// Committed records of `topic` not read yet, serialized.
    pub fn read_raw(&mut self, topic: &str) -> Vec<OutputRecord> {
        let pos = self.read_pos.entry(topic.to_string()).or_insert(0);
        let log = self.log.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let out = log.get(*pos..).unwrap_or(&[]).to_vec();
        *pos = log.len();
        out
    }

    /// Every committed record of `topic` (inputs, outputs, changelogs), read or not.
    pub fn topic_log(&self, topic: &str) -> &[OutputRecord] {
        self.log.get(topic).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Reads a key of a store (including writes not committed yet).
    pub fn store_get<K: 'static, V: 'static>(
        &self,
        handle: &StoreHandle<K, V>,
        key: &K,
    ) -> Result<Option<V>, ProcessError> {
        let k = handle.key_bytes(key)?;
        for task in self.tasks.values() {
            if task.stores().iter().any(|s| s == handle.name()) {
                if let Some(v) = task.store_get(handle.name(), &k)? {
                    return Ok(Some(handle.decode_value(&v)?));
                }
            }
        }
        Ok(None)
    }

    /// Every entry of a store (including writes not committed yet), in key order.
    pub fn store_all<K: 'static, V: 'static>(
        &self,
        handle: &StoreHandle<K, V>,
    ) -> Result<Vec<(K, V)>, ProcessError> {
        let mut out = Vec::new();
        for task in self.tasks.values() {
            if task.stores().iter().any(|s| s == handle.name()) {
                for (k, v) in task.store_range(handle.name())? {
                    out.push(handle.decode_pair(&k, &v)?);
                }
            }
        }
        Ok(out)
    }

    /// The current wall-clock time.
    pub fn wall_clock_ms(&self) -> i64 {
        self.wall_clock_ms
    }
}

fn wall_clock_error(id: TaskId, e: ProcessError) -> StreamsError {
    StreamsError::Processing {
        topic: String::new(),
        partition: id.partition,
        offset: -1,
        source: e,
    }
}
