//! The typed DSL: [`StreamsBuilder`], [`KStream`], [`KTable`], [`KGroupedStream`].
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("text", UnitSerde, StringSerde)
//!     .flat_map_values(|line: &String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!     .select_key(|_, word: &String| word.clone())
//!     .group_by_key(StringSerde, StringSerde)
//!     .count("word-counts")
//!     .to("word-counts-out", StringSerde, I64Serde);
//! let topology = builder.build().unwrap();
//! let mut driver = TopologyTestDriver::new(&topology).unwrap();
//! driver.pipe("text", &UnitSerde, &StringSerde, &(), &"a b a".to_string(), 10).unwrap();
//! let out = driver.read_output("word-counts-out", &StringSerde, &Nullable(I64Serde)).unwrap();
//! let pairs: Vec<(String, Option<i64>)> = out.into_iter().map(|r| (r.key, r.value)).collect();
//! assert_eq!(pairs, vec![("a".into(), Some(1)), ("b".into(), Some(1)), ("a".into(), Some(2))]);
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{ProcessError, StreamsError};
use crate::processor::{
    Data, GlobalTable, Processor, ProcessorContext, SourceNode, StoreHandle, TypedNode,
};
use crate::record::{OutputRecord, RawRecord, Record};
use crate::serdes::{I64Serde, Nullable, Serde};
use crate::task::{Handoff, OutputMode};
use crate::topology::{
    Decoder, ErasedRecord, Extractor, NodeDef, NodeFactory, NodeId, SourceDef, StoreDef, TopicName,
    Topology,
};

#[derive(Default)]
pub(crate) struct BuilderState {
    nodes: Vec<NodeDef>,
    sources: Vec<SourceDef>,
    stores: Vec<StoreDef>,
    counter: usize,
    pub(crate) repartition_topics: Vec<TopicName>,
    pub(crate) repartition_sinks: BTreeMap<NodeId, TopicName>,
    globals: Vec<(String, String)>,
    /// Mistakes found while building (reported by `build`).
    errors: Vec<String>,
}

impl BuilderState {
    pub(crate) fn name(&mut self, kind: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("KSTREAM-{kind}-{n:010}")
    }

    pub(crate) fn add_node(
        &mut self,
        name: String,
        factory: NodeFactory,
        parents: &[NodeId],
        stores: Vec<String>,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(NodeDef {
            name,
            factory,
            children: Vec::new(),
            parents: parents.to_vec(),
            stores,
        });
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        id
    }

    pub(crate) fn add_store(&mut self, name: &str) {
        if !self.stores.iter().any(|s| s.name == name) {
            self.stores.push(StoreDef {
                name: name.to_string(),
            });
        }
    }

    pub(crate) fn add_source(&mut self, topic: TopicName, decode: Decoder) -> NodeId {
        self.add_timed_source(topic, decode, None, false)
    }

    fn add_timed_source(
        &mut self,
        topic: TopicName,
        decode: Decoder,
        extract: Option<Extractor>,
        processing_time: bool,
    ) -> NodeId {
        let name = self.name("SOURCE");
        let id = self.add_node(
            name,
            Arc::new(|_: &str| Box::new(SourceNode) as _),
            &[],
            Vec::new(),
        );
        self.sources.push(SourceDef {
            topic,
            node: id,
            decode,
            extract,
            processing_time,
            retry_topic: false,
        });
        id
    }

    /// A source reading a retry topic ([`crate::retry_topics`]).
    fn add_retry_source(&mut self, topic: TopicName, decode: Decoder) -> NodeId {
        let id = self.add_source(topic, decode);
        if let Some(source) = self.sources.last_mut() {
            source.retry_topic = true;
        }
        id
    }
}

