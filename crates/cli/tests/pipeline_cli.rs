//! `strom pipeline validate|describe` on the seeds and on a file with mistakes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[cfg(feature = "tools")]
mod support;

fn strom(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pipeline/tests/seeds/user-engagement-analytics.yaml"
);

#[test]
fn validate_and_describe_a_seed() {
    let (ok, out, _) = strom(&["pipeline", "validate", SEED]);
    assert!(ok);
    assert!(
        out.contains("pipeline user-engagement-analytics is valid (3 inputs, 2 steps, 3 outputs)"),
        "{out}"
    );
    let (ok, out, _) = strom(&["pipeline", "describe", SEED]);
    assert!(
        ok && out.contains("step 1 view-aggregator: tumbling window 5m"),
        "{out}"
    );
    let (ok, out, _) = strom(&["pipeline", "describe", "--mermaid", SEED]);
    assert!(ok && out.starts_with("flowchart LR\n"), "{out}");
}

#[test]
fn validate_reports_each_mistake_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "pipeline:\n  name: x\n  input_topics: [a]\n  processors:\n    - name: s\n      operations: [teleport]\n  output_sinks:\n    - type: kafak\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, err) = strom(&["pipeline", "validate", path]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{path}:6:20: unknown operation \"teleport\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:8:13: unknown output type \"kafak\"")),
        "{err}"
    );
    assert!(err.contains("2 mistake(s)"), "{err}");
}

#[test]
fn validate_reads_the_dashboard_page_next_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("views.yaml");
    std::fs::write(
        &file,
        "pipeline:\n  name: views\n  input_topics: [a]\n  dashboard: pages/views.html\n  output_sinks:\n    - type: websocket\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, err) = strom(&["pipeline", "validate", path]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{path}:4:14: dashboard \"pages/views.html\": cannot read {}",
            dir.path().join("pages/views.html").display()
        )),
        "{err}"
    );
    assert!(err.contains("1 mistake(s)"), "{err}");
    // Relative to the pipeline file, not to the working directory.
    std::fs::create_dir(dir.path().join("pages")).unwrap();
    std::fs::write(dir.path().join("pages/views.html"), "<h1>views</h1>").unwrap();
    let (ok, out, err) = strom(&["pipeline", "validate", path]);
    assert!(ok, "{err}");
    assert!(out.contains("pipeline views is valid"), "{out}");
}

/// `strom pipeline run` against a spawned `strom serve`: topics created, a filtered
/// 10-second window count written to its output topic exactly as the contract says,
/// a record without event time in the dead-letter topic; SIGTERM stops it cleanly.
#[cfg(feature = "tools")]
#[test]
fn run_a_windowed_pipeline_against_strom_serve() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    mod_support::spawned(|addr| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("views.yaml");
        std::fs::write(
            &file,
            "stream_pipeline:\n  name: views-e2e\n  event_time: at\n  input_sources:\n    - {type: kafka, topic: views, partitions: 1, replication_factor: 3}\n  processors:\n    - name: counts\n      type: tumbling-window\n      window_size: 10 seconds\n      operations:\n        - filter: \"watch_duration > 0\"\n        - count_by_content_id\n        - sum_watch_duration\n  output_sinks:\n    - {type: kafka, topic: view-counts}\n",
        )
        .unwrap();
        // One input partition: a task's stream time only moves with its own records.
        let mut run = mod_support::Killed(
            Command::new(env!("CARGO_BIN_EXE_strom"))
                .args([
                    "pipeline",
                    "run",
                    file.to_str().unwrap(),
                    "--bootstrap-servers",
                    &addr,
                ])
                .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let input = "\
c1:{\"content_id\":\"c1\",\"watch_duration\":30,\"at\":1000}
c1:{\"content_id\":\"c1\",\"watch_duration\":0,\"at\":2000}
c2:{\"content_id\":\"c2\",\"watch_duration\":5,\"at\":3000}
c1:{\"content_id\":\"c1\",\"watch_duration\":12,\"at\":4000}
c3:{\"content_id\":\"c3\",\"no_time\":true}
c9:{\"content_id\":\"c9\",\"watch_duration\":1,\"at\":25000}
";
        // Topics exist once the runner created them; then the input goes in.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = Command::new(env!("CARGO_BIN_EXE_strom"))
                .args(["topic", "list", "--brokers", &addr])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&list.stdout).contains("view-counts") {
                break;
            }
            assert!(Instant::now() < deadline, "the runner created no topics");
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut produce = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args([
                "produce",
                "views",
                "--key-separator",
                ":",
                "--brokers",
                &addr,
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        produce
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        assert!(produce.wait().unwrap().success());
        let read = |topic: &str| -> Vec<serde_json::Value> {
            let out = Command::new(env!("CARGO_BIN_EXE_strom"))
                .args([
                    "consume",
                    topic,
                    "--from",
                    "beginning",
                    "--exit-at-end",
                    "--format",
                    "value",
                    "--brokers",
                    &addr,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        };
        let mut counts = Vec::new();
        while counts.len() < 2 {
            assert!(
                Instant::now() < deadline + Duration::from_secs(60),
                "no window results: {counts:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
            counts = read("view-counts");
        }
        counts.sort_by_key(|v| v["content_id"].as_str().map(str::to_string));
        assert_eq!(
            counts,
            vec![
                serde_json::json!({"content_id": "c1", "window_start": 0, "window_end": 10000, "count_by_content_id": 2, "sum_watch_duration": 42.0}),
                serde_json::json!({"content_id": "c2", "window_start": 0, "window_end": 10000, "count_by_content_id": 1, "sum_watch_duration": 5.0}),
            ]
        );
        let dlq = read("views-e2e-dlq");
        assert_eq!(
            dlq,
            vec![serde_json::json!({"content_id": "c3", "no_time": true})]
        );
        // SIGTERM: it commits, leaves the group and exits successfully.
        let pid = run.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        assert!(run.0.wait().unwrap().success());
    });
}

#[cfg(feature = "tools")]
mod mod_support {
    /// A child process killed when dropped (also when a test panics).
    pub struct Killed(pub std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Runs `f` with the Kafka address of a fresh `strom serve`.
    pub fn spawned(f: impl FnOnce(String)) {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr, _) = super::support::spawn_strom_with_http(
            dir.path(),
            &["--group-initial-rebalance-delay-ms", "0"],
        );
        let _broker = Killed(child);
        f(addr.to_string());
    }
}
