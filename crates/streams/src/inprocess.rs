//! The in-process runner: a topology fed with typed records, its outputs counted — no
//! broker, no serialization at the edges. Benchmarks use it the way Flink's benchmarks
//! use `datagen → query → blackhole`.
//!
//! It runs the same tasks as [`crate::runtime::KafkaStreams`] and the test driver (the
//! same operators, stores, overlays and commits, on the in-memory backend); only the
//! edges differ:
//!
//! - **inputs** are typed records from an iterator per partition, handed to the source
//!   node without a decoder (the source's timestamp extractor still runs);
//! - **repartition topics** become typed hand-offs: a record goes to the task of the
//!   partition the producer would choose (murmur2 of its serialized key), in this thread
//!   or, through a channel, in another;
//! - **outputs** to other topics are counted, not serialized — unless
//!   [`InProcessConfig::capture_outputs`] asks for them (tests compare them with the
//!   test driver's);
//! - **commits** apply each task's overlay to its stores every
//!   [`InProcessConfig::commit_interval_ms`] and at the end (no changelog is written:
//!   nothing would read it).
//!
//! Partitions are spread over threads as the runtime spreads tasks: partition `p` of
//! every sub-topology runs on thread `p % threads`, one task per partition and
//! sub-topology.
//!
//! ```
//! use strom_streams::inprocess::{InProcessConfig, InProcessRunner};
//! use strom_streams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("numbers", UnitSerde, I64Serde)
//!     .filter(|_, n| n % 2 == 0)
//!     .to("even", UnitSerde, I64Serde);
//! let runner = InProcessRunner::new(&builder.build().unwrap(), InProcessConfig::default()).unwrap();
//! let report = runner
//!     .run("numbers", |_partition| (0..1000i64).map(|n| Record::new((), n, n)))
//!     .unwrap();
//! assert_eq!((report.input_records, report.output_records), (1000, 500));
//! ```
//!
//! Limits: one input topic per run; no global tables; a processor asking for a retry
//! ([`crate::error::ProcessError::Retry`]) stops the run with an error; dead letters of
//! typed records carry no key and value bytes; the wall clock (wall-clock punctuators,
//! processing time) moves at commits while a thread still feeds input, not after; the
//! input's end closes nothing (windows close as stream time passes them, as in the
//! runtime, so the last windows of a run are not emitted).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::StreamsError;
use crate::processor::{erase, Data};
use crate::record::{OutputRecord, RawRecord, Record, TaskId};
use crate::store::memory::MemoryBackend;
use crate::store::StateBackend;
use crate::task::{ErrorHandler, Handoff, OutputMode, Processed, Task};
use crate::topology::{ErasedRecord, Topology};

