//! The broker's metrics, served as Prometheus/OpenMetrics text at `GET /metrics`.
//! Counters and histograms are updated on the request path (cheap atomic adds);
//! gauges that describe state (connections, partitions, groups and their lag) are
//! read when the endpoint is scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::broker::Shared;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric the broker exports.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: HistogramFamily,
    sync_seconds: Histogram,
    malformed: Counter,
    produced_bytes: Family<Labels, Counter>,
    produced_records: Family<Labels, Counter>,
    produce_errors: Family<Labels, Counter>,
    fetched_bytes: Family<Labels, Counter>,
    connections_open: Gauge,
    connections: Counter,
    fetches_waiting: Gauge,
    open_segment_files: Gauge,
    open_segment_files_max: Gauge,
    segment_files_evicted: Counter,
    log_start: Family<Labels, Gauge>,
    log_end: Family<Labels, Gauge>,
    high_watermark: Family<Labels, Gauge>,
    log_size: Family<Labels, Gauge>,
    groups: Family<Labels, Gauge>,
    lag: Family<Labels, Gauge>,
    producers: Family<Labels, Gauge>,
    log_stable: Family<Labels, Gauge>,
    transactions: Family<Labels, Gauge>,
    authentications: Family<Labels, Counter>,
    authorization_denials: Family<Labels, Counter>,
    cleaner_runs: Counter,
    cleaner_failures: Counter,
    cleaner_read_bytes: Counter,
    cleaner_written_bytes: Counter,
    cleaner_removed_records: Counter,
    dirty_ratio: Family<Labels, Gauge<f64, AtomicU64>>,
    since_cleaned: Family<Labels, Gauge<f64, AtomicU64>>,
    compaction_delay: Family<Labels, Gauge<f64, AtomicU64>>,
}