/// A predicate for [`KStream::branch`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Builds a topology with the typed DSL.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) state: Rc<RefCell<BuilderState>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        let node = self.state.borrow_mut().add_source(
            TopicName::External(topic.to_string()),
            stream_decoder(key_serde, value_serde),
        );
        KStream::at(self, node, false)
    }

    /// A stream whose event time is `extract(key, value, record timestamp)`: a field of
    /// the value, say. `None` (no usable time) sends the record to the deserialization
    /// handler with `strom.error.kind: timestamp`.
    pub fn stream_with_timestamps<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        extract: impl Fn(&K, &V, i64) -> Option<i64> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let extract: Extractor = Arc::new(move |key: &dyn Any, value: &dyn Any, record_ts: i64| {
            match (key.downcast_ref::<K>(), value.downcast_ref::<V>()) {
                (Some(k), Some(v)) => extract(k, v, record_ts),
                _ => None,
            }
        });
        let node = self.state.borrow_mut().add_timed_source(
            TopicName::External(topic.to_string()),
            stream_decoder(key_serde, value_serde),
            Some(extract),
            false,
        );
        KStream::at(self, node, false)
    }

    /// A stream in processing time: each record's timestamp is the wall clock when it is
    /// processed (windows then follow arrival, not event time; outputs depend on timing
    /// and are outside the replay guarantee).
    pub fn stream_processing_time<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        let node = self.state.borrow_mut().add_timed_source(
            TopicName::External(topic.to_string()),
            stream_decoder(key_serde, value_serde),
            None,
            true,
        );
        KStream::at(self, node, false)
    }

    /// A table materialised from `topic` (a null value deletes the key), in a store named
    /// `<topic>-table`.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KTable<K, V> {
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        let (ks, vs) = (key_serde.clone(), value_serde.clone());
        let decode: Decoder = Arc::new(move |raw: &RawRecord| {
            let key = ks.deserialize_with_headers(raw.key.as_deref(), &raw.headers)?;
            let value: Option<V> = match raw.value.as_deref() {
                None => None,
                Some(b) => Some(vs.deserialize_with_headers(Some(b), &raw.headers)?),
            };
            Ok(ErasedRecord {
                key: Box::new(key),
                value: Box::new(value),
                timestamp_ms: raw.timestamp_ms,
                headers: raw.headers.clone(),
            })
        });
        let store_name = format!("{topic}-table");
        let source = {
            let mut s = self.state.borrow_mut();
            s.add_store(&store_name);
            s.add_source(TopicName::External(topic.to_string()), decode)
        };
        let handle = StoreHandle::from_arcs(&store_name, key_serde, value_serde);
        let stream: KStream<K, Option<V>> = KStream::at(self, source, false);
        let getter = Getter::of_store(&handle);
        let changes = stream.process(
            move || Materialize {
                store: handle.clone(),
            },
            &[store_name.as_str()],
        );
        KTable {
            changes,
            getter: Some(getter),
        }
    }

    /// A global table: every partition of `topic` on every instance, kept up to date by
    /// the runtime's global thread (the topic is its changelog). Look it up from a stream
    /// with [`KStream::join_global`] or from a processor with `ctx.global(&table)`; no
    /// co-partitioning is needed. Asking twice for the same topic gives the same table.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> GlobalTable<K, V> {
        let name = format!("{topic}-global");
        let global = (topic.to_string(), name.clone());
        let mut state = self.state.borrow_mut();
        if !state.globals.contains(&global) {
            state.globals.push(global);
        }
        drop(state);
        GlobalTable {
            handle: StoreHandle::new(&name, key_serde, value_serde),
        }
    }

    /// Registers a store for processors added with [`KStream::process`].
    pub fn add_store<K: 'static, V: 'static>(&self, handle: &StoreHandle<K, V>) {
        self.state.borrow_mut().add_store(handle.name());
    }

    /// Records a mistake in the topology; `build` reports it.
    pub(crate) fn error(&self, message: &str) {
        self.state.borrow_mut().errors.push(message.to_string());
    }

    /// Checks and freezes the topology.
    pub fn build(&self) -> Result<Topology, StreamsError> {
        let state = std::mem::take(&mut *self.state.borrow_mut());
        if !state.errors.is_empty() {
            return Err(StreamsError::Topology(state.errors.join("; ")));
        }
        Topology::new(
            state.nodes,
            state.sources,
            state.stores,
            state.repartition_topics,
            state.repartition_sinks,
            state.globals,
        )
    }
}

fn stream_decoder<K: Data, V: Data>(
    key_serde: impl Serde<K>,
    value_serde: impl Serde<V>,
) -> Decoder {
    Arc::new(move |raw: &RawRecord| {
        Ok(ErasedRecord {
            key: Box::new(key_serde.deserialize_with_headers(raw.key.as_deref(), &raw.headers)?),
            value: Box::new(
                value_serde.deserialize_with_headers(raw.value.as_deref(), &raw.headers)?,
            ),
            timestamp_ms: raw.timestamp_ms,
            headers: raw.headers.clone(),
        })
    })
}