/// Settings of the in-process runner.
#[derive(Debug, Clone)]
pub struct InProcessConfig {
    /// Application id (prefix of internal topic names). Default `inprocess`.
    pub application_id: String,
    /// Threads. Default 1.
    pub threads: usize,
    /// Partitions of every topic (inputs and repartition topics); `None`: one per thread.
    pub partitions: Option<usize>,
    /// Each task's overlay is applied to its stores this often (the runtime's
    /// exactly-once commit interval). Default 100 ms.
    pub commit_interval_ms: u64,
    /// Input records a thread feeds from one partition before it turns to its other
    /// partitions and its inbox (also the unit of the latency figures). Default 256.
    pub batch_records: usize,
    /// Records handed to other threads and not processed yet above which a thread stops
    /// feeding input and works through its inbox (a bound on memory). Default 1,000,000.
    pub in_flight_max: usize,
    /// Serialize external outputs and return them in [`RunReport::outputs`] (tests);
    /// otherwise they are only counted. Default false.
    pub capture_outputs: bool,
    /// Handler for records whose processing fails. Default [`ErrorHandler::Fail`].
    pub processing_errors: ErrorHandler,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        InProcessConfig {
            application_id: "inprocess".to_string(),
            threads: 1,
            partitions: None,
            commit_interval_ms: 100,
            batch_records: 256,
            in_flight_max: 1_000_000,
            capture_outputs: false,
            processing_errors: ErrorHandler::Fail,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Input records fed.
    pub input_records: u64,
    /// Records written to external topics (counted, or captured).
    pub output_records: u64,
    /// Records that went through repartition topics.
    pub internal_records: u64,
    /// Input records skipped by the error handlers.
    pub skipped_records: u64,
    /// Records too late for every window they belonged to.
    pub late_records: u64,
    /// Commits (overlay applies) over every task.
    pub commits: u64,
    /// Distinct keys written to stores over every commit (what the changelogs would get).
    pub changelog_records: u64,
    /// From the first input record to the end of the last commit.
    pub elapsed: Duration,
    /// Per input batch: the time from feeding its first record to the end of its
    /// processing in its thread (repartitioned records handled there included). Each
    /// batch counts once per record it holds.
    pub batch_latency_p50: Duration,
    /// As `batch_latency_p50`, the 99th percentile.
    pub batch_latency_p99: Duration,
    /// As `batch_latency_p50`, the largest.
    pub batch_latency_max: Duration,
    /// The outputs, when [`InProcessConfig::capture_outputs`] is set (with several
    /// threads, interleaved in no particular order between partitions).
    pub outputs: Vec<OutputRecord>,
}

impl RunReport {
    /// Input records per second.
    pub fn records_per_second(&self) -> f64 {
        self.input_records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs a topology in this process (see the [module docs](self)).
pub struct InProcessRunner {
    topology: Topology,
    config: InProcessConfig,
}

impl InProcessRunner {
    /// A runner; fails for topologies with global tables.
    pub fn new(topology: &Topology, config: InProcessConfig) -> Result<Self, StreamsError> {
        if !topology.inner.globals.is_empty() {
            return Err(StreamsError::Config(
                "the in-process runner has no global tables: use the runtime or the test driver"
                    .into(),
            ));
        }
        if config.threads == 0 {
            return Err(StreamsError::Config("threads must be at least 1".into()));
        }
        Ok(InProcessRunner {
            topology: topology.clone(),
            config,
        })
    }

    /// The partition count (one per thread unless configured).
    pub fn partitions(&self) -> usize {
        self.config.partitions.unwrap_or(self.config.threads).max(1)
    }

    /// Feeds `inputs(p)` into partition `p` of `topic` (for every partition `p`, on the
    /// thread that owns it) until every iterator ends, and every record they cause has
    /// been processed; then commits every task.
    pub fn run<K, V, I>(
        &self,
        topic: &str,
        inputs: impl Fn(usize) -> I + Sync,
    ) -> Result<RunReport, StreamsError>
    where
        K: Data,
        V: Data,
        I: Iterator<Item = Record<K, V>>,
    {
        let app_id = self.config.application_id.as_str();
        let routes = self.topology.source_index(app_id);
        let Some(&(input_sub, input_source)) = routes.get(topic) else {
            return Err(StreamsError::Topology(format!("no source reads {topic}")));
        };
        let threads = self.config.threads;
        let partitions = self.partitions();
        let shared = Shared {
            in_flight: AtomicI64::new(0),
            inputs_active: AtomicUsize::new(threads),
            failed: AtomicBool::new(false),
        };
        let (senders, receivers): (Vec<Sender<Batch>>, Vec<Receiver<Batch>>) =
            (0..threads).map(|_| channel()).unzip();
        let backend = MemoryBackend::new();
        let started = Instant::now();
        let results: Vec<Result<WorkerReport, StreamsError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = receivers
                .into_iter()
                .enumerate()
                .map(|(t, inbox)| {
                    let worker = Worker {
                        index: t,
                        threads,
                        partitions,
                        topology: &self.topology,
                        config: &self.config,
                        routes: &routes,
                        tasks: (0..self.topology.inner.subtopologies.len() * partitions)
                            .map(|_| None)
                            .collect(),
                        offsets: vec![0; self.topology.inner.sources.len() * partitions],
                        backend: backend.clone(),
                        local: VecDeque::new(),
                        outboxes: (0..threads).map(|_| Vec::new()).collect(),
                        senders: senders.clone(),
                        inbox,
                        shared: &shared,
                        internal_cache: Vec::new(),
                        report: WorkerReport::default(),
                        last_commit: Instant::now(),
                        send_failed: false,
                    };
                    let inputs = &inputs;
                    scope.spawn(move || {
                        let mut worker = worker;
                        let result = worker.run(input_sub, input_source, inputs);
                        if result.is_err() {
                            worker.shared.failed.store(true, Ordering::SeqCst);
                        }
                        result.map(|()| worker.report)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        shared.failed.store(true, Ordering::SeqCst);
                        Err(StreamsError::Config("an in-process thread panicked".into()))
                    })
                })
                .collect()
        });
        let elapsed = started.elapsed();
        let mut report = RunReport {
            elapsed,
            ..RunReport::default()
        };
        let mut batches: Vec<(Duration, u64)> = Vec::new();
        for r in results {
            let w = r?;
            report.input_records += w.input_records;
            report.output_records += w.output_records;
            report.internal_records += w.internal_records;
            report.skipped_records += w.skipped_records;
            report.late_records += w.late_records;
            report.commits += w.commits;
            report.changelog_records += w.changelog_records;
            report.outputs.extend(w.outputs);
            batches.extend(w.batches);
        }
        let (p50, p99, max) = weighted_percentiles(&mut batches);
        report.batch_latency_p50 = p50;
        report.batch_latency_p99 = p99;
        report.batch_latency_max = max;
        Ok(report)
    }
}

/// The 50th and 99th percentiles and the maximum of durations weighted by counts.
fn weighted_percentiles(samples: &mut [(Duration, u64)]) -> (Duration, Duration, Duration) {
    samples.sort_unstable_by_key(|(d, _)| *d);
    let total: u64 = samples.iter().map(|(_, n)| n).sum();
    let at = |q: f64| {
        let rank = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (d, n) in samples.iter() {
            seen += n;
            if seen >= rank.max(1) {
                return *d;
            }
        }
        Duration::ZERO
    };
    let max = samples.last().map_or(Duration::ZERO, |(d, _)| *d);
    (at(0.50), at(0.99), max)
}

/// State the threads share: the termination condition and a failure flag.
struct Shared {
    /// Records sent to another thread and not processed yet (incremented before the
    /// send, decremented after the records and everything they caused locally are done).
    in_flight: AtomicI64,
    /// Threads still feeding input.
    inputs_active: AtomicUsize,
    /// A thread failed: the others stop.
    failed: AtomicBool,
}

/// Records sent to another thread at once.
type Batch = Vec<Routed>;

/// A record on its way to a task.
struct Routed {
    subtopology: u32,
    source: usize,
    partition: i32,
    payload: Payload,
}

enum Payload {
    /// Handed over by a sink, typed.
    Typed(ErasedRecord),
    /// Produced serialized (`ProcessorContext::send`, foreign-key joins).
    Raw(RawRecord),
}

#[derive(Default)]
struct WorkerReport {
    input_records: u64,
    output_records: u64,
    internal_records: u64,
    skipped_records: u64,
    late_records: u64,
    commits: u64,
    changelog_records: u64,
    outputs: Vec<OutputRecord>,
    batches: Vec<(Duration, u64)>,
}

/// One thread: the tasks of the partitions it owns.
struct Worker<'a> {
    index: usize,
    threads: usize,
    partitions: usize,
    topology: &'a Topology,
    config: &'a InProcessConfig,
    routes: &'a HashMap<String, (u32, usize)>,
    /// Tasks by `sub-topology × partitions + partition` (opened on their first record).
    tasks: Vec<Option<Task>>,
    /// Next offset by `source × partitions + partition`.
    offsets: Vec<i64>,
    backend: MemoryBackend,
    /// Records for partitions this thread owns.
    local: VecDeque<Routed>,
    /// Records for other threads, sent in batches.
    outboxes: Vec<Vec<Routed>>,
    senders: Vec<Sender<Batch>>,
    inbox: Receiver<Batch>,
    shared: &'a Shared,
    /// Internal topic → (sub-topology, source), compared by pointer first.
    internal_cache: Vec<(Arc<str>, u32, usize)>,
    report: WorkerReport,
    last_commit: Instant,
    /// A send found its receiver gone (the run fails).
    send_failed: bool,
}

