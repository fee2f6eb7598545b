//! The three seed pipelines, verbatim: they parse, and their descriptions match the
//! golden files (`STROM_BLESS=1` rewrites them after a reviewed change).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use strom_pipeline::{describe, parse, StepKind};

const SEEDS: [&str; 3] = [
    "user-engagement-analytics",
    "driver-location-tracking",
    "message-delivery-system",
];

fn seed(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seeds");
    std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("STROM_BLESS").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, want, "{name} differs from its golden file");
}

#[test]
fn the_seeds_parse_as_written_and_describe_as_the_golden_files() {
    for name in SEEDS {
        let p = parse(&format!("{name}.yaml"), &seed(name), &|_| None)
            .unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_eq!(p.name, name);
        golden(&format!("{name}.txt"), &describe::text(&p));
        golden(&format!("{name}.mmd"), &describe::mermaid(&p));
    }
}

#[test]
fn the_seeds_say_what_the_model_holds() {
    let p = parse("s.yaml", &seed("user-engagement-analytics"), &|_| None).unwrap();
    assert_eq!(p.key, "stream_pipeline");
    assert_eq!(p.inputs.len(), 3);
    assert_eq!(p.steps[0].kind, StepKind::Tumbling);
    assert_eq!(p.steps[0].window.unwrap().size_ms, 300_000);
    assert_eq!(p.sinks[2].setting("key_pattern"), Some("rec:{user_id}"));
    let p = parse("s.yaml", &seed("driver-location-tracking"), &|_| None).unwrap();
    assert_eq!(
        (p.inputs[0].partitions, p.inputs[0].replication_factor),
        (Some(64), Some(3))
    );
    let p = parse("s.yaml", &seed("message-delivery-system"), &|_| None).unwrap();
    assert_eq!(
        p.inputs[0].partition_strategy.as_deref(),
        Some("hash_by_chat_id")
    );
    assert_eq!(p.sinks[1].route.as_deref(), Some("offline_users"));
}
