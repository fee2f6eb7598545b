//! A task: the nodes of one sub-topology for one partition, its overlay and stores, its
//! stream time and punctuation schedules. I/O-free: the runtime and the test driver feed
//! it raw records and time, and take its outputs and changelog records.
//!
//! Invariants:
//! - a record that fails (handler: log-and-continue or dead-letter) leaves no trace in the
//!   overlay or the outputs: its writes are undone from the overlay's journal;
//! - stream time never decreases between commits; an abort resets it to the committed one.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::{ProcessError, SerdeError, StoreError, StreamsError};
use crate::record::{OutputRecord, RawRecord, TaskId};
use crate::store::global::GlobalStores;
use crate::store::overlay::Overlay;
use crate::store::{KvPairs, TaskMeta, TaskState};
use crate::topology::{ErasedRecord, Node, NodeId, Topology};

/// How sinks hand over their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputMode {
    /// Serialize every record into [`TaskEnv::outputs`] (the runtime, the test driver).
    #[default]
    Serialize,
    /// The in-process runner: records for topics the topology reads (repartition topics)
    /// are handed over typed in [`TaskEnv::handoffs`], with the partition the producer
    /// would pick (murmur2 of the serialized key over `partitions`); records for other
    /// topics are counted in [`TaskEnv::sunk`], and serialized only when `capture`.
    InProcess {
        /// Partitions of the internal topics.
        partitions: i32,
        /// Also serialize external outputs into [`TaskEnv::outputs`].
        capture: bool,
    },
}

/// A typed record for a topic the topology reads, handed over without serialization.
pub(crate) struct Handoff {
    /// The topic (resolved name).
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// The record.
    pub record: ErasedRecord,
}

/// What to do with a record that fails to deserialize or to process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorHandler {
    /// Stop the application with the error (the default, as in Kafka Streams).
    #[default]
    Fail,
    /// Log the error and skip the record.
    LogAndContinue,
    /// Produce the original record to this topic with headers naming the error, the
    /// original topic, partition, offset and timestamp (in the same transaction under
    /// exactly-once), and skip it.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// When a punctuator fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// On stream time (the task's max record timestamp): deterministic, replays identically.
    StreamTime,
    /// On wall-clock time (the system clock, or the test driver's clock).
    WallClock,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub node: NodeId,
    pub kind: PunctuationType,
    pub interval_ms: i64,
    /// Next multiple of the interval at which it fires; `None` until time is known.
    pub next_ms: Option<i64>,
}

/// The current input record's coordinates.
#[derive(Debug, Clone)]
pub(crate) struct RecordMeta {
    /// Shared with the task's source list: setting it per record costs no allocation.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// Everything of a task except its nodes (so a node can borrow it while running).
pub(crate) struct TaskEnv {
    pub app_id: String,
    pub task: TaskId,
    pub state: Box<dyn TaskState>,
    pub overlay: Overlay,
    pub stores: Vec<String>,
    pub outputs: Vec<OutputRecord>,
    pub current: RecordMeta,
    pub stream_time_ms: i64,
    pub committed_stream_time_ms: i64,
    pub wall_clock_ms: i64,
    pub schedules: Vec<Schedule>,
    pub globals: GlobalStores,
    /// Where records that cannot be processed go (the handlers' dead-letter topic).
    pub dead_letter_topic: Option<String>,
    /// Records too late for every window they belong to, since the task started.
    pub late_records: u64,
    /// How sinks hand over records.
    pub output_mode: OutputMode,
    /// Typed records for internal topics (in-process mode only).
    pub handoffs: Vec<Handoff>,
    /// Records sinks wrote to external topics without serializing them (in-process mode).
    pub sunk: u64,
    /// A counter for spreading null-keyed records over partitions (in-process mode).
    pub round_robin: u32,
    /// The attempt of the record being processed (1, then 2, 3, … from retry topics).
    pub attempt: u32,
    /// Records sent to retry topics, since the last take.
    pub retry_topic_records: u64,
}

/// A record for the dead-letter topic, with why it is there.
pub(crate) struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    /// The record's own headers (the error headers are appended).
    pub headers: crate::record::Headers,
    /// `deserialization`, `processing`, `timestamp`, `late`, …
    pub kind: &'static str,
    pub error: String,
    /// Further `strom.*` headers (window, stream time, lateness).
    pub extra: Vec<(&'static str, String)>,
}

impl TaskEnv {
    /// Produces `letter` to the application's dead-letter topic with headers naming the
    /// error and the input record it came from (in the task's transaction). Returns
    /// false, after a log line, when the application has no dead-letter topic.
    pub fn dead_letter(&mut self, letter: DeadLetter) -> bool {
        let topic = self.dead_letter_topic.clone();
        self.dead_letter_to(topic, letter)
    }