/// A processor built from a closure (every stateless operator).
struct FnProcessor<F>(Arc<F>);

impl<K, V, KO, VO, F> Processor<K, V, KO, VO> for FnProcessor<F>
where
    K: Data,
    V: Data,
    KO: Data,
    VO: Data,
    F: Fn(&mut ProcessorContext<'_, '_, KO, VO>, Record<K, V>) -> Result<(), ProcessError>
        + Send
        + Sync
        + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KO, VO>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        (self.0)(ctx, record)
    }
}

/// Where a sink writes, as built.
enum SinkTopic<K, V> {
    /// One topic.
    Fixed(TopicName),
    /// A topic per record.
    PerRecord(TopicFn<K, V>),
}

type TopicFn<K, V> = Arc<dyn Fn(&K, &V) -> TopicName + Send + Sync>;

/// Where a sink writes, in a task (a fixed name resolved once, not per record).
enum ResolvedTopic<K, V> {
    Fixed { name: Arc<str>, internal: bool },
    PerRecord(TopicFn<K, V>),
}

/// Writes records to a topic: serialized into the task's outputs, or (in-process runner)
/// handed over typed to the topology's own topics and counted for the others.
struct SinkNode<K, V> {
    topic: ResolvedTopic<K, V>,
    app_id: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> SinkNode<K, V> {
    /// The record's topic and whether it is internal (a repartition topic).
    fn topic_of(&self, record: &ErasedRecord) -> Result<(Arc<str>, bool), ProcessError> {
        match &self.topic {
            ResolvedTopic::Fixed { name, internal } => Ok((name.clone(), *internal)),
            ResolvedTopic::PerRecord(f) => {
                let (Some(k), Some(v)) = (
                    record.key.as_any().downcast_ref::<K>(),
                    record.value.as_any().downcast_ref::<V>(),
                ) else {
                    return Err(ProcessError::user(
                        "internal: a sink's record has an unexpected type",
                    ));
                };
                let t = f(k, v);
                Ok((
                    Arc::from(t.resolve(&self.app_id)),
                    matches!(t, TopicName::Internal(_)),
                ))
            }
        }
    }

    fn serialize(&self, topic: &str, record: ErasedRecord) -> Result<OutputRecord, ProcessError> {
        let r = crate::processor::unerase::<K, V>(record)?;
        let mut headers = r.headers;
        Ok(OutputRecord {
            topic: topic.to_string(),
            partition: None,
            key: self
                .key_serde
                .serialize_with_headers(&r.key, &mut headers)?,
            value: self
                .value_serde
                .serialize_with_headers(&r.value, &mut headers)?,
            timestamp_ms: r.timestamp_ms,
            headers,
        })
    }
}

impl<K: Data, V: Data> crate::topology::Node for SinkNode<K, V> {
    fn process(
        &mut self,
        ctx: &mut crate::task::NodeContext<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        let (topic, internal) = self.topic_of(&record)?;
        match ctx.env.output_mode {
            OutputMode::Serialize => {
                let out = self.serialize(&topic, record)?;
                ctx.env.outputs.push(out);
            }
            OutputMode::InProcess {
                partitions,
                capture,
            } => {
                if internal {
                    // The partition the producer would pick: murmur2 of the key bytes
                    // (a null key: spread round-robin, as `murmur2_random` spreads them).
                    let Some(key) = record.key.as_any().downcast_ref::<K>() else {
                        return Err(ProcessError::user(
                            "internal: a sink's key has an unexpected type",
                        ));
                    };
                    let partition = match self.key_serde.serialize_nullable(key)? {
                        Some(bytes) => crate::runtime::query::partition_for(&bytes, partitions),
                        None => {
                            ctx.env.round_robin = ctx.env.round_robin.wrapping_add(1);
                            (ctx.env.round_robin % partitions.max(1) as u32) as i32
                        }
                    };
                    ctx.env.handoffs.push(Handoff {
                        topic,
                        partition,
                        record,
                    });
                } else if capture {
                    let out = self.serialize(&topic, record)?;
                    ctx.env.outputs.push(out);
                } else {
                    ctx.env.sunk += 1;
                }
            }
        }
        Ok(())
    }
}

/// A stream of records.
pub struct KStream<K, V> {
    pub(crate) builder: StreamsBuilder,
    pub(crate) node: NodeId,
    /// True when an operator may have changed the key since the last partitioning
    /// (grouping then goes through a repartition topic, as in Kafka Streams).
    pub(crate) key_changed: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            builder: self.builder.clone(),
            node: self.node,
            key_changed: self.key_changed,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn at(builder: &StreamsBuilder, node: NodeId, key_changed: bool) -> Self {
        KStream {
            builder: builder.clone(),
            node,
            key_changed,
            _types: PhantomData,
        }
    }