/// Raises a counter to a total kept elsewhere (an atomic the storage engine owns).
fn catch_up(counter: &Counter, total: u64) {
    let counted = counter.get();
    if total > counted {
        counter.inc_by(total - counted);
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~100 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strom");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            sync_seconds: latency_histogram(),
            malformed: Counter::default(),
            produced_bytes: Family::default(),
            produced_records: Family::default(),
            produce_errors: Family::default(),
            fetched_bytes: Family::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            fetches_waiting: Gauge::default(),
            open_segment_files: Gauge::default(),
            open_segment_files_max: Gauge::default(),
            segment_files_evicted: Counter::default(),
            log_start: Family::default(),
            log_end: Family::default(),
            high_watermark: Family::default(),
            log_size: Family::default(),
            groups: Family::default(),
            lag: Family::default(),
            producers: Family::default(),
            log_stable: Family::default(),
            transactions: Family::default(),
            authentications: Family::default(),
            authorization_denials: Family::default(),
            cleaner_runs: Counter::default(),
            cleaner_failures: Counter::default(),
            cleaner_read_bytes: Counter::default(),
            cleaner_written_bytes: Counter::default(),
            cleaner_removed_records: Counter::default(),
            dirty_ratio: Family::default(),
            since_cleaned: Family::default(),
            compaction_delay: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests handled, by API and version",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from reading a request to writing its response, by API",
            m.request_seconds.clone(),
        );
        registry.register(
            "log_flush_duration_seconds",
            "Time of each flush of appended data (the fdatasync of a group commit)",
            m.sync_seconds.clone(),
        );
        registry.register(
            "malformed_requests",
            "Connections closed because a request could not be decoded or is not served",
            m.malformed.clone(),
        );
        registry.register(
            "produced_bytes",
            "Record-batch bytes appended, by topic",
            m.produced_bytes.clone(),
        );
        registry.register(
            "produced_records",
            "Records appended, by topic",
            m.produced_records.clone(),
        );
        registry.register(
            "produce_errors",
            "Partitions of produce requests refused, by topic and Kafka error",
            m.produce_errors.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Record-batch bytes served by fetches, by topic",
            m.fetched_bytes.clone(),
        );
        registry.register(
            "open_segment_files",
            "Segment files the open-file budget counts as open now",
            m.open_segment_files.clone(),
        );
        registry.register(
            "open_segment_files_max",
            "The open-file budget of segment files (--open-files-max)",
            m.open_segment_files_max.clone(),
        );
        registry.register(
            "segment_files_evicted",
            "Segment files closed to stay within the open-file budget",
            m.segment_files_evicted.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "fetches_waiting",
            "Fetch requests waiting for data (long polls)",
            m.fetches_waiting.clone(),
        );
        registry.register(
            "partition_log_start_offset",
            "First offset of each partition",
            m.log_start.clone(),
        );
        registry.register(
            "partition_log_end_offset",
            "Next offset of each partition (written, perhaps not yet flushed)",
            m.log_end.clone(),
        );
        registry.register(
            "partition_high_watermark",
            "Offset below which consumers may read (the flushed offset under the always flush policy, else the log end)",
            m.high_watermark.clone(),
        );
        registry.register(
            "partition_size_bytes",
            "Bytes on disk of each partition",
            m.log_size.clone(),
        );
        registry.register(
            "consumer_groups",
            "Consumer groups, by state",
            m.groups.clone(),
        );
        registry.register(
            "consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark",
            m.lag.clone(),
        );
        registry.register(
            "idempotent_producers",
            "Idempotent (and transactional) producers each partition tracks",
            m.producers.clone(),
        );
        registry.register(
            "partition_last_stable_offset",
            "Offset below which every transaction is decided (read_committed consumers stop there)",
            m.log_stable.clone(),
        );
        registry.register(
            "transactions",
            "Transactional ids, by the state of their transaction",
            m.transactions.clone(),
        );
        registry.register(
            "sasl_authentications",
            "SASL authentications, by mechanism and result (success, failure)",
            m.authentications.clone(),
        );
        registry.register(
            "authorization_denials",
            "Operations the authorizer denied, by resource type and operation",
            m.authorization_denials.clone(),
        );
        registry.register(
            "log_cleaner_runs",
            "Log cleanings completed",
            m.cleaner_runs.clone(),
        );
        registry.register(
            "log_cleaner_failures",
            "Log cleanings that failed (that partition is not cleaned again until restart)",
            m.cleaner_failures.clone(),
        );
        registry.register(
            "log_cleaner_read_bytes",
            "Bytes the log cleaner read",
            m.cleaner_read_bytes.clone(),
        );
        registry.register(
            "log_cleaner_written_bytes",
            "Bytes the log cleaner wrote",
            m.cleaner_written_bytes.clone(),
        );
        registry.register(
            "log_cleaner_removed_records",
            "Records the log cleaner removed",
            m.cleaner_removed_records.clone(),
        );
        registry.register(
            "partition_cleaner_dirty_ratio",
            "Share of a compacted partition's cleanable bytes written since its last cleaning",
            m.dirty_ratio.clone(),
        );
        registry.register(
            "partition_cleaner_seconds_since_cleaning",
            "Seconds since the log cleaner last cleaned a compacted partition",
            m.since_cleaned.clone(),
        );
        registry.register(
            "partition_cleaner_max_compaction_delay_seconds",
            "How far past max.compaction.lag.ms a compacted partition's oldest dirty data is",
            m.compaction_delay.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Feeds flush times from the storage engine into the flush histogram. The hook is
    /// process-wide: the first broker of a process installs it.
    pub fn observe_flushes(&self) {
        let histogram = self.sync_seconds.clone();
        strom_log::set_sync_observer(move |elapsed| histogram.observe(elapsed.as_secs_f64()));
    }

    /// Counts a request and how long it took until its response was written.
    pub fn request(&self, api: &str, version: i16, elapsed: Duration) {
        self.requests
            .get_or_create(&vec![
                ("api", api.to_string()),
                ("version", version.to_string()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&vec![("api", api.to_string())])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a connection closed for a malformed request.
    pub fn malformed(&self) {
        self.malformed.inc();
    }

    /// Counts a SASL authentication with `mechanism` that succeeded or failed.
    pub fn authentication(&self, mechanism: &str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.authentications
            .get_or_create(&vec![
                ("mechanism", mechanism.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// Counts an operation the authorizer denied.
    pub fn authorization_denied(&self, resource_type: &str, operation: &str) {
        self.authorization_denials
            .get_or_create(&vec![
                ("resource_type", resource_type.to_string()),
                ("operation", operation.to_string()),
            ])
            .inc();
    }

    /// Counts an append to `topic`.
    pub fn produced(&self, topic: &str, bytes: usize, records: u64) {
        let labels = vec![("topic", topic.to_string())];
        self.produced_bytes
            .get_or_create(&labels)
            .inc_by(bytes as u64);
        self.produced_records.get_or_create(&labels).inc_by(records);
    }

    /// Counts a refused partition of a produce request.
    pub fn produce_error(&self, topic: &str, error: &str) {
        self.produce_errors
            .get_or_create(&vec![
                ("topic", topic.to_string()),
                ("error", error.to_string()),
            ])
            .inc();
    }

    /// Counts bytes a fetch served from `topic`.
    pub fn fetched(&self, topic: &str, bytes: usize) {
        if bytes > 0 {
            self.fetched_bytes
                .get_or_create(&vec![("topic", topic.to_string())])
                .inc_by(bytes as u64);
        }
    }

    /// Renders every metric, reading state gauges from `shared` now.
    pub fn render(&self, shared: &Shared) -> String {
        let stats = &shared.stats;
        self.connections_open
            .set(stats.connections_open.load(Ordering::Relaxed) as i64);
        self.fetches_waiting
            .set(stats.fetches_waiting.load(Ordering::Relaxed) as i64);
        catch_up(
            &self.connections,
            stats.connections_total.load(Ordering::Relaxed),
        );
        let budget = shared.cluster.file_budget();
        self.open_segment_files.set(budget.open_files() as i64);
        self.open_segment_files_max
            .set(i64::try_from(budget.open_files_max()).unwrap_or(i64::MAX));
        catch_up(&self.segment_files_evicted, budget.files_evicted());
        let cleaner = &shared.cluster.cleaner_stats;
        catch_up(&self.cleaner_runs, cleaner.runs.load(Ordering::Relaxed));
        catch_up(
            &self.cleaner_failures,
            cleaner.failures.load(Ordering::Relaxed),
        );
        catch_up(
            &self.cleaner_read_bytes,
            cleaner.bytes_read.load(Ordering::Relaxed),
        );
        catch_up(
            &self.cleaner_written_bytes,
            cleaner.bytes_written.load(Ordering::Relaxed),
        );
        catch_up(
            &self.cleaner_removed_records,
            cleaner.records_removed.load(Ordering::Relaxed),
        );
        for family in [
            &self.dirty_ratio,
            &self.since_cleaned,
            &self.compaction_delay,
        ] {
            family.clear();
        }
        let now_ms = strom_log::now_ms();
        for family in [
            &self.log_start,
            &self.log_end,
            &self.high_watermark,
            &self.log_size,
            &self.groups,
            &self.lag,
            &self.producers,
            &self.log_stable,
            &self.transactions,
        ] {
            family.clear();
        }
        let mut ends = std::collections::HashMap::new();
        for topic in shared.cluster.topics() {
            for p in &topic.partitions {
                let labels = vec![
                    ("topic", topic.name.clone()),
                    ("partition", p.index.to_string()),
                ];
                let end = p.high_watermark() as i64;
                ends.insert((topic.name.clone(), p.index), end);
                self.high_watermark.get_or_create(&labels).set(end);
                self.log_start
                    .get_or_create(&labels)
                    .set(p.log.log_start_offset() as i64);
                self.log_end
                    .get_or_create(&labels)
                    .set(p.log.log_end_offset() as i64);
                self.log_stable
                    .get_or_create(&labels)
                    .set(p.last_stable_offset() as i64);
                self.log_size
                    .get_or_create(&labels)
                    .set(p.log.size_bytes() as i64);
                if let Some(status) = p.log.cleaner_status(now_ms) {
                    self.dirty_ratio
                        .get_or_create(&labels)
                        .set(status.dirty_ratio);
                    self.compaction_delay
                        .get_or_create(&labels)
                        .set(status.max_compaction_delay_ms as f64 / 1000.0);
                    if let Some(cleaned) = status.last_cleaned_ms {
                        self.since_cleaned
                            .get_or_create(&labels)
                            .set(now_ms.saturating_sub(cleaned) as f64 / 1000.0);
                    }
                }
                let producers = p.producers().active().len();
                if producers > 0 {
                    self.producers.get_or_create(&labels).set(producers as i64);
                }
            }
        }
        for (group, _, state) in shared.coordinator.list() {
            self.groups
                .get_or_create(&vec![("state", state.to_string())])
                .inc();
            for ((topic, partition), committed) in shared.coordinator.offsets(&group) {
                if let Some(end) = ends.get(&(topic.clone(), partition)) {
                    let labels = vec![
                        ("group", group.clone()),
                        ("topic", topic),
                        ("partition", partition.to_string()),
                    ];
                    self.lag
                        .get_or_create(&labels)
                        .set((end - committed.offset).max(0));
                }
            }
        }
        for txn in shared.transactions.describe_all() {
            self.transactions
                .get_or_create(&vec![("state", txn.metadata.state.name().to_string())])
                .inc();
        }
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        text
    }
}