    /// Counts a record too late for `window` (closed at stream time `closed_at_ms`) and
    /// sends it to the dead-letter topic with the window, stream time and lateness: one
    /// format for every windowed operator and for processors
    /// ([`crate::processor::ProcessorContext::report_late`]).
    pub fn late(
        &mut self,
        record: crate::processor::LateRecord,
        window: crate::window::Window,
        closed_at_ms: i64,
        stream_time_ms: i64,
    ) {
        self.late_records += 1;
        let t = record.timestamp_ms;
        self.dead_letter(DeadLetter {
            key: record.key,
            value: record.value,
            timestamp_ms: t,
            headers: record.headers,
            kind: "late",
            error: format!(
                "record at {t} is too late for window [{}, {}) closed at stream time {closed_at_ms}",
                window.start_ms, window.end_ms
            ),
            extra: vec![
                ("strom.window.start", window.start_ms.to_string()),
                ("strom.window.end", window.end_ms.to_string()),
                ("strom.stream.time", stream_time_ms.to_string()),
                (
                    "strom.lateness.ms",
                    stream_time_ms.saturating_sub(closed_at_ms).to_string(),
                ),
            ],
        });
    }

    /// As [`TaskEnv::dead_letter`] to `topic` (`None`: log and skip).
    fn dead_letter_to(&mut self, topic: Option<String>, letter: DeadLetter) -> bool {
        let origin = self.current.clone();
        self.dead_letter_from(topic, letter, &origin)
    }

    /// As [`TaskEnv::dead_letter_to`], naming `origin` as the original record (a record
    /// that came back from a retry topic names where it was first read).
    pub fn dead_letter_from(
        &mut self,
        topic: Option<String>,
        letter: DeadLetter,
        origin: &RecordMeta,
    ) -> bool {
        let Some(topic) = topic else {
            tracing::warn!(task = %self.task, topic = %self.current.topic,
                partition = self.current.partition, offset = self.current.offset,
                kind = letter.kind, error = %letter.error, "skipping record");
            return false;
        };
        tracing::warn!(task = %self.task, topic = %self.current.topic,
            partition = self.current.partition, offset = self.current.offset,
            kind = letter.kind, error = %letter.error, dlq = %topic, "record to dead-letter topic");
        let mut headers = letter.headers;
        let mut h = |k: &str, v: String| headers.push((k.to_string(), Some(v.into_bytes())));
        h("strom.error.kind", letter.kind.to_string());
        h("strom.error", letter.error);
        h("strom.original.topic", origin.topic.to_string());
        h("strom.original.partition", origin.partition.to_string());
        h("strom.original.offset", origin.offset.to_string());
        h("strom.original.timestamp", letter.timestamp_ms.to_string());
        for (k, v) in letter.extra {
            h(k, v);
        }
        self.outputs.push(OutputRecord {
            topic,
            partition: None,
            key: letter.key,
            value: letter.value,
            timestamp_ms: letter.timestamp_ms,
            headers,
        });
        true
    }

