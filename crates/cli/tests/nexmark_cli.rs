//! `strom generate nexmark` and `strom bench nexmark` end to end: the built binary
//! against a spawned `strom serve`. Assertions are on exact events and counts; nothing
//! depends on timing.
#![cfg(feature = "tools")]
#![allow(missing_docs)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::spawn_strom;

fn strom(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .expect("strom runs");
    assert!(
        output.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn generate_nexmark_produces_exactly_the_events_it_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = spawn_strom(dir.path(), &[]);
    let brokers = addr.to_string();
    let args = ["generate", "nexmark", "--count", "500", "--seed", "5"];
    let printed = json_lines(&strom(&[&args[..], &["--stdout"]].concat()));
    assert_eq!(printed.len(), 500);
    // 1 : 3 : 46 — 10 people, 30 auctions and 460 bids in 500 events.
    let kinds = |kind: &str| {
        printed
            .iter()
            .filter(|e| e["value"].get(kind).is_some())
            .count()
    };
    assert_eq!(
        (kinds("person"), kinds("auction"), kinds("bid")),
        (10, 30, 460)
    );
    assert!(printed
        .iter()
        .all(|e| e["key"].is_null() && e["topic"] == "nexmark-events"));
    // The same seed prints the same events; another seed and the other mode do not.
    assert_eq!(
        json_lines(&strom(&[&args[..], &["--stdout"]].concat())),
        printed
    );
    let other = json_lines(&strom(&[
        "generate", "nexmark", "--count", "500", "--seed", "6", "--stdout",
    ]));
    assert_ne!(other, printed);
    let bids = json_lines(&strom(
        &[&args[..], &["--stdout", "--mode", "flink-bids"]].concat(),
    ));
    assert!(bids.iter().all(|e| e["value"].get("bid").is_some()));

    strom(&[&args[..], &["--brokers", &brokers, "--topic", "events"]].concat());
    let consumed = json_lines(&strom(&[
        "consume",
        "events",
        "--from",
        "beginning",
        "-n",
        "500",
        "--format",
        "json",
        "--brokers",
        &brokers,
    ]));
    assert_eq!(consumed.len(), 500);
    for (got, want) in consumed.iter().zip(&printed) {
        assert!(got["key"].is_null());
        assert_eq!(got["timestamp"], want["timestamp"]);
        let value: Value =
            serde_json::from_str(got["value"].as_str().expect("value")).expect("JSON");
        assert_eq!(value, want["value"]);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bench_nexmark_in_process_reports_the_querys_outputs() {
    let run = |query: &str| -> Value {
        let out = strom(&[
            "bench",
            "nexmark",
            "--query",
            query,
            "--events",
            "3000",
            "--threads",
            "2",
            "--json",
        ]);
        serde_json::from_str(out.trim()).expect("one JSON object")
    };
    // The bench's default for bid queries is the Flink script's stream with seed 42:
    // the same events `generate --mode flink-bids --seed 42` prints.
    let events = json_lines(&strom(&[
        "generate",
        "nexmark",
        "--mode",
        "flink-bids",
        "--seed",
        "42",
        "--count",
        "3000",
        "--stdout",
    ]));
    let q0 = run("q0");
    assert_eq!(
        (q0["events"].as_u64(), q0["outputs"].as_u64()),
        (Some(3000), Some(3000))
    );
    assert_eq!(q0["mode"], "in-process");
    assert_eq!(q0["generator"], "flink-bids");
    assert!(q0["events_per_second"].as_f64().expect("rate") > 0.0);
    assert!(q0["peak_rss_mb"].as_f64().expect("rss") > 0.0);
    let selected = events
        .iter()
        .filter(|e| e["value"]["bid"]["auction"].as_i64().expect("auction") % 123 == 0)
        .count() as u64;
    assert!(selected > 0);
    assert_eq!(run("q2")["outputs"].as_u64(), Some(selected));
    let tumble = run("tumble_count");
    assert_eq!(tumble["internal_records"].as_u64(), Some(3000));

    let fails = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["bench", "nexmark", "--query", "q99"])
        .output()
        .expect("strom runs");
    assert!(!fails.status.success());
    assert!(String::from_utf8_lossy(&fails.stderr).contains("no query \"q99\""));
}
