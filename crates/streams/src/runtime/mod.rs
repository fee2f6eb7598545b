//! The runtime: runs a [`Topology`] against a Kafka-protocol cluster (strom or Apache
//! Kafka) with N stream threads, a consumer group per application, tasks per input
//! partition, changelog-backed state and at-least-once or exactly-once processing.
//! See STREAMS.md for the design; [`thread`] has the loop and the commit protocol.
//!
//! ```no_run
//! use strom_streams::prelude::*;
//! use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("events", StringSerde, StringSerde)
//!     .group_by_key(StringSerde, StringSerde)
//!     .count("counts")
//!     .to("counts-out", StringSerde, I64Serde);
//! let mut config = StreamsConfig::new("count-app", "127.0.0.1:9092");
//! config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
//! let app = KafkaStreams::start(&builder.build().unwrap(), config).unwrap();
//! // ...
//! app.close().unwrap();
//! ```

mod admin;
pub mod config;
mod global;
mod http;
pub mod metrics;
pub mod query;
pub mod thread;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{ProcessingGuarantee, StateBackendKind, StreamsConfig};
pub use metrics::Metrics;

use crate::error::StreamsError;
use crate::store::fjall_backend::FjallBackend;
use crate::store::memory::MemoryBackend;
use crate::store::StateBackend;
use crate::topology::Topology;

/// A snapshot of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Records processed.
    pub records_processed: u64,
    /// Records skipped by an error handler.
    pub records_skipped: u64,
    /// Records too late for every window they belong to.
    pub late_records: u64,
    /// Successful commits.
    pub commits: u64,
    /// Mean commit latency in microseconds.
    pub commit_latency_us_mean: u64,
    /// Aborted transactions.
    pub aborts: u64,
    /// Changelog records replayed into stores.
    pub restored_records: u64,
    /// Changelog records written by successful commits.
    pub changelog_records: u64,
    /// Producers recreated.
    pub producer_recreations: u64,
    /// Rebalance callbacks.
    pub rebalances: u64,
    /// Records that asked to be retried later (their partition was paused), including
    /// retry-topic records read before their due time.
    pub retries: u64,
    /// Records sent to retry topics ([`crate::retry_topics`]).
    pub retry_topic_records: u64,
    /// Changelog offsets still to replay by restores in progress.
    pub restore_remaining: u64,
    /// Records read from global tables' topics.
    pub global_records_read: u64,
}

pub(crate) struct Shared {
    pub topology: Topology,
    /// Global tables of the topology.
    pub globals: crate::store::global::GlobalStores,
    /// Source topic → (sub-topology, source index).
    pub sources: std::collections::HashMap<String, (u32, usize)>,
    /// Names of the repartition and retry topics: consumed for good once committed, so
    /// purged (DeleteRecords) after commit.
    pub repartition_topics: std::collections::BTreeSet<String>,
    pub config: StreamsConfig,
    pub backend: Arc<dyn StateBackend>,
    pub instance_id: String,
    pub shutdown: AtomicBool,
    pub metrics: Metrics,
    /// Partition count of each sub-topology (its tasks).
    pub partitions: std::collections::BTreeMap<u32, i32>,
    /// Interactive-query requests, one channel per stream thread.
    pub query_tx: Vec<std::sync::Mutex<std::sync::mpsc::Sender<query::QueryRequest>>>,
    /// The client interactive queries use to read the group's members (created on the
    /// first lookup).
    pub group_client: std::sync::Mutex<Option<rdkafka::consumer::BaseConsumer>>,
    /// Exports spans over OTLP (feature `otel` and an endpoint), else does nothing.
    pub tracer: crate::telemetry::Tracer,
    /// The receiving ends, taken by each thread when it starts.
    pub query_rx: Vec<std::sync::Mutex<Option<std::sync::mpsc::Receiver<query::QueryRequest>>>>,
}

/// A running instance of a streams application.
pub struct KafkaStreams {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<(), StreamsError>>>,
    global: Option<JoinHandle<()>>,
}