    pub fn check_store(&self, store: &str) -> Result<(), ProcessError> {
        if self.stores.iter().any(|s| s == store) {
            Ok(())
        } else {
            Err(ProcessError::user(format!(
                "store {store} is not connected to this processor's sub-topology"
            )))
        }
    }
    pub fn store_get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        self.check_store(store)?;
        Ok(self.overlay.get(self.state.as_ref(), store, key)?)
    }
    /// Calls `f` with a key's value (overlay ∪ store) without copying it.
    pub fn store_get_with<R>(
        &self,
        store: &str,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, ProcessError> {
        self.check_store(store)?;
        Ok(self.overlay.get_with(self.state.as_ref(), store, key, f)?)
    }
    pub fn store_range(
        &self,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, ProcessError> {
        self.check_store(store)?;
        Ok(self.overlay.range(self.state.as_ref(), store, from, to)?)
    }
    pub fn store_write(
        &mut self,
        store: &str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<(), ProcessError> {
        self.check_store(store)?;
        self.overlay.write(store, key, value);
        Ok(())
    }
}

/// The view of a task a node gets while it runs.
pub(crate) struct NodeContext<'a> {
    pub env: &'a mut TaskEnv,
    pub node: NodeId,
    /// (child index or all children, record): a buffer the task reuses.
    pub forwards: &'a mut Vec<(Option<usize>, ErasedRecord)>,
}

/// Outcome of one input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Processed {
    Ok,
    /// Skipped by the handler (logged or dead-lettered).
    Skipped,
    /// Not processed: try again after this many wall-clock milliseconds.
    Retry(i64),
}

pub(crate) struct Task {
    pub id: TaskId,
    topology: Topology,
    exec: Exec,
    pub env: TaskEnv,
    deser_handler: ErrorHandler,
    process_handler: ErrorHandler,
    sources: std::collections::HashMap<String, (u32, usize)>,
    /// Resolved name of every source of the topology, by source index.
    source_topics: Vec<Arc<str>>,
}

/// The nodes of a task and the buffers that carry records between them, kept apart
/// from the topology so that running them borrows nothing shared: the hot path clones
/// no `Arc` (whose counter every thread would write) and allocates no buffer.
struct Exec {
    nodes: Vec<Option<Box<dyn Node>>>,
    /// Children of every node (a copy of the topology's).
    children: Vec<Vec<NodeId>>,
    /// Node names, for errors.
    names: Vec<String>,
    stack: Vec<(NodeId, ErasedRecord)>,
    forwards: Vec<(Option<usize>, ErasedRecord)>,
}

impl Exec {
    /// Runs `f` on one node, then every record it forwarded, depth first (as Kafka
    /// Streams does: a record reaches the end of its branch before the next one starts).
    fn run(
        &mut self,
        env: &mut TaskEnv,
        start: NodeId,
        f: impl FnOnce(&mut dyn Node, &mut NodeContext<'_>) -> Result<(), ProcessError>,
    ) -> Result<(), ProcessError> {
        let Exec {
            nodes,
            children,
            names,
            stack,
            forwards,
        } = self;
        // A failed run may leave records behind: they belong to no later run.
        stack.clear();
        forwards.clear();
        let task = env.task;
        let missing = |id: NodeId| {
            ProcessError::user(format!(
                "internal: node {} is not part of task {task}",
                names[id]
            ))
        };
        let Some(node) = nodes[start].as_mut() else {
            return Err(missing(start));
        };
        let mut ctx = NodeContext {
            env,
            node: start,
            forwards,
        };
        f(node.as_mut(), &mut ctx)?;
        push_forwards(&children[start], forwards, stack);
        while let Some((node_id, rec)) = stack.pop() {
            let Some(node) = nodes[node_id].as_mut() else {
                return Err(missing(node_id));
            };
            let mut ctx = NodeContext {
                env,
                node: node_id,
                forwards,
            };
            node.process(&mut ctx, rec)?;
            push_forwards(&children[node_id], forwards, stack);
        }
        Ok(())
    }
}

impl Task {
    /// Instantiates the sub-topology's nodes and runs their `init`.
    pub fn new(
        topology: &Topology,
        app_id: &str,
        id: TaskId,
        state: Box<dyn TaskState>,
        deser_handler: ErrorHandler,
        process_handler: ErrorHandler,
        globals: GlobalStores,
    ) -> Result<Self, StreamsError> {
        let inner = &topology.inner;
        let sub = inner
            .subtopologies
            .get(id.subtopology as usize)
            .ok_or_else(|| StreamsError::Topology(format!("no sub-topology {}", id.subtopology)))?;
        let meta = state.meta()?;
        let dead_letter_topic =
            [&process_handler, &deser_handler]
                .into_iter()
                .find_map(|h| match h {
                    ErrorHandler::DeadLetter { topic } => Some(topic.clone()),
                    _ => None,
                });
        let mut nodes: Vec<Option<Box<dyn Node>>> = (0..inner.nodes.len()).map(|_| None).collect();
        for &n in &sub.nodes {
            nodes[n] = Some((inner.nodes[n].factory)(app_id));
        }
        let exec = Exec {
            nodes,
            children: inner.nodes.iter().map(|n| n.children.clone()).collect(),
            names: inner.nodes.iter().map(|n| n.name.clone()).collect(),
            stack: Vec::new(),
            forwards: Vec::new(),
        };
        let source_topics = inner
            .sources
            .iter()
            .map(|s| Arc::from(s.topic.resolve(app_id)))
            .collect();
        let mut task = Task {
            id,
            topology: topology.clone(),
            exec,
            source_topics,
            env: TaskEnv {
                app_id: app_id.to_string(),
                task: id,
                state,
                overlay: Overlay::default(),
                stores: sub.stores.clone(),
                outputs: Vec::new(),
                current: RecordMeta {
                    topic: Arc::from(""),
                    partition: id.partition,
                    offset: -1,
                },
                stream_time_ms: meta.stream_time_ms,
                committed_stream_time_ms: meta.stream_time_ms,
                wall_clock_ms: 0,
                schedules: Vec::new(),
                globals,
                dead_letter_topic,
                late_records: 0,
                output_mode: OutputMode::Serialize,
                handoffs: Vec::new(),
                sunk: 0,
                round_robin: 0,
                attempt: 1,
                retry_topic_records: 0,
            },
            deser_handler,
            process_handler,
            sources: topology.source_index(app_id),
        };
        for n in sub.nodes.clone() {
            task.run(n, |node, ctx| node.init(ctx))
                .map_err(|e| StreamsError::Processing {
                    topic: String::new(),
                    partition: id.partition,
                    offset: -1,
                    source: e,
                })?;
        }
        task.rearm_stream_time_schedules();
        Ok(task)
    }

