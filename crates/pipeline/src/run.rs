//! Running a pipeline against a cluster (feature `runtime`): missing topics are created
//! as the file describes them, the topology runs as a strom-streams application whose
//! `application_id` (and consumer group) is the pipeline's name — so starting the same
//! file on more machines scales it out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use strom_streams::prelude::ErrorHandler;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};

use crate::connectors::metrics::SinkMetrics;
use crate::connectors::websocket::{self, Hub};
use crate::connectors::worker::{self, WorkerConfig};
use crate::connectors::{self, Target};
use crate::dashboard::routes::Site;
use crate::http::HttpState;
use crate::op_metrics::OpMetrics;
use crate::plugin::Plugins;
use crate::spec::{Guarantee, Pipeline};

/// Group session timeout of a pipeline's consumers (the application's and the sink
/// workers'): how long a crashed instance's partitions wait before a live one takes them.
pub const SESSION_TIMEOUT_MS: &str = "10000";

/// Where and how to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Used when the file has no `bootstrap_servers`.
    pub bootstrap_servers: String,
    /// The application's state directory (one subdirectory per pipeline).
    pub state_dir: PathBuf,
    /// Stream threads.
    pub threads: usize,
    /// Serve `/metrics`, `/healthz`, the WebSocket endpoints and the live views here (a
    /// pipeline with a `websocket` output or a `dashboard` binds `127.0.0.1:0` without
    /// one).
    pub http_addr: Option<SocketAddr>,
    /// Operations registered by Rust code.
    pub plugins: Plugins,
}

fn kafka(e: impl std::fmt::Display) -> String {
    format!("kafka: {e}")
}

/// Creates the pipeline's missing input and output topics: inputs as the file says
/// (`partitions`; `replication_factor` capped at the cluster's broker count), outputs with
/// the partitions of the first input. Existing topics are left as they are.
pub fn create_topics(p: &Pipeline, bootstrap: &str) -> Result<Vec<String>, String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(kafka)?;
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(kafka)?;
    let brokers = md.brokers().len().max(1) as i32;
    let existing: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    let first_partitions = p.inputs.first().and_then(|i| i.partitions).unwrap_or(1);
    let mut wanted: Vec<(String, i32, i32)> = p
        .inputs
        .iter()
        .map(|i| {
            let rf = i.replication_factor.map_or(1, i32::from).clamp(1, brokers);
            (i.topic.clone(), i.partitions.unwrap_or(1), rf)
        })
        .collect();
    for s in p.sinks.iter().filter(|s| s.kind == "kafka") {
        if let Some(t) = s.setting("topic") {
            wanted.push((t.to_string(), first_partitions, 1));
        }
    }
    for i in (0..p.sinks.len()).filter(|&i| connectors::is_external(&p.sinks[i])) {
        wanted.push((connectors::topic(p, i), first_partitions, 1));
    }
    wanted.push((dead_letter_topic(p), first_partitions, 1));
    // Topics read as global tables (presence, profiles, `join`s).
    for op in p.steps.iter().flat_map(|s| &s.operations) {
        if let Some(Ok(lookup)) = crate::builtins::lookup(op) {
            wanted.push((lookup.topic, 1, 1));
        }
        if op.name == "calculate_eta_to_requests" {
            let topic = op
                .params
                .iter()
                .find(|(k, _)| k == "requests_topic")
                .and_then(|(_, v)| v.as_text())
                .unwrap_or("ride-requests");
            wanted.push((topic.to_string(), 1, 1));
        }
    }
    // Each missing topic once, as first described (an input's settings win).
    let mut seen = std::collections::BTreeSet::new();
    wanted.retain(|(t, _, _)| !existing.contains(t) && seen.insert(t.clone()));
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|(t, n, rf)| NewTopic::new(t, *n, TopicReplication::Fixed(*rf)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let results = rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .map_err(kafka)?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(t) => created.push(t),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("creating topic {t}: {code}")),
        }
    }
    Ok(created)
}

/// The dead-letter topic: `dead_letter_topic`, or `<name>-dlq`.
pub fn dead_letter_topic(p: &Pipeline) -> String {
    p.dead_letter_topic
        .clone()
        .unwrap_or_else(|| format!("{}-dlq", p.name))
}

/// A running pipeline: its strom-streams application, its sink workers and its HTTP
/// server.
pub struct RunningPipeline {
    name: String,
    streams: Arc<KafkaStreams>,
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    workers: Vec<(String, JoinHandle<Result<(), String>>)>,
    sinks: Vec<Arc<SinkMetrics>>,
    ops: Arc<Vec<Arc<OpMetrics>>>,
    http_addr: Option<SocketAddr>,
}

impl RunningPipeline {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The strom-streams application (metrics, state).
    pub fn streams(&self) -> &KafkaStreams {
        &self.streams
    }

    /// Each external sink's metrics.
    pub fn sinks(&self) -> &[Arc<SinkMetrics>] {
        &self.sinks
    }

    /// Each operation's metrics.
    pub fn operations(&self) -> &[Arc<OpMetrics>] {
        &self.ops
    }

    /// Where `/metrics`, `/healthz`, the WebSocket endpoints and the live views are
    /// served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// True while every stream thread and sink worker runs.
    pub fn is_running(&self) -> bool {
        self.streams.is_running() && self.workers.iter().all(|(_, w)| !w.is_finished())
    }

