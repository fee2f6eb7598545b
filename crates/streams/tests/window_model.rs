//! Differential tests: random out-of-order event streams with many keys through each
//! window kind, compared with a brute-force model of the documented semantics.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strom_streams::prelude::*;
use strom_streams::window::aggregations;

/// (key, start, end exclusive, sorted values).
type Windows = BTreeSet<(String, i64, i64, Vec<i64>)>;

#[derive(Debug, Clone)]
struct Event {
    key: String,
    ts: i64,
    value: i64,
}

/// Events `i` at about `i * step`, each moved by up to `jitter` either way.
fn events(max_jitter: i64) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0u8..4, 0..=2 * max_jitter, 0i64..4), 1..60).prop_map(move |raw| {
        let mut t = 1_000;
        raw.into_iter()
            .enumerate()
            .map(|(i, (k, j, step))| {
                t += step;
                Event {
                    key: format!("k{k}"),
                    ts: t + j - max_jitter,
                    value: i as i64,
                }
            })
            .collect()
    })
}

/// Runs the events through a windowed `collect` and returns what was emitted and what
/// went to the dead-letter topic.
fn run(
    events: &[Event],
    windowed: impl FnOnce(KGroupedStream<String, i64>) -> KTable<Windowed<String>, Vec<i64>>,
) -> (Windows, Vec<i64>) {
    let b = StreamsBuilder::new();
    let grouped = b
        .stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde);
    windowed(grouped).to(
        "out",
        WindowedSerde(StringSerde),
        JsonSerde::<Vec<i64>>::new(),
    );
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    for e in events {
        d.pipe("in", &StringSerde, &I64Serde, &e.key, &e.value, e.ts)
            .unwrap();
    }
    let mut out = Windows::new();
    for r in d
        .read_output(
            "out",
            &WindowedSerde(StringSerde),
            &JsonSerde::<Vec<i64>>::new(),
        )
        .unwrap()
    {
        let mut values = r.value;
        values.sort_unstable();
        let w = r.key.window;
        assert!(
            out.insert((r.key.key, w.start_ms, w.end_ms, values)),
            "a window emitted twice"
        );
    }
    let late = d
        .read_raw("dlq")
        .into_iter()
        .map(|r| i64::from_be_bytes(r.value.unwrap().try_into().unwrap()))
        .collect();
    (out, late)
}

/// The model of time windows: a record joins every window holding it that is still open
/// (stream time < end + grace, stream time including the record); a record with no open
/// window is late; windows are emitted once stream time reaches end + grace.
fn time_model(events: &[Event], size: i64, advance: i64, grace: i64) -> (Windows, Vec<i64>) {
    let mut st = i64::MIN;
    let mut windows: BTreeMap<(String, i64, i64), Vec<i64>> = BTreeMap::new();
    let mut late = Vec::new();
    for e in events {
        st = st.max(e.ts);
        let mut any = false;
        let first = (e.ts - size).div_euclid(advance) * advance;
        for start in (first..=e.ts).step_by(advance as usize) {
            if start <= e.ts && e.ts < start + size && st < start + size + grace {
                any = true;
                windows
                    .entry((e.key.clone(), start, start + size))
                    .or_default()
                    .push(e.value);
            }
        }
        if !any {
            late.push(e.value);
        }
    }
    let emitted = windows
        .into_iter()
        .filter(|((_, _, end), _)| end + grace <= st)
        .map(|((k, s, e), mut v)| {
            v.sort_unstable();
            (k, s, e, v)
        })
        .collect();
    (emitted, late)
}

fn by_key(events: &[Event]) -> BTreeMap<String, Vec<(i64, i64)>> {
    let mut keys: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for e in events {
        keys.entry(e.key.clone()).or_default().push((e.ts, e.value));
    }
    keys
}

/// The model of sliding windows (no late records: grace covers the disorder): for every
/// record at t the window [t - d, t], and [t + 1, t + 1 + d] when it holds records.
fn sliding_model(events: &[Event], d: i64, grace: i64) -> Windows {
    let st = events.iter().map(|e| e.ts).max().unwrap();
    let mut out = Windows::new();
    for (key, recs) in by_key(events) {
        let content = |from: i64, to: i64| -> Vec<i64> {
            let mut v: Vec<i64> = recs
                .iter()
                .filter(|(t, _)| (from..=to).contains(t))
                .map(|r| r.1)
                .collect();
            v.sort_unstable();
            v
        };
        for &(t, _) in &recs {
            for (from, to) in [(t - d, t), (t + 1, t + 1 + d)] {
                let v = content(from, to);
                if !v.is_empty() && to + 1 + grace <= st {
                    out.insert((key.clone(), from, to + 1, v));
                }
            }
        }
    }
    out
}