    /// Runs `f` on one node and everything it forwards.
    fn run(
        &mut self,
        start: NodeId,
        f: impl FnOnce(&mut dyn Node, &mut NodeContext<'_>) -> Result<(), ProcessError>,
    ) -> Result<(), ProcessError> {
        self.exec.run(&mut self.env, start, f)
    }

    /// Processes one input record; errors go to the handlers.
    pub fn process(&mut self, raw: &RawRecord) -> Result<Processed, StreamsError> {
        let Some(&(_, source)) = self.sources.get(&raw.topic) else {
            return Err(StreamsError::Topology(format!(
                "no source reads {}",
                raw.topic
            )));
        };
        if self.topology.inner.sources[source].retry_topic {
            if let Some(wait_ms) =
                crate::retry_topics::wait_ms(&raw.headers, self.env.wall_clock_ms)
            {
                // Read before its due time: only this retry partition waits (paused),
                // the task's other inputs go on.
                return Ok(Processed::Retry(wait_ms));
            }
        }
        self.env.current = RecordMeta {
            topic: self.source_topics[source].clone(),
            partition: raw.partition,
            offset: raw.offset,
        };
        let src = &self.topology.inner.sources[source];
        let decoded = (src.decode)(raw).and_then(|r| self.timestamp(source, r));
        let record = match decoded {
            Ok(r) => r,
            Err(SerdeError::Unavailable { after_ms, reason }) => {
                tracing::warn!(task = %self.id, topic = %raw.topic, offset = raw.offset, reason, "deserializer unavailable: retrying");
                return Ok(Processed::Retry(after_ms.max(1)));
            }
            Err(e) => return self.deserialization_failed(Some(raw), e),
        };
        self.process_decoded(source, record, Some(raw))
    }

    /// Processes one record of source `source` given typed (the in-process runner):
    /// the same path as [`Task::process`] from the timestamp on. Its dead letters, if
    /// any, carry no key and value (there are no bytes to carry).
    pub fn process_typed(
        &mut self,
        source: usize,
        record: ErasedRecord,
        partition: i32,
        offset: i64,
    ) -> Result<Processed, StreamsError> {
        self.env.current = RecordMeta {
            topic: self.source_topics[source].clone(),
            partition,
            offset,
        };
        match self.timestamp(source, record) {
            Ok(r) => self.process_decoded(source, r, None),
            Err(e) => self.deserialization_failed(None, e),
        }
    }

    /// The record's event time: the source's extractor, processing time, or the record
    /// timestamp; negative is unusable.
    fn timestamp(&self, source: usize, mut r: ErasedRecord) -> Result<ErasedRecord, SerdeError> {
        let src = &self.topology.inner.sources[source];
        if let Some(extract) = &src.extract {
            r.timestamp_ms =
                extract(r.key.as_any(), r.value.as_any(), r.timestamp_ms).ok_or_else(|| {
                    SerdeError::Timestamp("the timestamp extractor found none".into())
                })?;
        }
        if src.processing_time {
            r.timestamp_ms = self.env.wall_clock_ms;
        }
        if r.timestamp_ms < 0 {
            return Err(SerdeError::Timestamp(format!(
                "record timestamp {} is negative",
                r.timestamp_ms
            )));
        }
        Ok(r)
    }

    /// The deserialization handler's decision on a record that could not be decoded.
    fn deserialization_failed(
        &mut self,
        raw: Option<&RawRecord>,
        e: SerdeError,
    ) -> Result<Processed, StreamsError> {
        let kind = match e {
            SerdeError::Timestamp(_) => "timestamp",
            _ => "deserialization",
        };
        let handler = self.deser_handler.clone();
        match handler {
            ErrorHandler::Fail => Err(StreamsError::Deserialization {
                topic: self.env.current.topic.to_string(),
                partition: self.env.current.partition,
                offset: self.env.current.offset,
                source: e,
            }),
            other => {
                self.dead_letter(&other, raw, kind, &e.to_string());
                Ok(Processed::Skipped)
            }
        }
    }

    /// Runs a decoded, timestamped record through the sub-topology.
    fn process_decoded(
        &mut self,
        source: usize,
        record: ErasedRecord,
        raw: Option<&RawRecord>,
    ) -> Result<Processed, StreamsError> {
        let node = self.topology.inner.sources[source].node;
        let stream_time_before = self.env.stream_time_ms;
        self.env.stream_time_ms = self.env.stream_time_ms.max(record.timestamp_ms);
        let outputs_before = self.env.outputs.len();
        let handoffs_before = self.env.handoffs.len();
        let sunk_before = self.env.sunk;
        self.env.overlay.begin_record();
        let result = self.run(node, |_, ctx| {
            ctx.forwards.push((None, record));
            Ok(())
        });
        match result {
            Ok(()) => {
                self.env.overlay.end_record();
            }
            Err(e) => {
                // Undo the failed record's effects so that it leaves no trace.
                self.env.overlay.undo_record();
                self.env.outputs.truncate(outputs_before);
                self.env.handoffs.truncate(handoffs_before);
                self.env.sunk = sunk_before;
                if let ProcessError::Retry { after_ms, .. } = e {
                    self.env.stream_time_ms = stream_time_before;
                    return Ok(Processed::Retry(after_ms.max(1)));
                }
                let handler = match e {
                    // A store failure is not the record's fault: never skip it.
                    ProcessError::Store(_) => ErrorHandler::Fail,
                    _ => self.process_handler.clone(),
                };
                match handler {
                    ErrorHandler::Fail => {
                        return Err(StreamsError::Processing {
                            topic: self.env.current.topic.to_string(),
                            partition: self.env.current.partition,
                            offset: self.env.current.offset,
                            source: e,
                        })
                    }
                    other => {
                        self.dead_letter(&other, raw, "processing", &e.to_string());
                        return Ok(Processed::Skipped);
                    }
                }
            }
        }
        if self.env.schedules.is_empty() {
            return Ok(Processed::Ok);
        }
        self.punctuate(PunctuationType::StreamTime, self.env.stream_time_ms)
            .map_err(|e| StreamsError::Processing {
                topic: self.env.current.topic.to_string(),
                partition: self.env.current.partition,
                offset: self.env.current.offset,
                source: e,
            })?;
        Ok(Processed::Ok)
    }

    fn dead_letter(
        &mut self,
        handler: &ErrorHandler,
        raw: Option<&RawRecord>,
        kind: &'static str,
        error: &str,
    ) {
        let letter = DeadLetter {
            key: raw.and_then(|r| r.key.clone()),
            value: raw.and_then(|r| r.value.clone()),
            timestamp_ms: raw.map_or(self.env.stream_time_ms, |r| r.timestamp_ms),
            headers: raw.map(|r| r.headers.clone()).unwrap_or_default(),
            kind,
            error: error.to_string(),
            extra: Vec::new(),
        };
        let topic = match handler {
            ErrorHandler::Fail => return,
            ErrorHandler::LogAndContinue => None,
            ErrorHandler::DeadLetter { topic } => Some(topic.clone()),
        };
        self.env.dead_letter_to(topic, letter);
    }

    /// Fires due punctuators of one kind at `now_ms`.
    pub fn punctuate(&mut self, kind: PunctuationType, now_ms: i64) -> Result<(), ProcessError> {
        if now_ms < 0 {
            return Ok(());
        }
        for i in 0..self.env.schedules.len() {
            let s = self.env.schedules[i].clone();
            if s.kind != kind || s.interval_ms <= 0 {
                continue;
            }
            let aligned_next = next_multiple(now_ms, s.interval_ms);
            let Some(next) = s.next_ms else {
                // First time seen: fire at the next multiple of the interval.
                self.env.schedules[i].next_ms = Some(aligned_next);
                continue;
            };
            if now_ms >= next {
                self.env.schedules[i].next_ms = Some(aligned_next);
                self.env.current = RecordMeta {
                    topic: Arc::from(""),
                    partition: self.id.partition,
                    offset: -1,
                };
                self.run(s.node, |node, ctx| node.punctuate(ctx, i, now_ms))?;
            }
        }
        Ok(())
    }

    /// Sets the wall clock processors see, without firing punctuators.
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.env.wall_clock_ms = now_ms;
    }

