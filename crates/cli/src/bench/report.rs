//! A benchmark's result: counts, throughput and latency percentiles, as text or JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one benchmark run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `produce`, `consume` or `e2e`.
    pub bench: &'static str,
    /// The topic it used.
    pub topic: String,
    /// Records acknowledged (produce) or received (consume, e2e).
    pub messages: u64,
    /// Value bytes of those records.
    pub bytes: u64,
    /// From the first record sent or fetched to the last acknowledged or received.
    pub seconds: f64,
    /// `messages / seconds`.
    pub messages_per_second: f64,
    /// `bytes / seconds / 10^6`.
    pub megabytes_per_second: f64,
    /// Latency percentiles; none for consume.
    pub latency_ms: Option<Latency>,
}

/// Latency percentiles in milliseconds, from an HDR histogram of microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds; `None` when it is empty.
    pub fn of(latency_us: &Histogram<u64>) -> Option<Latency> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!latency_us.is_empty()).then(|| Latency {
            p50: ms(latency_us.value_at_quantile(0.5)),
            p99: ms(latency_us.value_at_quantile(0.99)),
            p999: ms(latency_us.value_at_quantile(0.999)),
            max: ms(latency_us.max()),
        })
    }
}

impl Report {
    /// A report of `messages` records of `bytes` value bytes in `elapsed`.
    pub fn new(
        bench: &'static str,
        topic: String,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
        latency_ms: Option<Latency>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Report {
            bench,
            topic,
            messages,
            bytes,
            seconds,
            messages_per_second: messages as f64 / seconds,
            megabytes_per_second: bytes as f64 / seconds / 1e6,
            latency_ms,
        }
    }

    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Human-readable lines.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} {}: {} messages, {:.1} MB in {:.2} s: {:.0} msg/s, {:.1} MB/s\n",
            self.bench,
            self.topic,
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.messages_per_second,
            self.megabytes_per_second
        );
        if let Some(l) = &self.latency_ms {
            text.push_str(&format!(
                "latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
                l.p50, l.p99, l.p999, l.max
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles() {
        let mut histogram = crate::producer::latency_histogram();
        for us in 1..=1000 {
            histogram.record(us).expect("in range");
        }
        let report = Report::new(
            "produce",
            "t".into(),
            1000,
            2_000_000,
            Duration::from_secs(2),
            Latency::of(&histogram),
        );
        assert_eq!(report.messages_per_second, 500.0);
        assert_eq!(report.megabytes_per_second, 1.0);
        let latency = report.latency_ms.as_ref().expect("latency");
        assert_eq!(latency.p50, 0.5);
        assert_eq!(latency.max, 1.0);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["latency_ms"]["p99"], 0.99);
        assert!(Latency::of(&crate::producer::latency_histogram()).is_none());
    }
}
