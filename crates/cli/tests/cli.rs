//! The `strom` tools end to end: the built binary against a spawned `strom serve`,
//! through librdkafka. Assertions are on exact records, offsets and lag; nothing
//! depends on timing.
#![cfg(feature = "tools")]
#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::spawn_strom_with_http;

/// A broker for one test, killed when dropped.
struct Broker {
    child: Child,
    addr: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // No wait for more members: a group forms as soon as its first member joins;
        // the log cleaner looks for work every 50 ms.
        let (child, addr, http) = spawn_strom_with_http(
            dir.path(),
            &[
                "--group-initial-rebalance-delay-ms",
                "0",
                "--log-cleaner-backoff-ms",
                "50",
            ],
        );
        Broker {
            child,
            addr,
            http,
            _dir: dir,
        }
    }

    /// A `strom` command with `args` and this broker's address.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
        command
            .args(args)
            .args(["--brokers", &self.addr.to_string(), "--timeout", "20"]);
        command
    }

    /// Runs `strom ARGS` with `stdin` as its input.
    fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        support::run_with_input(&mut self.command(args), stdin)
    }

    /// Runs `strom ARGS`, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "")
    }

    /// Runs `strom ARGS` with input, which must succeed; returns its stdout.
    fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run_with_input(args, stdin);
        assert!(
            output.status.success(),
            "strom {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `strom ARGS`, which must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run_with_input(args, "");
        assert!(!output.status.success(), "strom {args:?} should fail");
        String::from_utf8(output.stderr).expect("utf-8 stderr")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rows of a table printed by the CLI, split on whitespace, without the header.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip_while(|line| !line.starts_with(char::is_uppercase) || line.contains(':'))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// (partition, committed, end, lag) rows of `group describe` for `topic`.
fn lag_rows(describe: &str, topic: &str) -> Vec<(String, String, String, String)> {
    rows(describe)
        .into_iter()
        .filter(|row| row[0] == topic)
        .map(|row| {
            (
                row[1].clone(),
                row[2].clone(),
                row[3].clone(),
                row[4].clone(),
            )
        })
        .collect()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let broker = Broker::start();
    let created = broker.ok(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=86400000",
    ]);
    assert_eq!(created, "created topic orders with 3 partition(s)\n");
    let error = broker.fails(&["topic", "create", "orders"]);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("already exists"), "{error}");

    let list = broker.ok(&["topic", "list"]);
    assert!(
        rows(&list).contains(&vec!["orders".to_owned(), "3".to_owned()]),
        "{list}"
    );

    broker.ok_with_input(&["produce", "orders", "--partition", "1"], "a\nb\n");
    let describe = broker.ok(&["topic", "describe", "orders"]);
    let partitions: Vec<Vec<String>> = rows(&describe);
    let offsets: Vec<(&str, &str, &str)> = partitions
        .iter()
        .take(3)
        .map(|r| (r[0].as_str(), r[4].as_str(), r[5].as_str()))
        .collect();
    assert_eq!(
        offsets,
        [("0", "0", "0"), ("1", "0", "2"), ("2", "0", "0")],
        "{describe}"
    );
    let size: i64 = partitions[1][6].parse().expect("size on disk");
    assert!(size > 0, "{describe}");
    assert_eq!(partitions[0][6], "0", "{describe}");
    assert!(
        describe.lines().any(|l| l
            .split_whitespace()
            .eq(["retention.ms", "86400000", "topic"])),
        "{describe}"
    );

    broker.ok(&[
        "topic",
        "alter-config",
        "orders",
        "--set",
        "flush.ms=1000",
        "--delete",
        "retention.ms",
    ]);
    let describe = broker.ok(&["topic", "describe", "orders"]);
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().eq(["flush.ms", "1000", "topic"])),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("retention.ms") && l.ends_with("default")),
        "{describe}"
    );
    let error = broker.fails(&[
        "topic",
        "alter-config",
        "orders",
        "--delete",
        "retention.ms",
    ]);
    assert!(error.contains("no override of retention.ms"), "{error}");

    assert_eq!(
        broker.ok(&["topic", "delete", "orders"]),
        "deleted topic orders\n"
    );
    assert!(!broker.ok(&["topic", "list"]).contains("orders"));
    let error = broker.fails(&["topic", "describe", "orders"]);
    assert!(error.starts_with("strom: topic orders"), "{error}");
}