    /// Advances the wall clock and fires wall-clock punctuators. With
    /// `stream_time_lag_ms`, stream time also moves up to `now - lag` (the opt-in advance
    /// for quiet partitions: windows close without new records, at the cost of
    /// determinism).
    pub fn advance_wall_clock(
        &mut self,
        now_ms: i64,
        stream_time_lag_ms: Option<i64>,
    ) -> Result<(), ProcessError> {
        self.env.wall_clock_ms = now_ms;
        self.punctuate(PunctuationType::WallClock, now_ms)?;
        match stream_time_lag_ms {
            Some(lag) => self.advance_stream_time(now_ms.saturating_sub(lag)),
            None => Ok(()),
        }
    }

    /// Late records counted since the last call.
    pub fn take_late_records(&mut self) -> u64 {
        std::mem::take(&mut self.env.late_records)
    }

    /// Records sent to retry topics since the last call.
    pub fn take_retry_topic_records(&mut self) -> u64 {
        std::mem::take(&mut self.env.retry_topic_records)
    }

    /// Takes the records produced since the last call.
    pub fn take_outputs(&mut self) -> Vec<OutputRecord> {
        std::mem::take(&mut self.env.outputs)
    }

    /// The changelog records of the overlay (one per written key), for every store.
    pub fn changelog_records(&self) -> Vec<(String, OutputRecord)> {
        let mut out = Vec::new();
        let ts = self.env.stream_time_ms.max(0);
        for (store, writes) in self.env.overlay.writes() {
            let topic = Topology::changelog_topic(&self.env.app_id, store);
            for (k, v) in writes {
                out.push((
                    store.clone(),
                    OutputRecord {
                        topic: topic.clone(),
                        partition: Some(self.id.partition),
                        key: Some(k.clone()),
                        value: v.clone(),
                        timestamp_ms: ts,
                        headers: Vec::new(),
                    },
                ));
            }
        }
        out
    }