    /// Stops the sink workers (their last batch written, or replayed on the next start),
    /// the HTTP server, then the application (commit, leave the group).
    pub fn close(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        for (sink, w) in self.workers {
            match self.runtime.block_on(w) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(sink, error = %e, "sink stopped with an error"),
                Err(e) => tracing::warn!(sink, error = %e, "sink worker panicked"),
            }
        }
        // Dropping the runtime's tasks releases the HTTP server's handle on the app.
        self.runtime.shutdown_timeout(Duration::from_secs(2));
        match Arc::try_unwrap(self.streams) {
            Ok(streams) => streams.close().map_err(|e| e.to_string()),
            Err(_) => Err("the application is still in use; it stops with the process".into()),
        }
    }
}

/// Starts a compiled pipeline: its topics, its strom-streams application, a worker per
/// external sink and the HTTP server. `file` is the path the pipeline was read from (its
/// `dashboard` is found next to it); `env` reads environment variables (sink URLs).
pub fn start(
    file: &str,
    p: &Pipeline,
    options: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunningPipeline, String> {
    let bootstrap = p
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| options.bootstrap_servers.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("pipeline-{}", p.name))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Check the page and connect the sinks first: a bad setting fails the start before
    // anything runs.
    let page = crate::dashboard::locate(file, p).map_err(|d| d.to_string())?;
    let mut hub = Hub::default();
    let mut targets = Vec::new();
    for (i, sink) in p.sinks.iter().enumerate() {
        if !connectors::is_external(sink) {
            continue;
        }
        let name = connectors::name(p, i);
        let target = if sink.kind == "websocket" {
            let endpoint = websocket::endpoint(sink);
            if let Some(e) = crate::http::reserved(&endpoint) {
                let at = sink.at;
                return Err(format!(
                    "{file}:{}:{}: output {name}: {e}",
                    at.line, at.column
                ));
            }
            Target::WebSocket(hub.sink(&endpoint))
        } else {
            runtime
                .block_on(Target::connect(
                    &format!("{}-sink-{name}", p.name),
                    sink,
                    env,
                ))
                .map_err(|e| {
                    format!(
                        "{file}:{}:{}: output {name}: {e}",
                        sink.at.line, sink.at.column
                    )
                })?
        };
        let cfg = WorkerConfig::new(
            &bootstrap,
            &p.name,
            &name,
            &connectors::topic(p, i),
            &dead_letter_topic(p),
            sink,
        )
        .map_err(|e| {
            format!(
                "{file}:{}:{}: output {name}: {e}",
                sink.at.line, sink.at.column
            )
        })?;
        targets.push((target, cfg, Arc::new(SinkMetrics::new(&name, &sink.kind))));
    }
    let (streams, ops) = start_streams(file, p, &bootstrap, options)?;
    let (streams, ops) = (Arc::new(streams), Arc::new(ops));
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    let mut sinks = Vec::new();
    for (target, cfg, m) in targets {
        sinks.push(m.clone());
        let sink = cfg.sink.clone();
        workers.push((
            sink,
            runtime.spawn(worker::run(target, cfg, m, stopped.clone())),
        ));
    }
    let has_websocket = p.sinks.iter().any(|s| s.kind == "websocket");
    let http_addr = match options.http_addr.or_else(|| {
        (has_websocket || page.is_some()).then(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }) {
        None => None,
        Some(addr) => {
            let state = HttpState {
                pipeline: p.name.clone(),
                streams: streams.clone(),
                sinks: sinks.clone(),
                ops: ops.clone(),
                hub: Arc::new(hub),
            };
            Some(crate::http::serve(
                &runtime,
                addr,
                state,
                Site::new(p, page),
            )?)
        }
    };
    Ok(RunningPipeline {
        name: p.name.clone(),
        streams,
        runtime,
        stop,
        workers,
        sinks,
        ops,
        http_addr,
    })
}

/// Compiles the pipeline and starts it as a strom-streams application.
fn start_streams(
    file: &str,
    p: &Pipeline,
    bootstrap: &str,
    options: &RunOptions,
) -> Result<(KafkaStreams, Vec<Arc<OpMetrics>>), String> {
    let (topology, ops) =
        crate::compile::compile_observed(file, p, &options.plugins).map_err(|d| d.to_string())?;
    let created = create_topics(p, bootstrap)?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, "created topics");
    }
    let mut config = StreamsConfig::new(&p.name, bootstrap);
    config.processing_guarantee = match p.guarantee {
        Guarantee::ExactlyOnce => ProcessingGuarantee::ExactlyOnce,
        Guarantee::AtLeastOnce => ProcessingGuarantee::AtLeastOnce,
    };
    config.state_dir = options.state_dir.join(&p.name);
    // A restarted instance gets its partitions back after the dead member's session
    // expires: 10 s instead of librdkafka's 45 s.
    config
        .client_config
        .insert("session.timeout.ms".into(), SESSION_TIMEOUT_MS.into());
    config.num_stream_threads = options.threads.max(1);
    let dlq = ErrorHandler::DeadLetter {
        topic: dead_letter_topic(p),
    };
    config.deserialization_errors = dlq.clone();
    config.processing_errors = dlq;
    let streams = KafkaStreams::start(&topology, config).map_err(|e| e.to_string())?;
    Ok((streams, ops))
}