/// The instance id: created once per state directory, so a restart on the same directory
/// reuses its transactional ids (and fences its own zombie).
fn instance_id(state_dir: &Path) -> Result<String, StreamsError> {
    let path = state_dir.join("instance.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tmp = state_dir.join("instance.id.tmp");
    std::fs::write(&tmp, &id).map_err(|e| StreamsError::Store(e.into()))?;
    std::fs::rename(&tmp, &path).map_err(|e| StreamsError::Store(e.into()))?;
    Ok(id)
}

impl KafkaStreams {
    /// Checks the topology against the cluster (source topics, co-partitioning), creates
    /// internal topics, and starts the stream threads.
    pub fn start(topology: &Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        config.validate()?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| StreamsError::Store(e.into()))?;
        let instance_id = instance_id(&config.state_dir)?;
        let tracer = crate::telemetry::Tracer::start(
            config.otlp_endpoint.as_deref(),
            &config.application_id,
            &instance_id,
        )?;
        let partitions = admin::prepare(topology, &config)?;
        let (query_tx, query_rx) = (0..config.num_stream_threads)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                (std::sync::Mutex::new(tx), std::sync::Mutex::new(Some(rx)))
            })
            .unzip();
        let backend: Arc<dyn StateBackend> = match config.state_backend {
            StateBackendKind::Fjall => {
                Arc::new(FjallBackend::open(&config.state_dir.join("fjall"))?)
            }
            StateBackendKind::Memory => Arc::new(MemoryBackend::new()),
        };
        let app_id = config.application_id.clone();
        let shared = Arc::new(Shared {
            repartition_topics: topology
                .repartition_topics(&app_id)
                .into_iter()
                .chain(topology.retry_topics(&app_id))
                .collect(),
            sources: topology.source_index(&app_id),
            globals: topology.global_stores(),
            topology: topology.clone(),
            config,
            backend,
            instance_id,
            shutdown: AtomicBool::new(false),
            metrics: Metrics::default(),
            partitions,
            query_tx,
            query_rx,
            group_client: std::sync::Mutex::new(None),
            tracer,
        });
        let global = global::start(&shared)?;
        let mut threads = Vec::new();
        for i in 0..shared.config.num_stream_threads {
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-stream-{i}", shared.config.application_id))
                .spawn(move || {
                    let r = thread::run(s, i);
                    if let Err(e) = &r {
                        tracing::error!(thread = i, error = %e, "stream thread failed");
                    }
                    r
                })
                .map_err(|e| StreamsError::Store(e.into()))?;
            threads.push(handle);
        }
        Ok(KafkaStreams {
            shared,
            threads,
            global,
        })
    }

    /// The instance's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let m = &self.shared.metrics;
        let commits = m.commits.load(Ordering::Relaxed);
        MetricsSnapshot {
            records_processed: m.records_processed.load(Ordering::Relaxed),
            records_skipped: m.records_skipped.load(Ordering::Relaxed),
            late_records: m.late_records.load(Ordering::Relaxed),
            commits,
            commit_latency_us_mean: m.commit_latency.mean_us(),
            aborts: m.aborts.load(Ordering::Relaxed),
            restored_records: m.restored_records.load(Ordering::Relaxed),
            changelog_records: m.changelog_records.load(Ordering::Relaxed),
            producer_recreations: m.producer_recreations.load(Ordering::Relaxed),
            rebalances: m.rebalances.load(Ordering::Relaxed),
            retries: m.retries.load(Ordering::Relaxed),
            retry_topic_records: m.retry_topic_records.load(Ordering::Relaxed),
            restore_remaining: m.restore_remaining.load(Ordering::Relaxed),
            global_records_read: m.global_records_read.load(Ordering::Relaxed),
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render_prometheus(&self) -> String {
        self.shared
            .metrics
            .render(&self.shared.config.application_id)
    }

    /// Serves `GET /metrics` (Prometheus text format) on `addr` until the instance is
    /// closed; returns the bound address (port 0 picks one).
    pub fn serve_metrics(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::SocketAddr, StreamsError> {
        self.serve_http(addr, Vec::new())
    }

    /// Serves `GET /metrics` and interactive queries of `stores` on `addr` (see
    /// [`query`] for the routes); returns the bound address. Set
    /// `StreamsConfig::application_server` to this address so other instances can
    /// redirect queries here.
    pub fn serve_http(
        &self,
        addr: std::net::SocketAddr,
        stores: Vec<query::Queryable>,
    ) -> Result<std::net::SocketAddr, StreamsError> {
        let stop = self.shared.clone();
        http::serve(
            addr,
            query::route(self.shared.clone(), stores),
            Arc::new(move || stop.shutdown.load(Ordering::Relaxed)),
        )
        .map_err(|e| StreamsError::Store(e.into()))
    }

    /// True while every stream thread runs.
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Graceful shutdown: each thread commits, leaves the group and stops; returns the
    /// first thread error.
    pub fn close(self) -> Result<(), StreamsError> {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        let mut first = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(StreamsError::Kafka("stream thread panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        if let Some(g) = self.global {
            let _ = g.join();
        }
        // The threads' last spans (their final commits) go out before close returns.
        self.shared.tracer.shutdown();
        first
    }
}
