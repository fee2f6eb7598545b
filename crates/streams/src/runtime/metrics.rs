//! Instance metrics and their Prometheus text rendering: processing and error counts,
//! process / commit / punctuate latency histograms, store sizes, restore progress and
//! consumer lag per input partition (from librdkafka's statistics).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::record::TaskId;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A cumulative latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Mean in microseconds (0 without observations).
    pub fn mean_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed) / self.count().max(1)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_samples(out, name, labels);
    }

    /// Appends this histogram's samples (`_bucket`, `_sum`, `_count`) with `labels` to a
    /// family whose `# HELP`/`# TYPE` lines the caller wrote.
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            self.count()
        );
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count());
    }
}

/// Counters, histograms and gauges of an instance (all threads).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records processed.
    pub records_processed: AtomicU64,
    /// Records skipped by an error handler (logged or dead-lettered).
    pub records_skipped: AtomicU64,
    /// Records too late for every window they belong to (sent to the dead-letter topic,
    /// or dropped without one).
    pub late_records: AtomicU64,
    /// Successful commits.
    pub commits: AtomicU64,
    /// Aborted transactions (or at-least-once rewinds).
    pub aborts: AtomicU64,
    /// Changelog records replayed into stores.
    pub restored_records: AtomicU64,
    /// Changelog records written by committed transactions (commits).
    pub changelog_records: AtomicU64,
    /// Producers recreated after fencing or a fatal error.
    pub producer_recreations: AtomicU64,
    /// Rebalance callbacks (assign and revoke).
    pub rebalances: AtomicU64,
    /// Records whose processing asked for a retry (their partition was paused).
    pub retries: AtomicU64,
    /// Records sent to retry topics.
    pub retry_topic_records: AtomicU64,
    /// Changelog offsets still to replay by restores in progress (restore progress).
    pub restore_remaining: AtomicU64,
    /// Records read from global tables' topics (a restart with a checkpoint reads only
    /// the tail).
    pub global_records_read: AtomicU64,
    /// Time to process one input record (operators and sends).
    pub process_latency: Histogram,
    /// Time of a commit (changelog, offsets, transaction, store apply).
    pub commit_latency: Histogram,
    /// Time of a wall-clock punctuation round.
    pub punctuate_latency: Histogram,
    /// Keys per store and task (approximate for fjall), refreshed at each commit.
    pub store_keys: Mutex<BTreeMap<(String, TaskId), u64>>,
    /// Consumer lag per input partition, from librdkafka's statistics.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The metrics in Prometheus' text format, labelled with the application id.
    pub fn render(&self, application_id: &str) -> String {
        let app = format!("application_id=\"{application_id}\"");
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "strom_streams_changelog_records_total",
                "Changelog records written by successful commits.",
                &self.changelog_records,
            ),
            (
                "strom_streams_retry_topic_records_total",
                "Records sent to retry topics.",
                &self.retry_topic_records,
            ),
            (
                "strom_streams_retries_total",
                "Records that asked to be retried later (their partition was paused).",
                &self.retries,
            ),
            (
                "strom_streams_records_processed_total",
                "Input records processed.",
                &self.records_processed,
            ),
            (
                "strom_streams_records_skipped_total",
                "Input records skipped by an error handler (logged or dead-lettered).",
                &self.records_skipped,
            ),
            (
                "strom_streams_late_records_total",
                "Records too late for every window they belong to (dead-lettered or dropped).",
                &self.late_records,
            ),
            (
                "strom_streams_commits_total",
                "Successful commits.",
                &self.commits,
            ),
            (
                "strom_streams_aborts_total",
                "Aborted transactions and at-least-once rewinds.",
                &self.aborts,
            ),
            (
                "strom_streams_restored_records_total",
                "Changelog records replayed into stores.",
                &self.restored_records,
            ),
            (
                "strom_streams_global_records_read_total",
                "Records read from the topics of global tables.",
                &self.global_records_read,
            ),
            (
                "strom_streams_producer_recreations_total",
                "Producers recreated after fencing or a fatal error.",
                &self.producer_recreations,
            ),
            (
                "strom_streams_rebalances_total",
                "Rebalance callbacks.",
                &self.rebalances,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{app}}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.process_latency.render(
            &mut out,
            "strom_streams_process_latency_seconds",
            "Time to process one input record.",
            &app,
        );
        self.commit_latency.render(
            &mut out,
            "strom_streams_commit_latency_seconds",
            "Time of one commit.",
            &app,
        );
        self.punctuate_latency.render(
            &mut out,
            "strom_streams_punctuate_latency_seconds",
            "Time of one wall-clock punctuation round.",
            &app,
        );
        let _ = writeln!(
            out,
            "# HELP strom_streams_restore_remaining_records Changelog offsets still to replay by restores in progress.\n# TYPE strom_streams_restore_remaining_records gauge\nstrom_streams_restore_remaining_records{{{app}}} {}",
            self.restore_remaining.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strom_streams_store_keys Keys in a state store of a task (approximate for fjall).\n# TYPE strom_streams_store_keys gauge"
        );
        for ((store, task), n) in lock(&self.store_keys).iter() {
            let _ = writeln!(
                out,
                "strom_streams_store_keys{{{app},store=\"{store}\",task=\"{task}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP strom_streams_consumer_lag Records between the consumer position and the end of an input partition.\n# TYPE strom_streams_consumer_lag gauge"
        );
        for ((topic, partition), n) in lock(&self.lag).iter() {
            let _ = writeln!(out, "strom_streams_consumer_lag{{{app},topic=\"{topic}\",partition=\"{partition}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_render_as_prometheus() {
        let m = Metrics::default();
        m.process_latency.observe(Duration::from_micros(40));
        m.process_latency.observe(Duration::from_micros(700));
        m.process_latency.observe(Duration::from_secs(10));
        m.records_processed.fetch_add(3, Ordering::Relaxed);
        lock(&m.store_keys).insert(
            (
                "counts".into(),
                TaskId {
                    subtopology: 0,
                    partition: 2,
                },
            ),
            7,
        );
        let text = m.render("app");
        assert!(text.contains("strom_streams_records_processed_total{application_id=\"app\"} 3\n"));
        assert!(text.contains("strom_streams_process_latency_seconds_bucket{application_id=\"app\",le=\"0.00005\"} 1\n"));
        assert!(text.contains(
            "strom_streams_process_latency_seconds_bucket{application_id=\"app\",le=\"0.001\"} 2\n"
        ));
        assert!(text.contains(
            "strom_streams_process_latency_seconds_bucket{application_id=\"app\",le=\"5\"} 2\n"
        ));
        assert!(text.contains(
            "strom_streams_process_latency_seconds_bucket{application_id=\"app\",le=\"+Inf\"} 3\n"
        ));
        assert!(text
            .contains("strom_streams_process_latency_seconds_count{application_id=\"app\"} 3\n"));
        assert!(text.contains(
            "strom_streams_store_keys{application_id=\"app\",store=\"counts\",task=\"0_2\"} 7\n"
        ));
    }
}
