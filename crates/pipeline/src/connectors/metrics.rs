//! Per-sink metrics and their Prometheus rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use strom_streams::runtime::metrics::Histogram;

/// Circuit states as the `strom_pipeline_sink_circuit_state` gauge shows them.
pub const CLOSED: u64 = 0;
/// The target is down: nothing is consumed until the trial write.
pub const OPEN: u64 = 1;
/// One trial write is under way.
pub const HALF_OPEN: u64 = 2;

/// What one sink has done.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// The sink's name.
    pub name: String,
    /// Its type.
    pub kind: String,
    /// Records the target has.
    pub written: AtomicU64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Batch writes that failed with a transient error.
    pub failed_writes: AtomicU64,
    /// Writes retried after a transient error.
    pub retries: AtomicU64,
    /// Times the circuit opened.
    pub circuit_opened: AtomicU64,
    /// [`CLOSED`], [`OPEN`] or [`HALF_OPEN`].
    pub circuit_state: AtomicU64,
    /// Batch write latency (successful and failed attempts).
    pub write_latency: Histogram,
}

impl SinkMetrics {
    /// Metrics of sink `name` of type `kind`.
    pub fn new(name: &str, kind: &str) -> Self {
        SinkMetrics {
            name: name.to_string(),
            kind: kind.to_string(),
            ..SinkMetrics::default()
        }
    }
}

/// One line for the terminal: written, dead-lettered, retries, circuit state.
pub fn summary(s: &SinkMetrics) -> String {
    let state = match s.circuit_state.load(Ordering::Relaxed) {
        OPEN => "open (input paused)",
        HALF_OPEN => "half-open",
        _ => "closed",
    };
    format!(
        "{} written, {} to the dead-letter topic, {} retries, circuit {state}",
        s.written.load(Ordering::Relaxed),
        s.dead_lettered.load(Ordering::Relaxed),
        s.retries.load(Ordering::Relaxed),
    )
}

/// Renders every sink's metrics, each family once (Prometheus text format).
pub fn render(out: &mut String, pipeline: &str, sinks: &[std::sync::Arc<SinkMetrics>]) {
    if sinks.is_empty() {
        return;
    }
    let labels = |s: &SinkMetrics| {
        format!(
            "pipeline=\"{pipeline}\",sink=\"{}\",type=\"{}\"",
            s.name, s.kind
        )
    };
    let counters: [crate::prometheus::CounterFamily<SinkMetrics>; 5] = [
        (
            "strom_pipeline_sink_records_written_total",
            "Records the sink's target has.",
            |s| &s.written,
        ),
        (
            "strom_pipeline_sink_records_dead_lettered_total",
            "Records the target refused for good, sent to the dead-letter topic.",
            |s| &s.dead_lettered,
        ),
        (
            "strom_pipeline_sink_write_errors_total",
            "Batch writes that failed with a transient error (retried).",
            |s| &s.failed_writes,
        ),
        (
            "strom_pipeline_sink_retries_total",
            "Batch writes retried.",
            |s| &s.retries,
        ),
        (
            "strom_pipeline_sink_circuit_opened_total",
            "Times the sink's circuit breaker opened.",
            |s| &s.circuit_opened,
        ),
    ];
    crate::prometheus::counters(out, &counters, sinks, labels);
    let name = "strom_pipeline_sink_circuit_state";
    let _ = writeln!(
        out,
        "# HELP {name} 0 closed, 1 open (input paused), 2 half-open.\n# TYPE {name} gauge"
    );
    for s in sinks {
        let _ = writeln!(
            out,
            "{name}{{{}}} {}",
            labels(s),
            s.circuit_state.load(Ordering::Relaxed)
        );
    }
    let name = "strom_pipeline_sink_write_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Batch write latency.\n# TYPE {name} histogram"
    );
    for s in sinks {
        s.write_latency.render_samples(out, name, &labels(s));
    }
}
