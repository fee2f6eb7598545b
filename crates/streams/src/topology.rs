//! The type-erased topology: nodes, sources, sinks and stores, split into
//! sub-topologies (connected parts; a repartition topic separates two of them).
//!
//! Typed operators ([`crate::dsl`]) and typed processors ([`crate::processor`]) are
//! compiled into [`Node`]s that pass [`ErasedRecord`]s. A [`Topology`] is immutable and
//! shared; each task instantiates the nodes of its sub-topology from their factories.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{ProcessError, SerdeError};
use crate::record::{Headers, RawRecord};
use crate::task::NodeContext;

pub(crate) type NodeId = usize;

/// A clonable, sendable `Any`: keys and values inside the erased graph.
pub(crate) trait AnyClone: Any + Send {
    fn clone_box(&self) -> Box<dyn AnyClone>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Send + Clone> AnyClone for T {
    fn clone_box(&self) -> Box<dyn AnyClone> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A record in the erased graph.
pub(crate) struct ErasedRecord {
    pub key: Box<dyn AnyClone>,
    pub value: Box<dyn AnyClone>,
    pub timestamp_ms: i64,
    pub headers: Headers,
}

impl Clone for ErasedRecord {
    fn clone(&self) -> Self {
        ErasedRecord {
            // Deref twice: `Box<dyn AnyClone>` is itself `AnyClone` through the blanket impl.
            key: (*self.key).clone_box(),
            value: (*self.value).clone_box(),
            timestamp_ms: self.timestamp_ms,
            headers: self.headers.clone(),
        }
    }
}

pub(crate) fn downcast<T: 'static>(b: Box<dyn AnyClone>, what: &str) -> Result<T, ProcessError> {
    b.into_any()
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| ProcessError::user(format!("internal: {what} has an unexpected type")))
}

/// One node of a task's graph.
pub(crate) trait Node: Send {
    fn init(&mut self, _ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut NodeContext<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessError>;
    fn punctuate(
        &mut self,
        _ctx: &mut NodeContext<'_>,
        _schedule: usize,
        _time_ms: i64,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
}

/// Builds a node for a task; the argument is the application id (internal topic names).
pub(crate) type NodeFactory = Arc<dyn Fn(&str) -> Box<dyn Node> + Send + Sync>;

/// Decodes a raw input record into an erased record.
pub(crate) type Decoder = Arc<dyn Fn(&RawRecord) -> Result<ErasedRecord, SerdeError> + Send + Sync>;

/// A source's event-time extractor over the erased key and value and the record
/// timestamp (`None`: no usable time). Kept apart from the decoder so that records fed
/// typed (the in-process runner) get the same event time as decoded ones.
pub(crate) type Extractor = Arc<dyn Fn(&dyn Any, &dyn Any, i64) -> Option<i64> + Send + Sync>;

/// A topic name; internal topics are prefixed with the application id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TopicName {
    External(String),
    /// `<application.id>-<suffix>`.
    Internal(String),
}

impl TopicName {
    pub fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(s) => format!("{app_id}-{s}"),
        }
    }
}

pub(crate) struct NodeDef {
    pub name: String,
    pub factory: NodeFactory,
    pub children: Vec<NodeId>,
    #[allow(dead_code)]
    pub parents: Vec<NodeId>,
    pub stores: Vec<String>,
}

pub(crate) struct SourceDef {
    pub topic: TopicName,
    pub node: NodeId,
    pub decode: Decoder,
    /// The event-time extractor, applied after decoding (`stream_with_timestamps`).
    pub extract: Option<Extractor>,
    /// Records take the wall-clock time of their processing as timestamp.
    pub processing_time: bool,
    /// A retry topic ([`crate::retry_topics`]): a record read before its due time waits.
    pub retry_topic: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StoreDef {
    pub name: String,
}

/// A connected part of the topology; its tasks are its input partitions.
#[derive(Debug, Clone)]
pub(crate) struct SubTopology {
    pub id: u32,
    /// Indexes into `TopologyInner::sources`.
    pub sources: Vec<usize>,
    pub nodes: BTreeSet<NodeId>,
    pub stores: Vec<String>,
    /// Internal topics this sub-topology writes (repartition sinks), by name.
    pub repartition_sinks: Vec<TopicName>,
}

pub(crate) struct TopologyInner {
    pub nodes: Vec<NodeDef>,
    pub sources: Vec<SourceDef>,
    pub stores: Vec<StoreDef>,
    pub subtopologies: Vec<SubTopology>,
    pub repartition_topics: Vec<TopicName>,
    /// Global tables: (topic, store).
    pub globals: Vec<(String, String)>,
}

/// A built topology: what to run, for the runtime or the test driver.
#[derive(Clone)]
pub struct Topology {
    pub(crate) inner: Arc<TopologyInner>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    pub(crate) fn new(
        nodes: Vec<NodeDef>,
        sources: Vec<SourceDef>,
        stores: Vec<StoreDef>,
        repartition_topics: Vec<TopicName>,
        repartition_sinks: BTreeMap<NodeId, TopicName>,
        globals: Vec<(String, String)>,
    ) -> Result<Self, crate::error::StreamsError> {
        use crate::error::StreamsError;
        let mut seen = BTreeSet::new();
        for s in &sources {
            if !seen.insert(s.topic.clone()) {
                return Err(StreamsError::Topology(format!(
                    "topic {:?} is read by two sources",
                    s.topic
                )));
            }
        }
        let store_names: BTreeSet<&str> = stores.iter().map(|s| s.name.as_str()).collect();
        for n in &nodes {
            for s in &n.stores {
                if !store_names.contains(s.as_str()) {
                    return Err(StreamsError::Topology(format!(
                        "node {} uses unknown store {s}",
                        n.name
                    )));
                }
            }
        }
        // Union-find over nodes: edges between parent and child, and nodes sharing a store.
        let mut parent: Vec<usize> = (0..nodes.len()).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut c = x;
            while p[c] != r {
                let n = p[c];
                p[c] = r;
                c = n;
            }
            r
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut store_owner: BTreeMap<&str, NodeId> = BTreeMap::new();
        for (id, n) in nodes.iter().enumerate() {
            for &c in &n.children {
                union(&mut parent, id, c);
            }
            for s in &n.stores {
                match store_owner.get(s.as_str()) {
                    Some(&o) => union(&mut parent, id, o),
                    None => {
                        store_owner.insert(s.as_str(), id);
                    }
                }
            }
        }
        let mut by_root: BTreeMap<usize, SubTopology> = BTreeMap::new();
        for (i, src) in sources.iter().enumerate() {
            let root = find(&mut parent, src.node);
            let next_id = by_root.len() as u32;
            by_root
                .entry(root)
                .or_insert_with(|| SubTopology {
                    id: next_id,
                    sources: Vec::new(),
                    nodes: BTreeSet::new(),
                    stores: Vec::new(),
                    repartition_sinks: Vec::new(),
                })
                .sources
                .push(i);
        }
        for (id, node) in nodes.iter().enumerate() {
            let root = find(&mut parent, id);
            let Some(sub) = by_root.get_mut(&root) else {
                return Err(StreamsError::Topology(format!(
                    "node {} is not reachable from any source",
                    node.name
                )));
            };
            sub.nodes.insert(id);
            for s in &node.stores {
                if !sub.stores.contains(s) {
                    sub.stores.push(s.clone());
                }
            }
            if let Some(t) = repartition_sinks.get(&id) {
                sub.repartition_sinks.push(t.clone());
            }
        }
        let mut subtopologies: Vec<SubTopology> = by_root.into_values().collect();
        subtopologies.sort_by_key(|s| s.id);
        Ok(Topology {
            inner: Arc::new(TopologyInner {
                nodes,
                sources,
                stores,
                subtopologies,
                repartition_topics,
                globals,
            }),
        })
    }

