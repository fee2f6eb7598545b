//! The processor API beneath the DSL: write a [`Processor`], give it state stores through
//! [`StoreHandle`]s, schedule punctuators on stream time or wall-clock time.
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! /// Sums amounts per key in a store and emits the running balance.
//! struct Balance { store: StoreHandle<String, i64> }
//!
//! impl Processor<String, i64, String, i64> for Balance {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, '_, String, i64>,
//!                record: Record<String, i64>) -> Result<(), ProcessError> {
//!         let mut store = ctx.store(&self.store)?;
//!         let balance = store.get(&record.key)?.unwrap_or(0) + record.value;
//!         store.put(&record.key, &balance)?;
//!         ctx.forward(Record::new(record.key, balance, record.timestamp_ms));
//!         Ok(())
//!     }
//! }
//!
//! let builder = StreamsBuilder::new();
//! let balances = StoreHandle::new("balances", StringSerde, I64Serde);
//! let handle = balances.clone();
//! builder
//!     .stream("payments", StringSerde, I64Serde)
//!     .process(move || Balance { store: handle.clone() }, &[balances.name()])
//!     .to("balances-out", StringSerde, I64Serde);
//! builder.add_store(&balances);
//! let mut driver = TopologyTestDriver::new(&builder.build().unwrap()).unwrap();
//! driver.pipe("payments", &StringSerde, &I64Serde, &"a".to_string(), &5, 1).unwrap();
//! driver.pipe("payments", &StringSerde, &I64Serde, &"a".to_string(), &7, 2).unwrap();
//! let out = driver.read_output("balances-out", &StringSerde, &I64Serde).unwrap();
//! assert_eq!(out.iter().map(|r| r.value).collect::<Vec<_>>(), vec![5, 12]);
//! ```

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::error::ProcessError;
use crate::record::{Headers, OutputRecord, Record, TaskId};
use crate::serdes::Serde;
use crate::task::{NodeContext, PunctuationType, Schedule};
use crate::topology::{downcast, ErasedRecord, Node};
use crate::window::Window;

/// Values that flow through a topology.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A processor: the unit of the processor API (and of every DSL operator).
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once when the task starts: schedule punctuators here.
    fn init(
        &mut self,
        _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), ProcessError>;
    /// A punctuator scheduled with [`ProcessorContext::schedule`] fired at `time_ms`.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, '_, KOut, VOut>,
        _schedule: ScheduleId,
        _time_ms: i64,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
}

/// Identifies a punctuation schedule of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleId(pub usize);

/// A processor's view of its task: forward records, use stores, schedule punctuators.
pub struct ProcessorContext<'c, 'e, K, V> {
    inner: &'c mut NodeContext<'e>,
    _types: PhantomData<fn(K, V)>,
}

impl<'c, 'e, K: Data, V: Data> ProcessorContext<'c, 'e, K, V> {
    pub(crate) fn new(inner: &'c mut NodeContext<'e>) -> Self {
        ProcessorContext {
            inner,
            _types: PhantomData,
        }
    }

    /// The task's environment, for the crate's stateful operators (raw store access,
    /// the dead-letter topic).
    pub(crate) fn env(&mut self) -> &mut crate::task::TaskEnv {
        self.inner.env
    }

    /// Sends a record to every child.
    pub fn forward(&mut self, record: Record<K, V>) {
        self.inner.forwards.push((None, erase(record)));
    }

    /// Sends a record to one child (by the order children were added; used by `branch`).
    pub fn forward_to(&mut self, child: usize, record: Record<K, V>) {
        self.inner.forwards.push((Some(child), erase(record)));
    }