/// The model of sessions (no late records): records of a key sorted by time, split where
/// two neighbours are more than `gap` apart; emitted once stream time reaches
/// last + 1 + gap + grace.
fn session_model(events: &[Event], gap: i64, grace: i64) -> Windows {
    let st = events.iter().map(|e| e.ts).max().unwrap();
    let mut out = Windows::new();
    for (key, mut recs) in by_key(events) {
        recs.sort_unstable();
        let mut sessions: Vec<Vec<(i64, i64)>> = Vec::new();
        for r in recs {
            match sessions.last_mut() {
                Some(s) if r.0 - s.last().unwrap().0 <= gap => s.push(r),
                _ => sessions.push(vec![r]),
            }
        }
        for s in sessions {
            let (first, last) = (s[0].0, s[s.len() - 1].0);
            if last + 1 + gap + grace <= st {
                let mut v: Vec<i64> = s.iter().map(|r| r.1).collect();
                v.sort_unstable();
                out.insert((key.clone(), first, last + 1, v));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn tumbling_and_hopping_windows_match_the_model(
        evs in events(6), size in 1i64..12, advance_pct in 1i64..=100, grace in 0i64..8,
        retain in prop::sample::select(vec![0i64, 3, 50]),
    ) {
        // Keeping closed windows for queries must not change what is emitted.
        let advance = (size * advance_pct / 100).max(1);
        let (got, late) = run(&evs, |g| {
            g.windowed_by(TimeWindows::of_size(size).advance_by(advance).grace(grace))
                .retain_for_queries(retain)
                .aggregate_with("w", aggregations::collect())
        });
        let (want, want_late) = time_model(&evs, size, advance, grace);
        prop_assert_eq!(got, want);
        prop_assert_eq!(late, want_late);
    }

    #[test]
    fn sliding_windows_match_the_model(
        evs in events(3), d in 0i64..10, retain in prop::sample::select(vec![0i64, 7]),
    ) {
        let grace = 6;
        let (got, late) = run(&evs, |g| {
            g.windowed_by_sliding(SlidingWindows::with_time_difference(d).grace(grace))
                .retain_for_queries(retain)
                .aggregate_with("w", aggregations::collect())
        });
        prop_assert!(late.is_empty());
        prop_assert_eq!(got, sliding_model(&evs, d, grace));
    }

    #[test]
    fn session_windows_match_the_model(
        evs in events(3), gap in 0i64..8, retain in prop::sample::select(vec![0i64, 4, 40]),
    ) {
        let grace = 6;
        let (got, late) = run(&evs, |g| {
            g.windowed_by_session(SessionWindows::with_inactivity_gap(gap).grace(grace))
                .retain_for_queries(retain)
                .aggregate_with("w", aggregations::collect())
        });
        prop_assert!(late.is_empty());
        prop_assert_eq!(got, session_model(&evs, gap, grace));
    }

    #[test]
    fn rate_limited_updates_end_with_the_same_aggregate_per_closed_window(
        evs in events(6), size in 1i64..12, grace in 0i64..8, interval in 1i64..15,
    ) {
        let last = |emit: Emit| -> BTreeMap<(String, i64), Vec<i64>> {
            let b = StreamsBuilder::new();
            b.stream("in", StringSerde, I64Serde)
                .group_by_key(StringSerde, I64Serde)
                .windowed_by(TimeWindows::of_size(size).grace(grace))
                .emit(emit)
                .aggregate_with("w", aggregations::collect())
                .to("out", WindowedSerde(StringSerde), JsonSerde::<Vec<i64>>::new());
            let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
            for e in &evs {
                d.pipe("in", &StringSerde, &I64Serde, &e.key, &e.value, e.ts).unwrap();
            }
            let st = evs.iter().map(|e| e.ts).max().unwrap();
            let mut out = BTreeMap::new();
            for r in d.read_output("out", &WindowedSerde(StringSerde), &JsonSerde::<Vec<i64>>::new()).unwrap() {
                if r.key.window.end_ms + grace <= st {
                    out.insert((r.key.key, r.key.window.start_ms), r.value);
                }
            }
            out
        };
        prop_assert_eq!(last(Emit::OnUpdateEvery { interval_ms: interval }), last(Emit::OnUpdate));
    }
}
