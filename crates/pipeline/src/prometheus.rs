//! Prometheus text rendering shared by the operation and output metrics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A counter family: name, help, and where each item keeps its value.
pub type CounterFamily<M> = (&'static str, &'static str, fn(&M) -> &AtomicU64);

/// Writes each family once (`# HELP`, `# TYPE`), with one sample per item labelled by
/// `labels`.
pub fn counters<M>(
    out: &mut String,
    families: &[CounterFamily<M>],
    items: &[Arc<M>],
    labels: impl Fn(&M) -> String,
) {
    for (name, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for m in items {
            let _ = writeln!(
                out,
                "{name}{{{}}} {}",
                labels(m),
                get(m).load(Ordering::Relaxed)
            );
        }
    }
}