    /// After a successful commit: applies the overlay and the meta atomically.
    /// `changelog_next` holds, per store written, the offset after its last changelog record.
    pub fn apply(&mut self, changelog_next: &BTreeMap<String, i64>) -> Result<(), StoreError> {
        let mut meta = self.env.state.meta()?;
        for (s, o) in changelog_next {
            let e = meta.changelog_next.entry(s.clone()).or_insert(*o);
            *e = (*e).max(*o);
        }
        meta.stream_time_ms = self.env.stream_time_ms;
        self.env.state.apply(self.env.overlay.writes(), &meta)?;
        self.env.overlay.clear();
        self.env.committed_stream_time_ms = self.env.stream_time_ms;
        Ok(())
    }

    /// After an abort: drops the overlay and outputs, resets stream time.
    pub fn abort(&mut self, committed_stream_time_ms: Option<i64>) {
        self.env.overlay.clear();
        self.env.outputs.clear();
        if let Some(t) = committed_stream_time_ms {
            self.env.committed_stream_time_ms = t;
        }
        self.env.stream_time_ms = self.env.committed_stream_time_ms;
        self.rearm_stream_time_schedules();
    }

    /// Sets the stream time the runtime read from the committed offsets' metadata.
    pub fn set_committed_stream_time(&mut self, t: i64) {
        self.env.committed_stream_time_ms = t;
        self.env.stream_time_ms = t;
        self.rearm_stream_time_schedules();
    }