    pub(crate) fn add<KO: Data, VO: Data>(
        &self,
        kind: &str,
        factory: NodeFactory,
        stores: Vec<String>,
        key_changed: bool,
    ) -> KStream<KO, VO> {
        let node = {
            let mut s = self.builder.state.borrow_mut();
            let name = s.name(kind);
            s.add_node(name, factory, &[self.node], stores)
        };
        KStream::at(&self.builder, node, key_changed)
    }

    fn stateless<KO: Data, VO: Data, F>(
        &self,
        kind: &str,
        key_changed: bool,
        f: F,
    ) -> KStream<KO, VO>
    where
        F: Fn(&mut ProcessorContext<'_, '_, KO, VO>, Record<K, V>) -> Result<(), ProcessError>
            + Send
            + Sync
            + 'static,
    {
        self.closure_node(kind, Vec::new(), key_changed, f)
    }

    /// A closure operator that reads the named stores (table lookups); the key stays.
    pub(crate) fn stateless_with_stores<VO: Data, F>(
        &self,
        kind: &str,
        stores: Vec<String>,
        f: F,
    ) -> KStream<K, VO>
    where
        F: Fn(&mut ProcessorContext<'_, '_, K, VO>, Record<K, V>) -> Result<(), ProcessError>
            + Send
            + Sync
            + 'static,
    {
        self.closure_node(kind, stores, false, f)
    }

    fn closure_node<KO: Data, VO: Data, F>(
        &self,
        kind: &str,
        stores: Vec<String>,
        key_changed: bool,
        f: F,
    ) -> KStream<KO, VO>
    where
        F: Fn(&mut ProcessorContext<'_, '_, KO, VO>, Record<K, V>) -> Result<(), ProcessError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let factory: NodeFactory = Arc::new(move |_: &str| {
            Box::new(TypedNode::<_, K, V, KO, VO>::new(FnProcessor(f.clone()))) as _
        });
        self.add(kind, factory, stores, self.key_changed || key_changed)
    }

