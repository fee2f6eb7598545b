//! Queries q0, q1, q2 and tumble_count through the test driver on small generated
//! inputs, against brute-force references written with plain iterators; and the
//! in-process runner giving the driver's outputs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use strom_nexmark::generator::{
    FlinkBidGenerator, FlinkBidsConfig, Generator, GeneratorConfig, NexmarkGenerator,
};
use strom_nexmark::queries::q1::Q1Bid;
use strom_nexmark::queries::q2::Q2Row;
use strom_nexmark::queries::{query, tumble_count};
use strom_nexmark::run::{driver_outputs, in_process};
use strom_nexmark::{Bid, Event};
use strom_streams::inprocess::InProcessConfig;
use strom_streams::prelude::{I64Serde, JsonSerde, OutputRecord, Serde, Windowed, WindowedSerde};

/// Standard events, out of order within groups of 37, at 1,000 events per second of
/// event time (so 10-second windows hold 10,000 events and some close).
fn standard(n: u64) -> (Generator, Vec<Event>) {
    let g = Generator::Standard(NexmarkGenerator::new(GeneratorConfig {
        seed: 11,
        events_per_second: 1_000,
        out_of_order_group_size: 37,
        ..GeneratorConfig::default()
    }));
    let events = g.events(0..n).collect();
    (g, events)
}

/// The Flink script's bids at 1,000 bids per second of event time.
fn flink(n: u64) -> (Generator, Vec<Event>) {
    let g = Generator::FlinkBids(FlinkBidGenerator::new(FlinkBidsConfig {
        seed: 3,
        events_per_second: 1_000,
        ..FlinkBidsConfig::default()
    }));
    let events = g.events(0..n).collect();
    (g, events)
}

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(Event::as_bid)
}