    /// A human-readable description: sub-topologies, their topics, nodes and stores.
    pub fn describe(&self) -> String {
        let t = &self.inner;
        let mut out = String::new();
        for sub in &t.subtopologies {
            out.push_str(&format!("sub-topology {}\n", sub.id));
            for &s in &sub.sources {
                out.push_str(&format!("  source {:?}\n", t.sources[s].topic));
            }
            for &n in &sub.nodes {
                let node = &t.nodes[n];
                let children: Vec<&str> = node
                    .children
                    .iter()
                    .map(|&c| t.nodes[c].name.as_str())
                    .collect();
                out.push_str(&format!(
                    "  {} -> {:?} stores {:?}\n",
                    node.name, children, node.stores
                ));
            }
        }
        out
    }

    /// Every input topic (external and internal) with the application id applied.
    pub fn source_topics(&self, app_id: &str) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .map(|s| s.topic.resolve(app_id))
            .collect()
    }

    /// Internal topics the runtime creates: repartition topics, retry topics, then store
    /// changelogs.
    pub fn internal_topics(&self, app_id: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .repartition_topics
            .iter()
            .map(|t| t.resolve(app_id))
            .collect();
        out.extend(self.retry_topics(app_id));
        out.extend(
            self.inner
                .stores
                .iter()
                .map(|s| Self::changelog_topic(app_id, &s.name)),
        );
        out
    }

    /// Retry topics ([`crate::retry_topics`]), with the application id applied.
    pub fn retry_topics(&self, app_id: &str) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .filter(|s| s.retry_topic)
            .map(|s| s.topic.resolve(app_id))
            .collect()
    }

    /// Repartition topics, with the application id applied.
    pub fn repartition_topics(&self, app_id: &str) -> Vec<String> {
        self.inner
            .repartition_topics
            .iter()
            .map(|t| t.resolve(app_id))
            .collect()
    }

    /// Global tables as (topic, store).
    pub fn global_tables(&self) -> Vec<(String, String)> {
        self.inner.globals.clone()
    }

    pub(crate) fn global_stores(&self) -> crate::store::global::GlobalStores {
        crate::store::global::GlobalStores::new(self.inner.globals.iter().map(|(_, s)| s.as_str()))
    }

    /// Store names, in declaration order.
    pub fn store_names(&self) -> Vec<String> {
        self.inner.stores.iter().map(|s| s.name.clone()).collect()
    }

    /// The changelog topic of a store.
    pub fn changelog_topic(app_id: &str, store: &str) -> String {
        format!("{app_id}-{store}-changelog")
    }

    /// Source topic name → (sub-topology, source index), with the application id
    /// applied; built once per task or thread so the hot path does no formatting.
    pub(crate) fn source_index(
        &self,
        app_id: &str,
    ) -> std::collections::HashMap<String, (u32, usize)> {
        let mut out = std::collections::HashMap::new();
        for sub in &self.inner.subtopologies {
            for &s in &sub.sources {
                out.insert(self.inner.sources[s].topic.resolve(app_id), (sub.id, s));
            }
        }
        out
    }

    pub(crate) fn subtopology_of_topic(&self, app_id: &str, topic: &str) -> Option<(u32, usize)> {
        for sub in &self.inner.subtopologies {
            for &s in &sub.sources {
                if self.inner.sources[s].topic.resolve(app_id) == topic {
                    return Some((sub.id, s));
                }
            }
        }
        None
    }
}