#[test]
fn describe_shows_the_log_cleaner_state_of_a_compacted_topic() {
    let broker = Broker::start();
    broker.ok(&[
        "topic",
        "create",
        "kv",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "segment.ms=100",
        "--config",
        "min.cleanable.dirty.ratio=0",
    ]);
    let input: String = (0..60).map(|i| format!("k\tv{i}\n")).collect();
    broker.ok_with_input(&["produce", "kv", "--key-separator", "\t"], &input);
    // The next append, after segment.ms, rolls the segment: it becomes cleanable.
    std::thread::sleep(Duration::from_millis(200));
    broker.ok_with_input(&["produce", "kv", "--key-separator", "\t"], "k\tlast\n");
    let http = broker.http.to_string();
    // Failure guard only: the cleaner runs within a second or two.
    let deadline = Instant::now() + Duration::from_secs(60);
    let describe = loop {
        let describe = broker.ok(&["topic", "describe", "kv", "--http-addr", &http]);
        if describe.contains("s ago") {
            break describe;
        }
        assert!(Instant::now() < deadline, "never cleaned:\n{describe}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let cleaner = describe
        .split_once("log cleaner:")
        .map(|(_, table)| table)
        .expect("a log cleaner section");
    let row = &rows(cleaner)[0];
    assert_eq!(row[0], "0", "{describe}");
    assert!(
        row.last().is_some_and(|s| s == "ok" || s == "cleaning"),
        "{describe}"
    );
    let plain = broker.ok(&["topic", "create", "plain"]);
    assert!(plain.contains("created"));
    assert!(!broker
        .ok(&["topic", "describe", "plain", "--http-addr", &http])
        .contains("log cleaner"));
}

#[test]
fn produce_keys_and_headers_then_consume_as_text_and_json() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "events"]);
    broker.ok_with_input(
        &[
            "produce",
            "events",
            "-K",
            ":",
            "-H",
            "source=test",
            "-H",
            "n=1",
        ],
        "user1:clicked\nuser2:left:early\nno key here\n",
    );

    let values = broker.ok(&["consume", "events", "--from", "beginning", "--exit-at-end"]);
    assert_eq!(values, "clicked\nleft:early\nno key here\n");

    let records = json_lines(&broker.ok(&[
        "consume",
        "events",
        "--from",
        "beginning",
        "-n",
        "2",
        "--format",
        "json",
    ]));
    assert_eq!(records.len(), 2);
    let headers = serde_json::json!([
        {"key": "source", "value": "test"},
        {"key": "n", "value": "1"},
    ]);
    for (offset, (record, (key, value))) in records
        .iter()
        .zip([("user1", "clicked"), ("user2", "left:early")])
        .enumerate()
    {
        assert_eq!(record["topic"], "events");
        assert_eq!(record["partition"], 0);
        assert_eq!(record["offset"], offset);
        assert_eq!(record["key"], key);
        assert_eq!(record["value"], value);
        assert_eq!(record["headers"], headers);
        assert!(record["timestamp"].as_i64().expect("timestamp") > 0);
    }

    let text = broker.ok(&[
        "consume",
        "events",
        "--from",
        "2",
        "--format",
        "text",
        "--exit-at-end",
    ]);
    let fields: Vec<&str> = text.trim_end().splitn(4, ' ').collect();
    assert_eq!(fields[0], "0:2", "{text}");
    assert_eq!(fields[2], "headers=source=test,n=1", "{text}");
    assert_eq!(fields[3], "no key here", "{text}");

    // From a timestamp: everything was written after this one.
    let all = broker.ok(&["consume", "events", "--from", "@1", "-e"]);
    assert_eq!(all.lines().count(), 3);
}

