//! Running a pipeline against a cluster (feature `runtime`): missing topics are created
//! as the file describes them, the topology runs as a strom-streams application whose
//! `application_id` (and consumer group) is the pipeline's name — so starting the same
//! file on more machines scales it out.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use strom_streams::prelude::ErrorHandler;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};

use crate::spec::{Guarantee, Pipeline};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Used when the file has no `bootstrap_servers`.
    pub bootstrap_servers: String,
    /// The application's state directory (one subdirectory per pipeline).
    pub state_dir: PathBuf,
    /// Stream threads.
    pub threads: usize,
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
    wanted.push((dead_letter_topic(p), first_partitions, 1));
    // Topics read as global tables (presence, profiles).
    for op in p.steps.iter().flat_map(|s| &s.operations) {
        if let Some((topic, _)) = crate::builtins::lookup(op) {
            wanted.push((topic, 1, 1));
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

/// Starts a compiled pipeline as a strom-streams application.
pub fn start(file: &str, p: &Pipeline, options: &RunOptions) -> Result<KafkaStreams, String> {
    let topology = crate::compile::compile(file, p).map_err(|d| d.to_string())?;
    let bootstrap = p
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| options.bootstrap_servers.clone());
    let created = create_topics(p, &bootstrap)?;
    if !created.is_empty() {
        tracing::info!(topics = ?created, "created topics");
    }
    let mut config = StreamsConfig::new(&p.name, &bootstrap);
    config.processing_guarantee = match p.guarantee {
        Guarantee::ExactlyOnce => ProcessingGuarantee::ExactlyOnce,
        Guarantee::AtLeastOnce => ProcessingGuarantee::AtLeastOnce,
    };
    config.state_dir = options.state_dir.join(&p.name);
    config.num_stream_threads = options.threads.max(1);
    let dlq = ErrorHandler::DeadLetter {
        topic: dead_letter_topic(p),
    };
    config.deserialization_errors = dlq.clone();
    config.processing_errors = dlq;
    KafkaStreams::start(&topology, config).map_err(|e| e.to_string())
}
