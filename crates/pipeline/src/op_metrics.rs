//! Per-operation metrics (feature `runtime`): records each operation passes on, records
//! it sends to the dead-letter topic, and the time it takes per record (operations that
//! transform one record at a time: the built-ins, `filter`, `route`, plugins).

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use strom_streams::runtime::metrics::Histogram;

/// What one operation of one step has done.
#[derive(Debug, Default)]
pub struct OpMetrics {
    /// The step's name.
    pub step: String,
    /// The operation's name.
    pub operation: String,
    /// Records it passed on.
    pub records_out: AtomicU64,
    /// Records it failed (sent to the dead-letter topic).
    pub errors: AtomicU64,
    /// Time per record.
    pub latency: Histogram,
}

impl OpMetrics {
    /// Metrics of `operation` in `step`.
    pub fn new(step: &str, operation: &str) -> Arc<Self> {
        Arc::new(OpMetrics {
            step: step.to_string(),
            operation: operation.to_string(),
            ..OpMetrics::default()
        })
    }
}

/// Renders every operation's metrics (Prometheus text format), each family once.
pub fn render(out: &mut String, pipeline: &str, ops: &[Arc<OpMetrics>]) {
    if ops.is_empty() {
        return;
    }
    let labels = |m: &OpMetrics| {
        format!(
            "pipeline=\"{pipeline}\",step=\"{}\",operation=\"{}\"",
            m.step, m.operation
        )
    };
    crate::prometheus::counters(
        out,
        &[
            (
                "strom_pipeline_operation_records_total",
                "Records an operation passed on.",
                |m: &OpMetrics| &m.records_out,
            ),
            (
                "strom_pipeline_operation_errors_total",
                "Records an operation failed (sent to the dead-letter topic).",
                |m: &OpMetrics| &m.errors,
            ),
        ],
        ops,
        labels,
    );
    let name = "strom_pipeline_operation_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time per record of record-at-a-time operations.\n# TYPE {name} histogram"
    );
    for m in ops.iter().filter(|m| m.latency.count() > 0) {
        m.latency.render_samples(out, name, &labels(m));
    }
}