fn values<T: 'static>(out: &[OutputRecord], serde: impl Serde<T>) -> Vec<T> {
    out.iter()
        .map(|r| {
            assert!(r.key.is_none(), "null keys");
            serde.deserialize(r.value.as_deref().unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn q0_passes_every_bid_through_unchanged_and_in_order() {
    for (_, events) in [standard(3_000), flink(3_000)] {
        let out = driver_outputs(query("q0").unwrap(), &events).unwrap();
        let want: Vec<Bid> = bids(&events).cloned().collect();
        assert_eq!(values(&out, JsonSerde::<Bid>::new()), want);
        // Timestamps are the bids' event times.
        let times: Vec<i64> = out.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(times, want.iter().map(|b| b.date_time).collect::<Vec<_>>());
    }
}

#[test]
fn q1_converts_every_price_exactly() {
    for (_, events) in [standard(3_000), flink(3_000)] {
        let out = driver_outputs(query("q1").unwrap(), &events).unwrap();
        let got = values(&out, JsonSerde::<Q1Bid>::new());
        let input: Vec<&Bid> = bids(&events).collect();
        assert_eq!(got.len(), input.len());
        for (q, b) in got.iter().zip(&input) {
            assert_eq!(
                (q.auction, q.bidder, q.date_time, &q.extra),
                (b.auction, b.bidder, b.date_time, &b.extra)
            );
            // DECIMAL(23, 3) in cents: the exact decimal text, which floating point
            // computes correctly at 3 decimals for prices up to 10^8 cents.
            let text = format!(
                "{}.{:03}",
                q.price_millicents / 1000,
                q.price_millicents % 1000
            );
            assert_eq!(text, format!("{:.3}", b.price as f64 * 0.908), "{b:?}");
        }
    }
}

#[test]
fn q2_selects_the_bids_on_auctions_divisible_by_123() {
    // Enough Flink bids to pass several multiples of 123 (auction ≈ 1000 + 3·seq/46).
    for (_, events) in [standard(20_000), flink(20_000)] {
        let out = driver_outputs(query("q2").unwrap(), &events).unwrap();
        let want: Vec<Q2Row> = bids(&events)
            .filter(|b| b.auction % 123 == 0)
            .map(|b| Q2Row {
                auction: b.auction,
                price: b.price,
            })
            .collect();
        assert!(!want.is_empty(), "the input reaches a multiple of 123");
        assert_eq!(values(&out, JsonSerde::<Q2Row>::new()), want);
    }
}

/// tumble_count's brute force: every bid counted in its auction's window unless that
/// window had closed (stream time ≥ end + grace) when the bid came; at the end, the
/// windows closed by the final stream time, one count each.
fn tumble_reference(events: &[Event]) -> BTreeMap<(i64, i64, i64), i64> {
    let mut counts: BTreeMap<(i64, i64, i64), i64> = BTreeMap::new();
    let mut stream_time = i64::MIN;
    for e in events {
        stream_time = stream_time.max(e.date_time());
        if let Some(b) = e.as_bid() {
            let (start, end) = tumble_count::window_of(b.date_time);
            if stream_time < end + tumble_count::GRACE_MS {
                *counts.entry((b.auction, start, end)).or_default() += 1;
            }
        }
    }
    counts.retain(|(_, _, end), _| stream_time >= end + tumble_count::GRACE_MS);
    counts
}

fn tumble_outputs(out: &[OutputRecord]) -> BTreeMap<(i64, i64, i64), i64> {
    let keys = WindowedSerde(I64Serde);
    let mut m = BTreeMap::new();
    for r in out {
        let k: Windowed<i64> = keys.deserialize(r.key.as_deref().unwrap()).unwrap();
        let n = I64Serde.deserialize(r.value.as_deref().unwrap()).unwrap();
        // One final result per auction and window, stamped end − 1.
        assert_eq!(r.timestamp_ms, k.window.end_ms - 1);
        let previous = m.insert((k.key, k.window.start_ms, k.window.end_ms), n);
        assert!(previous.is_none(), "one result per window: {k:?}");
    }
    m
}

#[test]
fn tumble_count_counts_bids_per_auction_and_10s_window_once_closed() {
    for (_, events) in [standard(40_000), flink(40_000)] {
        let want = tumble_reference(&events);
        assert!(want.len() > 10, "windows close within the input");
        let out = driver_outputs(query("tumble_count").unwrap(), &events).unwrap();
        assert_eq!(tumble_outputs(&out), want);
    }
}

#[test]
fn the_in_process_runner_gives_the_drivers_outputs() {
    let capture = |threads: usize| InProcessConfig {
        threads,
        capture_outputs: true,
        ..InProcessConfig::default()
    };
    for name in ["q0", "q1", "q2", "tumble_count"] {
        let q = query(name).unwrap();
        for (g, events) in [standard(20_000), flink(20_000)] {
            let want = driver_outputs(q, &events).unwrap();
            // One thread, one partition: the same records in the same order.
            let report = in_process(q, &g, events.len() as u64, capture(1)).unwrap();
            assert_eq!(report.input_records, events.len() as u64);
            assert_eq!(report.outputs, want, "{name}");
            if name == "tumble_count" {
                // Two threads: inputs split over two partitions whose repartitioned
                // records interleave as the threads run, so a counting task's stream
                // time can pass a window before the other thread's bids for it arrive:
                // those bids are late (dropped and counted), as in the Kafka runtime.
                // Every window closed here closed in the one-thread run, with at most
                // its count, and every missing bid is a late record.
                let report = in_process(q, &g, events.len() as u64, capture(2)).unwrap();
                let two = tumble_outputs(&report.outputs);
                let one = tumble_outputs(&want);
                assert!(!two.is_empty());
                let mut missing = 0;
                for (k, n) in &two {
                    let m = one
                        .get(k)
                        .unwrap_or_else(|| panic!("{k:?} closed only with two threads"));
                    assert!(n <= m, "{k:?}: {n} > {m}");
                    missing += m - n;
                }
                assert!(
                    missing as u64 <= report.late_records,
                    "{missing} bids missing, {} late",
                    report.late_records
                );
            } else {
                let report = in_process(q, &g, events.len() as u64, capture(2)).unwrap();
                let mut got = report.outputs;
                let mut want = want.clone();
                let order = |r: &OutputRecord| (r.timestamp_ms, r.value.clone());
                got.sort_by_key(order);
                want.sort_by_key(order);
                assert_eq!(got, want, "{name}");
            }
        }
    }
}