/// Records per outbox before it is sent.
const OUTBOX_RECORDS: usize = 1024;

impl Worker<'_> {
    fn run<K, V, I>(
        &mut self,
        input_sub: u32,
        input_source: usize,
        inputs: &(impl Fn(usize) -> I + Sync),
    ) -> Result<(), StreamsError>
    where
        K: Data,
        V: Data,
        I: Iterator<Item = Record<K, V>>,
    {
        let mut feeds: Vec<(i32, I)> = (0..self.partitions)
            .filter(|p| p % self.threads == self.index)
            .map(|p| (p as i32, inputs(p)))
            .collect();
        let mut feeding = true;
        let batch = self.config.batch_records.max(1);
        loop {
            if self.shared.failed.load(Ordering::Relaxed) {
                // Another thread failed and reports why; a lost send is this one's.
                return if self.send_failed {
                    Err(StreamsError::Config(
                        "an in-process thread stopped while records were sent to it".into(),
                    ))
                } else {
                    Ok(())
                };
            }
            let mut progressed = false;
            let backlog = self.shared.in_flight.load(Ordering::Relaxed);
            if feeding && backlog < self.config.in_flight_max as i64 {
                let mut fed_any = false;
                for (partition, feed) in feeds.iter_mut() {
                    let started = Instant::now();
                    let mut n = 0u64;
                    for record in feed.by_ref().take(batch) {
                        self.feed(input_sub, input_source, *partition, erase(record))?;
                        n += 1;
                    }
                    if n > 0 {
                        fed_any = true;
                        self.drain_local()?;
                        self.report.batches.push((started.elapsed(), n));
                        self.report.input_records += n;
                    }
                }
                if !fed_any {
                    feeding = false;
                    self.flush_outboxes(true);
                    self.shared.inputs_active.fetch_sub(1, Ordering::SeqCst);
                }
                progressed = true;
            }
            // Work sent by other threads.
            while let Ok(records) = self.inbox.try_recv() {
                self.process_received(records)?;
                progressed = true;
            }
            self.flush_outboxes(!feeding);
            // The wall clock (wall-clock punctuators) moves only while this thread feeds
            // input: once every thread is done, only records in flight cause work, so
            // the termination check stays exact.
            self.maybe_commit(false, feeding)?;
            if !progressed {
                if !feeding
                    && self.shared.inputs_active.load(Ordering::SeqCst) == 0
                    && self.shared.in_flight.load(Ordering::SeqCst) == 0
                {
                    break;
                }
                match self.inbox.recv_timeout(Duration::from_millis(1)) {
                    Ok(records) => self.process_received(records)?,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                self.flush_outboxes(true);
            }
        }
        self.maybe_commit(true, false)?;
        if self.send_failed {
            return Err(StreamsError::Config(
                "an in-process thread stopped while records were sent to it".into(),
            ));
        }
        for task in self.tasks.iter_mut().flatten() {
            self.report.late_records += task.take_late_records();
        }
        Ok(())
    }

    /// Processes records another thread sent, then everything they caused here; only
    /// then are they no longer in flight (so the termination check never sees zero
    /// while work they cause is pending).
    fn process_received(&mut self, records: Vec<Routed>) -> Result<(), StreamsError> {
        let n = records.len() as i64;
        for r in records {
            self.deliver(r)?;
        }
        self.drain_local()?;
        self.flush_outboxes(true);
        self.shared.in_flight.fetch_sub(n, Ordering::SeqCst);
        Ok(())
    }

    fn drain_local(&mut self) -> Result<(), StreamsError> {
        while let Some(r) = self.local.pop_front() {
            self.deliver(r)?;
        }
        Ok(())
    }

    fn feed(
        &mut self,
        sub: u32,
        source: usize,
        partition: i32,
        record: ErasedRecord,
    ) -> Result<(), StreamsError> {
        self.deliver(Routed {
            subtopology: sub,
            source,
            partition,
            payload: Payload::Typed(record),
        })
    }

    /// Runs one record through its task and routes what it produced.
    fn deliver(&mut self, r: Routed) -> Result<(), StreamsError> {
        let id = TaskId {
            subtopology: r.subtopology,
            partition: r.partition,
        };
        let (slot, offset_slot) = match usize::try_from(r.partition) {
            Ok(p) if p < self.partitions => (
                r.subtopology as usize * self.partitions + p,
                r.source * self.partitions + p,
            ),
            _ => {
                return Err(StreamsError::Topology(format!(
                    "partition {} of {} does not exist",
                    r.partition, self.partitions
                )))
            }
        };
        if self.tasks[slot].is_none() {
            self.tasks[slot] = Some(self.open_task(id)?);
        }
        let offset = self.offsets[offset_slot];
        self.offsets[offset_slot] += 1;
        let Some(task) = self.tasks[slot].as_mut() else {
            return Err(StreamsError::Topology(format!("no task {id}")));
        };
        let outcome = match r.payload {
            Payload::Typed(record) => task.process_typed(r.source, record, r.partition, offset)?,
            Payload::Raw(mut raw) => {
                raw.offset = offset;
                task.process(&raw)?
            }
        };
        match outcome {
            Processed::Ok => {}
            Processed::Skipped => self.report.skipped_records += 1,
            Processed::Retry(_) => {
                return Err(StreamsError::Config(
                    "a processor asked for a retry: the in-process runner cannot pause".into(),
                ))
            }
        }
        let mut handoffs = std::mem::take(&mut task.env.handoffs);
        let outputs = if task.env.outputs.is_empty() {
            Vec::new()
        } else {
            task.take_outputs()
        };
        self.report.output_records += std::mem::take(&mut task.env.sunk);
        self.route_produced(&mut handoffs, outputs)?;
        // Give the (now empty) buffer back to the task: no allocation per record.
        if let Some(task) = self.tasks[slot].as_mut() {
            task.env.handoffs = handoffs;
        }
        Ok(())
    }

    /// Routes what a task produced: typed hand-offs and serialized records for topics
    /// the topology reads go to their tasks; other records are counted (and captured).
    fn route_produced(
        &mut self,
        handoffs: &mut Vec<Handoff>,
        outputs: Vec<OutputRecord>,
    ) -> Result<(), StreamsError> {
        for h in handoffs.drain(..) {
            let (sub, source) = self.internal_route(&h.topic)?;
            self.report.internal_records += 1;
            self.route(Routed {
                subtopology: sub,
                source,
                partition: h.partition,
                payload: Payload::Typed(h.record),
            });
        }
        for out in outputs {
            match self.routes.get(&out.topic) {
                Some(&(sub, source)) => {
                    let partitions = self.partitions as i32;
                    let partition = match (out.partition, &out.key) {
                        (Some(p), _) => p,
                        (None, Some(k)) => crate::runtime::query::partition_for(k, partitions),
                        (None, None) => (self.report.internal_records % partitions as u64) as i32,
                    };
                    self.report.internal_records += 1;
                    self.route(Routed {
                        subtopology: sub,
                        source,
                        partition,
                        payload: Payload::Raw(RawRecord {
                            topic: out.topic,
                            partition,
                            offset: 0,
                            timestamp_ms: out.timestamp_ms,
                            key: out.key,
                            value: out.value,
                            headers: out.headers,
                        }),
                    });
                }
                None => {
                    self.report.output_records += 1;
                    if self.config.capture_outputs {
                        self.report.outputs.push(out);
                    }
                }
            }
        }
        Ok(())
    }

    fn internal_route(&mut self, topic: &Arc<str>) -> Result<(u32, usize), StreamsError> {
        if let Some((_, sub, source)) = self
            .internal_cache
            .iter()
            .find(|(t, _, _)| Arc::ptr_eq(t, topic))
        {
            return Ok((*sub, *source));
        }
        let Some(&(sub, source)) = self.routes.get(&**topic) else {
            return Err(StreamsError::Topology(format!("no source reads {topic}")));
        };
        self.internal_cache.push((topic.clone(), sub, source));
        Ok((sub, source))
    }

    fn route(&mut self, r: Routed) {
        let owner = r.partition as usize % self.threads;
        if owner == self.index {
            self.local.push_back(r);
        } else {
            self.outboxes[owner].push(r);
            if self.outboxes[owner].len() >= OUTBOX_RECORDS {
                self.send(owner);
            }
        }
    }

    fn send(&mut self, owner: usize) {
        let records = std::mem::take(&mut self.outboxes[owner]);
        if records.is_empty() {
            return;
        }
        self.shared
            .in_flight
            .fetch_add(records.len() as i64, Ordering::SeqCst);
        if self.senders[owner].send(records).is_err() {
            // The other thread is gone: nothing will process these.
            self.send_failed = true;
            self.shared.failed.store(true, Ordering::SeqCst);
        }
    }

    /// Sends every outbox (`all`), or only the full ones.
    fn flush_outboxes(&mut self, all: bool) {
        for owner in 0..self.threads {
            if all || self.outboxes[owner].len() >= OUTBOX_RECORDS {
                self.send(owner);
            }
        }
    }

    fn open_task(&self, id: TaskId) -> Result<Task, StreamsError> {
        let stores = crate::task::subtopology_stores(self.topology, id.subtopology);
        let state = self.backend.open_task(id, &stores)?;
        let mut task = Task::new(
            self.topology,
            &self.config.application_id,
            id,
            state,
            ErrorHandler::Fail,
            self.config.processing_errors.clone(),
            self.topology.global_stores(),
        )?;
        task.env.output_mode = OutputMode::InProcess {
            partitions: self.partitions as i32,
            capture: self.config.capture_outputs,
        };
        task.set_wall_clock(wall_clock_ms());
        Ok(task)
    }

    /// Applies every task's overlay when the interval has passed (or `now`); with
    /// `advance_clock`, first advances the wall clock (wall-clock punctuators,
    /// processing time).
    fn maybe_commit(&mut self, now: bool, advance_clock: bool) -> Result<(), StreamsError> {
        if !now
            && self.last_commit.elapsed() < Duration::from_millis(self.config.commit_interval_ms)
        {
            return Ok(());
        }
        let clock = wall_clock_ms();
        for slot in 0..self.tasks.len() {
            let Some(task) = self.tasks[slot].as_mut() else {
                continue;
            };
            let id = task.id;
            if advance_clock {
                task.advance_wall_clock(clock, None)
                    .map_err(|e| StreamsError::Processing {
                        topic: String::new(),
                        partition: id.partition,
                        offset: -1,
                        source: e,
                    })?;
            }
            self.report.changelog_records += task
                .env
                .overlay
                .writes()
                .values()
                .map(|w| w.len() as u64)
                .sum::<u64>();
            task.apply(&std::collections::BTreeMap::new())?;
            self.report.commits += 1;
            // Punctuators may have produced records: route them like any other.
            let mut handoffs = std::mem::take(&mut task.env.handoffs);
            let outputs = task.take_outputs();
            self.report.output_records += std::mem::take(&mut task.env.sunk);
            self.route_produced(&mut handoffs, outputs)?;
        }
        self.drain_local()?;
        self.last_commit = Instant::now();
        Ok(())
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_percentiles_count_each_batch_once_per_record() {
        let ms = Duration::from_millis;
        let mut samples = vec![(ms(5), 98), (ms(1), 1), (ms(100), 1)];
        let (p50, p99, max) = weighted_percentiles(&mut samples);
        assert_eq!((p50, p99, max), (ms(5), ms(5), ms(100)));
    }
}