    /// A typed view of a state store connected to this processor.
    pub fn store<'s, SK, SV>(
        &'s mut self,
        handle: &'s StoreHandle<SK, SV>,
    ) -> Result<KvStore<'s, SK, SV>, ProcessError> {
        self.inner.env.check_store(&handle.name)?;
        Ok(KvStore {
            env: self.inner.env,
            handle,
        })
    }

    /// A read-only view of a global table (every partition of its topic).
    pub fn global<'s, GK: 'static, GV: 'static>(
        &'s self,
        table: &'s GlobalTable<GK, GV>,
    ) -> Result<GlobalView<'s, GK, GV>, ProcessError> {
        if !self.inner.env.globals.contains(table.handle.name()) {
            return Err(ProcessError::user(format!(
                "no global table {}",
                table.handle.name()
            )));
        }
        Ok(GlobalView {
            globals: &self.inner.env.globals,
            table,
        })
    }

    /// Schedules `punctuate` every `interval_ms` of stream time or wall-clock time. It
    /// fires each time the clock crosses a multiple of the interval.
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> ScheduleId {
        self.inner.env.schedules.push(Schedule {
            node: self.inner.node,
            kind,
            interval_ms: interval_ms.max(1),
            next_ms: None,
        });
        ScheduleId(self.inner.env.schedules.len() - 1)
    }

    /// The task's stream time: the largest record timestamp it has seen (-1 before any).
    pub fn stream_time_ms(&self) -> i64 {
        self.inner.env.stream_time_ms
    }

    /// The wall-clock time of the last wall-clock advance.
    pub fn wall_clock_ms(&self) -> i64 {
        self.inner.env.wall_clock_ms
    }

    /// Topic of the input record being processed (empty inside a punctuator).
    pub fn topic(&self) -> &str {
        &self.inner.env.current.topic
    }

    /// Partition of the input record being processed.
    pub fn partition(&self) -> i32 {
        self.inner.env.current.partition
    }

    /// Offset of the input record being processed (-1 inside a punctuator).
    pub fn offset(&self) -> i64 {
        self.inner.env.current.offset
    }

    /// The attempt at the current record: 1, then 2, 3, … when it comes back from a
    /// retry topic ([`crate::dsl::KStream::process_with_retry_topics`]).
    pub fn attempt(&self) -> u32 {
        self.inner.env.attempt
    }

    /// The task this processor runs in.
    pub fn task_id(&self) -> TaskId {
        self.inner.env.task
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.inner.env.app_id
    }

    /// Produces a serialized record to any topic (in the task's transaction).
    pub fn send(&mut self, record: OutputRecord) {
        self.inner.env.outputs.push(record);
    }

    /// Reports an input record that came too late for `window`, which closed when stream
    /// time reached `closed_at_ms`: a processor that keeps its own windows (state per
    /// day, say) drops such a record the way the built-in windowed operators do. It is
    /// counted in the task's late records and goes to the application's dead-letter
    /// topic in the task's transaction, with `strom.error.kind: late`,
    /// `strom.window.start/end`, `strom.stream.time`, `strom.lateness.ms` and the
    /// original topic/partition/offset/timestamp headers; without a dead-letter topic it
    /// is logged and skipped. `key` and `value` are the record as the processor's input
    /// serdes write it (what a reprocessing application would read back).
    pub fn report_late(&mut self, late: LateRecord, window: Window, closed_at_ms: i64) {
        let stream_time = self.inner.env.stream_time_ms;
        self.inner.env.late(late, window, closed_at_ms, stream_time);
    }
}

/// A record too late for its window, serialized, for [`ProcessorContext::report_late`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LateRecord {
    /// The serialized key (`None`: a null key).
    pub key: Option<Vec<u8>>,
    /// The serialized value (`None`: a null value).
    pub value: Option<Vec<u8>>,
    /// The record's timestamp (its event time).
    pub timestamp_ms: i64,
    /// The record's headers (the dead-letter headers are appended to them).
    pub headers: Headers,
}

pub(crate) fn erase<K: Data, V: Data>(r: Record<K, V>) -> ErasedRecord {
    ErasedRecord {
        key: Box::new(r.key),
        value: Box::new(r.value),
        timestamp_ms: r.timestamp_ms,
        headers: r.headers,
    }
}

pub(crate) fn unerase<K: Data, V: Data>(r: ErasedRecord) -> Result<Record<K, V>, ProcessError> {
    Ok(Record {
        key: downcast::<K>(r.key, "key")?,
        value: downcast::<V>(r.value, "value")?,
        timestamp_ms: r.timestamp_ms,
        headers: r.headers,
    })
}