#[test]
fn group_consume_describe_lag_and_reset_offsets() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "jobs", "--partitions", "2"]);
    let lines: String = (0..5).map(|i| format!("a{i}\n")).collect();
    broker.ok_with_input(&["produce", "jobs", "--partition", "0"], &lines);
    let lines: String = (0..3).map(|i| format!("b{i}\n")).collect();
    broker.ok_with_input(&["produce", "jobs", "--partition", "1"], &lines);

    let read = broker.ok(&[
        "consume",
        "jobs",
        "--group",
        "workers",
        "--from",
        "beginning",
        "-e",
    ]);
    let mut read: Vec<&str> = read.lines().collect();
    read.sort_unstable();
    assert_eq!(read, ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]);
    broker.ok_with_input(&["produce", "jobs", "--partition", "0"], "a5\na6\n");

    let describe = broker.ok(&["group", "describe", "workers"]);
    assert!(
        describe.starts_with("group workers: state Empty"),
        "{describe}"
    );
    let expected = |c0: &str, e0: &str, l0: &str, c1: &str, e1: &str, l1: &str| {
        vec![
            ("0".to_owned(), c0.to_owned(), e0.to_owned(), l0.to_owned()),
            ("1".to_owned(), c1.to_owned(), e1.to_owned(), l1.to_owned()),
        ]
    };
    assert_eq!(
        lag_rows(&describe, "jobs"),
        expected("5", "7", "2", "3", "3", "0")
    );
    let list = broker.ok(&["group", "list"]);
    assert!(
        rows(&list)
            .iter()
            .any(|r| r[0] == "workers" && r[1] == "Empty"),
        "{list}"
    );

    let reset_and_describe = |how: &[&str]| {
        let args = [&["group", "reset-offsets", "workers", "--execute"][..], how].concat();
        broker.ok(&args);
        lag_rows(&broker.ok(&["group", "describe", "workers"]), "jobs")
    };
    // A dry run prints the plan and changes nothing.
    let plan = broker.ok(&[
        "group",
        "reset-offsets",
        "workers",
        "--topic",
        "jobs",
        "--to-earliest",
    ]);
    assert_eq!(
        rows(&plan),
        [["jobs", "0", "5", "0"], ["jobs", "1", "3", "0"]],
        "{plan}"
    );
    assert!(plan.contains("dry run"), "{plan}");
    let describe = broker.ok(&["group", "describe", "workers"]);
    assert_eq!(
        lag_rows(&describe, "jobs"),
        expected("5", "7", "2", "3", "3", "0")
    );

    // Offset 4 is past partition 1's end (3): clamped to it.
    assert_eq!(
        reset_and_describe(&["--all-topics", "--to-offset", "4"]),
        expected("4", "7", "3", "3", "3", "0")
    );
    let rest = broker.ok(&["consume", "jobs", "--group", "workers", "-e"]);
    assert_eq!(rest, "a4\na5\na6\n");
    assert_eq!(
        reset_and_describe(&["--topic", "jobs", "--to-latest"]),
        expected("7", "7", "0", "3", "3", "0")
    );

    assert_eq!(
        broker.ok(&["group", "delete", "workers"]),
        "deleted group workers\n"
    );
    let error = broker.fails(&["group", "describe", "workers"]);
    assert_eq!(error, "strom: group workers does not exist\n");
}