    /// Keeps records for which `predicate` is true.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless("FILTER", false, move |ctx, r| {
            if predicate(&r.key, &r.value) {
                ctx.forward(r);
            }
            Ok(())
        })
    }

    /// Drops records for which `predicate` is true.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Maps key and value to a new pair (the key may change: grouping repartitions).
    pub fn map<KO: Data, VO: Data>(
        &self,
        f: impl Fn(K, V) -> (KO, VO) + Send + Sync + 'static,
    ) -> KStream<KO, VO> {
        self.stateless("MAP", true, move |ctx, r| {
            let (k, v) = f(r.key, r.value);
            ctx.forward(Record {
                key: k,
                value: v,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
            Ok(())
        })
    }

    /// Maps the value; the key (and partitioning) stay.
    pub fn map_values<VO: Data>(
        &self,
        f: impl Fn(&V) -> VO + Send + Sync + 'static,
    ) -> KStream<K, VO> {
        self.stateless("MAPVALUES", false, move |ctx, r| {
            let value = f(&r.value);
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
            Ok(())
        })
    }

    /// Maps each value to `Some(new value)` (kept, same key) or `None` (dropped). The
    /// value is passed by value, so unpacking it (an enum variant, a field) needs no
    /// clone; the key and the partitioning stay.
    pub fn filter_map_values<VO: Data>(
        &self,
        f: impl Fn(V) -> Option<VO> + Send + Sync + 'static,
    ) -> KStream<K, VO> {
        self.stateless("FILTERMAPVALUES", false, move |ctx, r| {
            if let Some(value) = f(r.value) {
                ctx.forward(Record {
                    key: r.key,
                    value,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
            }
            Ok(())
        })
    }

    /// Maps a record to zero or more records.
    pub fn flat_map<KO: Data, VO: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<KO, VO>
    where
        I: IntoIterator<Item = (KO, VO)>,
    {
        self.stateless("FLATMAP", true, move |ctx, r| {
            for (k, v) in f(r.key, r.value) {
                ctx.forward(Record {
                    key: k,
                    value: v,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers.clone(),
                });
            }
            Ok(())
        })
    }

    /// Maps a value to zero or more values with the same key.
    pub fn flat_map_values<VO: Data, I>(
        &self,
        f: impl Fn(&V) -> I + Send + Sync + 'static,
    ) -> KStream<K, VO>
    where
        I: IntoIterator<Item = VO>,
    {
        self.stateless("FLATMAPVALUES", false, move |ctx, r| {
            for v in f(&r.value) {
                ctx.forward(Record {
                    key: r.key.clone(),
                    value: v,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers.clone(),
                });
            }
            Ok(())
        })
    }

    /// Sets a new key computed from key and value.
    pub fn select_key<KO: Data>(
        &self,
        f: impl Fn(&K, &V) -> KO + Send + Sync + 'static,
    ) -> KStream<KO, V> {
        self.stateless("KEY-SELECT", true, move |ctx, r| {
            let key = f(&r.key, &r.value);
            ctx.forward(Record {
                key,
                value: r.value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
            Ok(())
        })
    }

    /// Calls `f` on every record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.stateless("PEEK", false, move |ctx, r| {
            f(&r.key, &r.value);
            ctx.forward(r);
            Ok(())
        })
    }

    /// Calls `f` on every record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _: KStream<K, V> = self.stateless("FOREACH", false, move |_, r| {
            f(&r.key, &r.value);
            Ok(())
        });
    }

    /// Routes each record to the first branch whose predicate holds (records matching
    /// none are dropped; end with a predicate that is always true for a default branch).
    /// Kafka Streams calls this `split().branch(...)`.
    pub fn branch(&self, predicates: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        let count = predicates.len();
        let predicates = Arc::new(predicates);
        let router: KStream<K, V> = self.stateless("BRANCH", false, move |ctx, r| {
            if let Some(i) = predicates.iter().position(|p| p(&r.key, &r.value)) {
                ctx.forward_to(i, r);
            }
            Ok(())
        });
        (0..count)
            .map(|_| {
                router.stateless("BRANCH-CHILD", false, |ctx, r| {
                    ctx.forward(r);
                    Ok(())
                })
            })
            .collect()
    }

    /// Alias of [`KStream::branch`] under Kafka Streams' newer name.
    pub fn split(&self, predicates: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        self.branch(predicates)
    }

    /// The records of both streams.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node = {
            let mut s = self.builder.state.borrow_mut();
            let name = s.name("MERGE");
            let factory: NodeFactory = Arc::new(|_: &str| {
                Box::new(TypedNode::<_, K, V, K, V>::new(FnProcessor(Arc::new(
                    |ctx: &mut ProcessorContext<'_, '_, K, V>, r: Record<K, V>| {
                        ctx.forward(r);
                        Ok(())
                    },
                )))) as _
            });
            s.add_node(name, factory, &[self.node, other.node], Vec::new())
        };
        KStream::at(&self.builder, node, self.key_changed || other.key_changed)
    }

    /// Joins each record with the global table's row for `key(k, v)`; records without a
    /// row are dropped (an inner join).
    pub fn join_global<GK: Data, GV: Data, VO: Data>(
        &self,
        table: &GlobalTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VO + Send + Sync + 'static,
    ) -> KStream<K, VO> {
        let table = table.clone();
        self.stateless("JOIN-GLOBAL", false, move |ctx, r| {
            let row = ctx.global(&table)?.get(&key(&r.key, &r.value))?;
            if let Some(row) = row {
                let value = joiner(&r.value, &row);
                ctx.forward(Record {
                    key: r.key,
                    value,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
            }
            Ok(())
        })
    }

    /// As [`KStream::join_global`], keeping records without a row (`None`).
    pub fn left_join_global<GK: Data, GV: Data, VO: Data>(
        &self,
        table: &GlobalTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VO + Send + Sync + 'static,
    ) -> KStream<K, VO> {
        let table = table.clone();
        self.stateless("LEFTJOIN-GLOBAL", false, move |ctx, r| {
            let row = ctx.global(&table)?.get(&key(&r.key, &r.value))?;
            let value = joiner(&r.value, row.as_ref());
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
            Ok(())
        })
    }

    /// Runs a custom processor connected to the named stores.
    pub fn process<KO: Data, VO: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<KO, VO>
    where
        P: Processor<K, V, KO, VO>,
    {
        let factory: NodeFactory =
            Arc::new(move |_: &str| Box::new(TypedNode::<_, K, V, KO, VO>::new(supplier())) as _);
        self.add(
            "PROCESSOR",
            factory,
            stores.iter().map(|s| s.to_string()).collect(),
            true,
        )
    }

    /// As [`KStream::process`], with non-blocking retries: a record the processor fails
    /// on (an error `retry.retry_on` accepts) goes to the retry topics
    /// `<application.id>-<name>-retry-<n>`, one per backoff tier, and comes back to this
    /// processor when due, while the input goes on; after the last tier it goes to the
    /// dead-letter topic. The serdes write the processor's input records to the retry
    /// topics. Records of a key can be reordered by retries; see [`crate::retry_topics`].
    pub fn process_with_retry_topics<KO: Data, VO: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
        retry: crate::retry_topics::RetryTopics,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KStream<KO, VO>
    where
        P: Processor<K, V, KO, VO>,
    {
        if let Err(e) = retry.check() {
            self.builder.error(&e);
        }
        let node = {
            let mut s = self.builder.state.borrow_mut();
            let mut parents = vec![self.node];
            for suffix in retry.topic_suffixes() {
                parents.push(s.add_retry_source(
                    TopicName::Internal(suffix),
                    stream_decoder(key_serde.clone(), value_serde.clone()),
                ));
            }
            let (ks, vs): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
                (Arc::new(key_serde), Arc::new(value_serde));
            let factory: NodeFactory = Arc::new(move |app_id: &str| {
                let inner = Box::new(TypedNode::<_, K, V, KO, VO>::new(supplier()));
                Box::new(crate::retry_topics::RetryNode::new(
                    inner,
                    retry.clone(),
                    app_id,
                    ks.clone(),
                    vs.clone(),
                )) as _
            });
            let name = s.name("PROCESSOR-RETRYING");
            s.add_node(
                name,
                factory,
                &parents,
                stores.iter().map(|s| s.to_string()).collect(),
            )
        };
        KStream::at(&self.builder, node, true)
    }

    fn sink(
        &self,
        topic: SinkTopic<K, V>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> NodeId {
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        let factory: NodeFactory = Arc::new(move |app_id: &str| {
            Box::new(SinkNode {
                topic: match &topic {
                    SinkTopic::Fixed(t) => ResolvedTopic::Fixed {
                        name: Arc::from(t.resolve(app_id)),
                        internal: matches!(t, TopicName::Internal(_)),
                    },
                    SinkTopic::PerRecord(f) => ResolvedTopic::PerRecord(f.clone()),
                },
                app_id: app_id.to_string(),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            }) as _
        });
        let mut s = self.builder.state.borrow_mut();
        let name = s.name("SINK");
        s.add_node(name, factory, &[self.node], Vec::new())
    }

    /// Writes every record to `topic`.
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        self.sink(
            SinkTopic::Fixed(TopicName::External(topic.to_string())),
            key_serde,
            value_serde,
        );
    }

    /// Writes each record to the topic `choose` names for it.
    pub fn to_dynamic(
        &self,
        choose: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) {
        self.sink(
            SinkTopic::PerRecord(Arc::new(move |k: &K, v: &V| {
                TopicName::External(choose(k, v))
            })),
            key_serde,
            value_serde,
        );
    }

    /// Writes the stream through an internal topic `<application.id>-<name>-repartition`
    /// partitioned by the current key, and reads it back: records with equal keys meet
    /// in one task.
    pub fn repartition(
        &self,
        name: &str,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KStream<K, V> {
        let topic = TopicName::Internal(format!("{name}-repartition"));
        let sink = self.sink(
            SinkTopic::Fixed(topic.clone()),
            key_serde.clone(),
            value_serde.clone(),
        );
        let node = {
            let mut s = self.builder.state.borrow_mut();
            s.repartition_topics.push(topic.clone());
            s.repartition_sinks.insert(sink, topic.clone());
            s.add_source(topic, stream_decoder(key_serde, value_serde))
        };
        KStream::at(&self.builder, node, false)
    }

    /// Groups by the current key (through a repartition topic if the key may have changed).
    pub fn group_by_key(
        &self,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KGroupedStream<K, V> {
        let stream = if self.key_changed {
            let name = self.builder.state.borrow_mut().name("REPARTITION");
            self.repartition(&name, key_serde.clone(), value_serde.clone())
        } else {
            self.clone()
        };
        KGroupedStream {
            stream,
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }

    /// Groups by a new key (always through a repartition topic).
    pub fn group_by<KO: Data>(
        &self,
        f: impl Fn(&K, &V) -> KO + Send + Sync + 'static,
        key_serde: impl Serde<KO> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KGroupedStream<KO, V> {
        self.select_key(f).group_by_key(key_serde, value_serde)
    }
}

/// Writes a table's changes into its store and passes them on.
struct Materialize<K, V> {
    store: StoreHandle<K, V>,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Option<V>> for Materialize<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, Option<V>>,
        r: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        {
            let mut store = ctx.store(&self.store)?;
            match &r.value {
                Some(v) => store.put(&r.key, v)?,
                None => store.delete(&r.key)?,
            }
        }
        ctx.forward(r);
        Ok(())
    }
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
}

/// Folds each record into the key's aggregate in a store and emits the new aggregate.
struct Aggregate<K, V, A, I, F> {
    store: StoreHandle<K, A>,
    init: Arc<I>,
    fold: Arc<F>,
    _types: PhantomData<fn(V)>,
}

impl<K, V, A, I, F> Processor<K, V, K, Option<A>> for Aggregate<K, V, A, I, F>
where
    K: Data,
    V: Data,
    A: Data,
    I: Fn() -> A + Send + Sync + 'static,
    F: Fn(&K, V, A) -> A + Send + Sync + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, Option<A>>,
        r: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let aggregate = {
            let mut store = ctx.store(&self.store)?;
            let old = store.get(&r.key)?.unwrap_or_else(|| (self.init)());
            let new = (self.fold)(&r.key, r.value, old);
            store.put(&r.key, &new)?;
            new
        };
        ctx.forward(Record {
            key: r.key,
            value: Some(aggregate),
            timestamp_ms: r.timestamp_ms,
            headers: r.headers,
        });
        Ok(())
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Folds values into an aggregate per key, kept in the store `store_name`; the
    /// table emits every update.
    pub fn aggregate<A: Data>(
        &self,
        store_name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.stream.builder.state.borrow_mut().add_store(store_name);
        let store = StoreHandle::from_arcs(
            store_name,
            self.key_serde.clone(),
            Arc::new(aggregate_serde),
        );
        let (init, fold) = (Arc::new(init), Arc::new(fold));
        let getter = Getter::of_store(&store);
        let changes = self.stream.process(
            move || Aggregate {
                store: store.clone(),
                init: init.clone(),
                fold: fold.clone(),
                _types: PhantomData,
            },
            &[store_name],
        );
        KTable {
            changes: changes.keep_partitioning(),
            getter: Some(getter),
        }
    }

    /// Counts records per key.
    pub fn count(&self, store_name: &str) -> KTable<K, i64> {
        self.aggregate(store_name, || 0i64, |_, _, n| n + 1, I64Serde)
    }

    /// Combines values per key with `reduce(aggregate, value)`; the first value is the
    /// first aggregate.
    pub fn reduce(
        &self,
        store_name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let value_serde = ArcSerde(self.value_serde.clone());
        self.aggregate(
            store_name,
            || None::<V>,
            move |_, v, acc: Option<V>| {
                Some(match acc {
                    None => v,
                    Some(a) => reduce(a, v),
                })
            },
            Nullable(value_serde),
        )
        .map_values_opt(|v: &Option<V>| v.clone())
    }
}

/// A serde behind an `Arc`, usable where `impl Serde` is expected.
pub(crate) struct ArcSerde<T>(pub(crate) Arc<dyn Serde<T>>);

impl<T> Clone for ArcSerde<T> {
    fn clone(&self) -> Self {
        ArcSerde(self.0.clone())
    }
}

impl<T: 'static> Serde<T> for ArcSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, crate::error::SerdeError> {
        self.0.serialize(value)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, crate::error::SerdeError> {
        self.0.deserialize(bytes)
    }
    fn serialize_nullable(&self, value: &T) -> Result<Option<Vec<u8>>, crate::error::SerdeError> {
        self.0.serialize_nullable(value)
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<T, crate::error::SerdeError> {
        self.0.deserialize_nullable(bytes)
    }
    fn serialize_with_headers(
        &self,
        value: &T,
        headers: &mut crate::record::Headers,
    ) -> Result<Option<Vec<u8>>, crate::error::SerdeError> {
        self.0.serialize_with_headers(value, headers)
    }
    fn deserialize_with_headers(
        &self,
        bytes: Option<&[u8]>,
        headers: &crate::record::Headers,
    ) -> Result<T, crate::error::SerdeError> {
        self.0.deserialize_with_headers(bytes, headers)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn keep_partitioning(mut self) -> Self {
        self.key_changed = false;
        self
    }
}

/// A table: the latest value per key, as a stream of changes (`None` deletes a key).
pub struct KTable<K, V> {
    pub(crate) changes: KStream<K, Option<V>>,
    /// Reads the table's current value of a key (for joins); `None` for tables that are
    /// not materialised (windowed results).
    pub(crate) getter: Option<Getter<K, V>>,
}

type GetFn<K, V> =
    dyn Fn(&crate::task::TaskEnv, &K) -> Result<Option<V>, ProcessError> + Send + Sync;

/// Reads a table's value for a key from inside a task: a store lookup, possibly through
/// the table's filters and mappings (computed on read, as Kafka Streams' value getters).
pub(crate) struct Getter<K, V> {
    /// The stores the lookup reads (a reading node must be connected to them).
    pub stores: Vec<String>,
    pub get: Arc<GetFn<K, V>>,
}

impl<K, V> Clone for Getter<K, V> {
    fn clone(&self) -> Self {
        Getter {
            stores: self.stores.clone(),
            get: self.get.clone(),
        }
    }
}

impl<K: Data, V: Data> Getter<K, V> {
    fn of_store(handle: &StoreHandle<K, V>) -> Self {
        let handle = handle.clone();
        Getter {
            stores: vec![handle.name().to_string()],
            get: Arc::new(move |env, key| {
                let k = handle.key_bytes(key)?;
                match env.store_get(handle.name(), &k)? {
                    Some(v) => Ok(Some(handle.decode_value(&v)?)),
                    None => Ok(None),
                }
            }),
        }
    }

    /// This getter with `f` applied to what it finds.
    pub fn map<VO: Data>(
        &self,
        f: impl Fn(&K, V) -> Option<VO> + Send + Sync + 'static,
    ) -> Getter<K, VO> {
        let get = self.get.clone();
        Getter {
            stores: self.stores.clone(),
            get: Arc::new(move |env, key| Ok(get(env, key)?.and_then(|v| f(key, v)))),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Keeps rows for which `predicate` holds; a row that fails it is emitted as a delete.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let predicate = Arc::new(predicate);
        let p = predicate.clone();
        let getter = self
            .getter
            .as_ref()
            .map(|g| g.map(move |k, v| p(k, &v).then_some(v)));
        let changes = self.changes.stateless(
            "KTABLE-FILTER",
            false,
            move |ctx, r: Record<K, Option<V>>| {
                let value = r.value.filter(|v| predicate(&r.key, v));
                ctx.forward(Record {
                    key: r.key,
                    value,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
                Ok(())
            },
        );
        KTable { changes, getter }
    }

    /// Drops rows for which `predicate` holds (emitted as deletes).
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Maps every row's value.
    pub fn map_values<VO: Data>(
        &self,
        f: impl Fn(&V) -> VO + Send + Sync + 'static,
    ) -> KTable<K, VO> {
        let f = Arc::new(f);
        let g = f.clone();
        let getter = self
            .getter
            .as_ref()
            .map(|get| get.map(move |_, v| Some(g(&v))));
        let changes = self
            .changes
            .map_values(move |v: &Option<V>| v.as_ref().map(|v| f(v)));
        KTable { changes, getter }
    }

    fn map_values_opt<VO: Data>(
        &self,
        f: impl Fn(&V) -> Option<VO> + Send + Sync + 'static,
    ) -> KTable<K, VO> {
        let f = Arc::new(f);
        let g = f.clone();
        let getter = self.getter.as_ref().map(|get| get.map(move |_, v| g(&v)));
        let changes = self
            .changes
            .map_values(move |v: &Option<V>| v.as_ref().and_then(|v| f(v)));
        KTable { changes, getter }
    }

    /// The stream of changes: `Some(value)` for an update, `None` for a delete.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        self.changes.clone()
    }

    /// Writes the changes to `topic` (a delete is a tombstone: a null value).
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        self.changes.to(topic, key_serde, Nullable(value_serde));
    }
}

impl<K: 'static, V: 'static> StoreHandle<K, V> {
    pub(crate) fn from_arcs(
        name: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        StoreHandle::from_parts(name, key_serde, value_serde)
    }
}