/// A typed name for a key-value store: its name and serdes. Clone it into processors.
pub struct StoreHandle<K, V> {
    name: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> Clone for StoreHandle<K, V> {
    fn clone(&self) -> Self {
        StoreHandle {
            name: self.name.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> StoreHandle<K, V> {
    /// A store named `name` (its changelog is `<application.id>-<name>-changelog`).
    pub fn new(name: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        StoreHandle {
            name: Arc::from(name),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }

    pub(crate) fn from_parts(
        name: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        StoreHandle {
            name: Arc::from(name),
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Serializes a key (keys are ordered by these bytes in range scans).
    pub fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        Ok(self.key_serde.serialize(key)?)
    }

    pub(crate) fn decode_pair(&self, k: &[u8], v: &[u8]) -> Result<(K, V), ProcessError> {
        Ok((
            self.key_serde.deserialize(k)?,
            self.value_serde.deserialize(v)?,
        ))
    }

    pub(crate) fn decode_value(&self, v: &[u8]) -> Result<V, ProcessError> {
        Ok(self.value_serde.deserialize(v)?)
    }
}

/// A typed key-value store inside a task: reads see uncommitted writes of this task.
pub struct KvStore<'s, K, V> {
    env: &'s mut crate::task::TaskEnv,
    handle: &'s StoreHandle<K, V>,
}

impl<K: 'static, V: 'static> KvStore<'_, K, V> {
    /// Reads a key.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessError> {
        let k = self.handle.key_serde.serialize(key)?;
        match self.env.store_get(&self.handle.name, &k)? {
            Some(v) => Ok(Some(self.handle.value_serde.deserialize(&v)?)),
            None => Ok(None),
        }
    }

    /// Writes a key.
    pub fn put(&mut self, key: &K, value: &V) -> Result<(), ProcessError> {
        let k = self.handle.key_serde.serialize(key)?;
        let v = self.handle.value_serde.serialize(value)?;
        self.env.store_write(&self.handle.name, k, Some(v))
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: &K) -> Result<(), ProcessError> {
        let k = self.handle.key_serde.serialize(key)?;
        self.env.store_write(&self.handle.name, k, None)
    }

    /// Entries whose serialized keys fall in the range, in serialized-key order.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Result<Vec<(K, V)>, ProcessError> {
        let enc = |b: Bound<&K>| -> Result<Bound<Vec<u8>>, ProcessError> {
            Ok(match b {
                Bound::Included(k) => Bound::Included(self.handle.key_serde.serialize(k)?),
                Bound::Excluded(k) => Bound::Excluded(self.handle.key_serde.serialize(k)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let from = enc(range.start_bound())?;
        let to = enc(range.end_bound())?;
        let rows = self
            .env
            .store_range(&self.handle.name, as_ref(&from), as_ref(&to))?;
        rows.iter()
            .map(|(k, v)| self.handle.decode_pair(k, v))
            .collect()
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, ProcessError> {
        self.range::<std::ops::RangeFull>(..)
    }
}

/// Borrows an owned bound.
pub(crate) fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A table holding every partition of a topic on every instance (see
/// [`crate::dsl::StreamsBuilder::global_table`]).
pub struct GlobalTable<K, V> {
    pub(crate) handle: StoreHandle<K, V>,
}

impl<K, V> Clone for GlobalTable<K, V> {
    fn clone(&self) -> Self {
        GlobalTable {
            handle: self.handle.clone(),
        }
    }
}

impl<K: 'static, V: 'static> GlobalTable<K, V> {
    /// The store's name (`<topic>-global`).
    pub fn name(&self) -> &str {
        self.handle.name()
    }
}

/// Reads of a global table from a processor.
pub struct GlobalView<'s, K, V> {
    globals: &'s crate::store::global::GlobalStores,
    table: &'s GlobalTable<K, V>,
}

impl<K: 'static, V: 'static> GlobalView<'_, K, V> {
    /// The value of a key.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessError> {
        let k = self.table.handle.key_bytes(key)?;
        match self.globals.get(self.table.handle.name(), &k) {
            Some(v) => Ok(Some(self.table.handle.decode_value(&v)?)),
            None => Ok(None),
        }
    }

    /// A number that changes whenever the table changes: a processor can keep what it
    /// derives from [`GlobalView::all`] (an index) and rebuild it only when this moves.
    pub fn version(&self) -> u64 {
        self.globals.version(self.table.handle.name())
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, ProcessError> {
        self.globals
            .all(self.table.handle.name())
            .iter()
            .map(|(k, v)| self.table.handle.decode_pair(k, v))
            .collect()
    }
}

/// Adapts a typed processor to the erased graph.
pub(crate) struct TypedNode<P, KIn, VIn, KOut, VOut> {
    processor: P,
    _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> TypedNode<P, KIn, VIn, KOut, VOut> {
    pub fn new(processor: P) -> Self {
        TypedNode {
            processor,
            _types: PhantomData,
        }
    }
}

impl<P, KIn, VIn, KOut, VOut> Node for TypedNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        self.processor.init(&mut ProcessorContext::new(ctx))
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        let record = unerase::<KIn, VIn>(record)?;
        self.processor
            .process(&mut ProcessorContext::new(ctx), record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut NodeContext<'_>,
        schedule: usize,
        time_ms: i64,
    ) -> Result<(), ProcessError> {
        self.processor.punctuate(
            &mut ProcessorContext::new(ctx),
            ScheduleId(schedule),
            time_ms,
        )
    }
}

/// Adapts a processor whose outputs keep the input record's key
/// ([`crate::dsl::KStream::process_values`]): what it forwards from `process` gets the
/// input key back.
pub(crate) struct FixedKeyNode<P, K, V, VOut> {
    processor: P,
    _types: PhantomData<fn(K, V, VOut)>,
}

impl<P, K, V, VOut> FixedKeyNode<P, K, V, VOut> {
    pub fn new(processor: P) -> Self {
        FixedKeyNode {
            processor,
            _types: PhantomData,
        }
    }
}

impl<P, K, V, VOut> Node for FixedKeyNode<P, K, V, VOut>
where
    P: Processor<K, V, K, VOut>,
    K: Data,
    V: Data,
    VOut: Data,
{
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        self.processor.init(&mut ProcessorContext::new(ctx))
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        let record = unerase::<K, V>(record)?;
        let key = record.key.clone();
        let first = ctx.forwards.len();
        self.processor
            .process(&mut ProcessorContext::new(ctx), record)?;
        for (_, forwarded) in &mut ctx.forwards[first..] {
            forwarded.key = Box::new(key.clone());
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut NodeContext<'_>,
        schedule: usize,
        time_ms: i64,
    ) -> Result<(), ProcessError> {
        self.processor.punctuate(
            &mut ProcessorContext::new(ctx),
            ScheduleId(schedule),
            time_ms,
        )
    }
}

/// The source node: forwards what the task decoded.
pub(crate) struct SourceNode;

impl Node for SourceNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        ctx.forwards.push((None, record));
        Ok(())
    }
}

/// `PunctuationType` is re-exported here for processor authors.
pub use crate::task::PunctuationType as Punctuation;