#[test]
fn reset_offsets_refuses_a_group_with_members() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "live"]);
    broker.ok_with_input(&["produce", "live"], "x\n");
    let member = broker
        .command(&["consume", "live", "--group", "tail", "--from", "beginning"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let describe = loop {
        // Before the member joins, the group does not exist (describe fails).
        let output = broker.run_with_input(&["group", "describe", "tail"], "");
        let describe = String::from_utf8(output.stdout).expect("utf-8");
        if output.status.success() && describe.contains("state Stable") {
            break describe;
        }
        assert!(
            Instant::now() < deadline,
            "the member never joined: {describe}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let members = rows(describe.split("\n\n").nth(1).expect("member table"));
    assert_eq!(members.len(), 1, "{describe}");
    assert_eq!(members[0][1], "strom-cli");
    assert_eq!(members[0][3], "live/0");

    let error = broker.fails(&[
        "group",
        "reset-offsets",
        "tail",
        "--topic",
        "live",
        "--to-earliest",
        "--execute",
    ]);
    assert!(error.contains("group tail is not empty"), "{error}");

    // SIGTERM: the member commits, leaves the group, and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &member.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = member.wait_with_output().expect("consumer exits");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"x\n");
    let describe = broker.ok(&["group", "describe", "tail"]);
    assert!(
        describe.starts_with("group tail: state Empty"),
        "{describe}"
    );
    assert_eq!(
        lag_rows(&describe, "live"),
        [(
            "0".to_owned(),
            "1".to_owned(),
            "1".to_owned(),
            "0".to_owned()
        )]
    );
}

#[test]
fn bench_produce_consume_and_e2e_report_json() {
    let broker = Broker::start();
    let produce: Value = serde_json::from_str(&broker.ok(&[
        "bench",
        "produce",
        "--topic",
        "bench",
        "--partitions",
        "2",
        "--count",
        "2000",
        "--size",
        "100",
        "--json",
    ]))
    .expect("produce JSON");
    assert_eq!(produce["bench"], "produce");
    assert_eq!(produce["messages"], 2000);
    assert_eq!(produce["bytes"], 200_000);
    let latency = &produce["latency_ms"];
    for key in ["p50", "p99", "p999", "max"] {
        assert!(latency[key].as_f64().expect(key) >= 0.0);
    }
    assert!(latency["p50"].as_f64() <= latency["max"].as_f64());

    let consume: Value =
        serde_json::from_str(&broker.ok(&["bench", "consume", "--topic", "bench", "--json"]))
            .expect("consume JSON");
    assert_eq!(consume["messages"], 2000);
    assert_eq!(consume["bytes"], 200_000);
    assert!(consume["latency_ms"].is_null());

    let e2e: Value = serde_json::from_str(&broker.ok(&[
        "bench", "e2e", "--count", "300", "--rate", "3000", "--size", "64", "--json",
    ]))
    .expect("e2e JSON");
    assert_eq!(e2e["messages"], 300);
    assert_eq!(e2e["bytes"], 300 * 64);
    assert!(e2e["latency_ms"]["p99"].as_f64().expect("p99") > 0.0);

    let text = broker.ok(&["bench", "consume", "--topic", "bench", "-n", "10"]);
    assert!(text.starts_with("consume bench: 10 messages"), "{text}");
    let error = broker.fails(&["bench", "consume", "--topic", "bench", "-n", "5000"]);
    assert!(error.contains("holds 2000 record(s)"), "{error}");
}

#[test]
fn errors_are_one_line_with_a_failing_exit_code() {
    let output = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "topic",
            "list",
            "--brokers",
            "127.0.0.1:1",
            "--timeout",
            "2",
        ])
        .output()
        .expect("strom runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("strom: cannot fetch metadata from 127.0.0.1:1"),
        "{stderr}"
    );

    let help = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(args)
            .output()
            .expect("strom runs");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let group = help(&["group", "--help"]);
    assert!(
        group.contains("Examples:") && group.contains("reset-offsets"),
        "{group}"
    );
    let reset = help(&["group", "reset-offsets", "--help"]);
    assert!(
        reset.contains("--execute") && reset.contains("--brokers"),
        "{reset}"
    );
}

#[test]
fn generate_produces_exactly_the_events_it_prints() {
    let broker = Broker::start();
    let args = [
        "generate",
        "payments",
        "--count",
        "300",
        "--seed",
        "9",
        "--start-ms",
        "1800000000000",
        "--invalid-fraction",
        "0.1",
    ];
    let printed = json_lines(&broker.ok(&[&args[..], &["--stdout"]].concat()));
    assert_eq!(printed.len(), 300);
    // The same seed prints the same events again; another seed does not.
    assert_eq!(
        json_lines(&broker.ok(&[&args[..], &["--stdout"]].concat())),
        printed
    );
    let mut reseeded = args;
    reseeded[5] = "10";
    let other = json_lines(&broker.ok(&[&reseeded[..], &["--stdout"]].concat()));
    assert_ne!(other, printed);
    assert!(
        printed
            .iter()
            .any(|e| e["value"]["amount"].as_f64().expect("amount") < 0.0),
        "invalid payments have negative amounts"
    );

    broker.ok(&args);
    let consumed = json_lines(&broker.ok(&[
        "consume",
        "payments",
        "--from",
        "beginning",
        "-n",
        "300",
        "--format",
        "json",
    ]));
    assert_eq!(consumed.len(), 300);
    for (got, want) in consumed.iter().zip(&printed) {
        assert_eq!(got["key"], want["key"]);
        assert_eq!(got["timestamp"], want["timestamp"]);
        let value: Value =
            serde_json::from_str(got["value"].as_str().expect("value")).expect("JSON");
        assert_eq!(value, want["value"]);
    }
}