    /// Points stream-time punctuators at the first interval after the current stream
    /// time, so a restarted or aborted task fires them exactly where the original run did.
    fn rearm_stream_time_schedules(&mut self) {
        let now = self.env.stream_time_ms;
        for s in &mut self.env.schedules {
            if s.kind == PunctuationType::StreamTime {
                s.next_ms = (now >= 0).then(|| next_multiple(now, s.interval_ms));
            }
        }
    }

    /// Moves stream time forward to `t` (never back) and fires stream-time punctuators.
    fn advance_stream_time(&mut self, t: i64) -> Result<(), ProcessError> {
        if t <= self.env.stream_time_ms {
            return Ok(());
        }
        self.env.stream_time_ms = t;
        self.punctuate(PunctuationType::StreamTime, t)
    }

    /// The meta of the base.
    pub fn meta(&self) -> Result<TaskMeta, StoreError> {
        self.env.state.meta()
    }

    /// Restore: applies changelog records of one store directly to the base, advancing
    /// its `changelog_next` to `next_offset` in the same atomic batch.
    pub fn restore_batch(
        &mut self,
        store: &str,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        next_offset: i64,
    ) -> Result<(), StoreError> {
        let mut meta = self.env.state.meta()?;
        meta.changelog_next.insert(store.to_string(), next_offset);
        let mut writes = BTreeMap::new();
        writes.insert(store.to_string(), records.into_iter().collect());
        self.env.state.apply(&writes, &meta)
    }

    /// Wipes the base (changelog truncated past what we applied, or a format change).
    pub fn wipe(&mut self) -> Result<(), StoreError> {
        self.env.state.wipe()
    }

    /// The overlay's size in bytes (a commit trigger).
    pub fn overlay_bytes(&self) -> usize {
        self.env.overlay.bytes()
    }

    /// Reads a store through the overlay (the test driver's view).
    pub fn store_range(&self, store: &str) -> Result<KvPairs, ProcessError> {
        self.env
            .store_range(store, Bound::Unbounded, Bound::Unbounded)
    }

    /// Reads a key range of a store's committed state (interactive queries: never the
    /// overlay's uncommitted writes).
    pub fn committed_range(
        &self,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, ProcessError> {
        self.env.check_store(store)?;
        Ok(self.env.state.range(store, from, to)?)
    }

    /// Reads one key through the overlay.
    pub fn store_get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        self.env.store_get(store, key)
    }

    /// True when a processor scheduled a wall-clock punctuator.
    pub fn has_wall_clock_schedules(&self) -> bool {
        self.env
            .schedules
            .iter()
            .any(|s| s.kind == PunctuationType::WallClock)
    }

    /// The task's stream time.
    pub fn stream_time_ms(&self) -> i64 {
        self.env.stream_time_ms
    }

    /// The stores of this task.
    pub fn stores(&self) -> &[String] {
        &self.env.stores
    }

    /// Approximate keys in a store's base.
    pub fn store_len(&self, store: &str) -> u64 {
        self.env.state.approximate_len(store)
    }
}

/// Shared reference to the topology's store list, for the runtime.
pub(crate) fn subtopology_stores(topology: &Topology, sub: u32) -> Vec<String> {
    topology
        .inner
        .subtopologies
        .get(sub as usize)
        .map(|s| s.stores.clone())
        .unwrap_or_default()
}

/// The first multiple of `interval` after `now` (saturating at the end of time).
fn next_multiple(now: i64, interval: i64) -> i64 {
    (now / interval).saturating_add(1).saturating_mul(interval)
}

/// Moves forwarded records onto the stack so that the first one forwarded runs first
/// (and, for a record sent to every child, the first child first).
fn push_forwards(
    children: &[NodeId],
    forwards: &mut Vec<(Option<usize>, ErasedRecord)>,
    stack: &mut Vec<(NodeId, ErasedRecord)>,
) {
    for (target, rec) in forwards.drain(..).rev() {
        match target {
            Some(i) => {
                if let Some(&c) = children.get(i) {
                    stack.push((c, rec));
                }
            }
            None => {
                // Clones for all children but the first, which takes the record itself.
                if let Some((&first, rest)) = children.split_first() {
                    for &c in rest.iter().rev() {
                        stack.push((c, rec.clone()));
                    }
                    stack.push((first, rec));
                }
            }
        }
    }
}
