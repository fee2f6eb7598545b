//! Spawning `strom serve` for the binary's end-to-end tests: a temp data directory,
//! ephemeral loopback ports, and the Kafka address read from its log.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `command` with `stdin` as its input; returns its exit status and output.
pub fn run_with_input(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strom");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("strom runs")
}

/// Starts `strom serve` on `dir` with ephemeral ports and `extra` flags; returns the
/// child and the Kafka address it logged.
pub fn spawn_strom(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let (child, addr, _) = spawn_strom_with_http(dir, extra);
    (child, addr)
}

/// [`spawn_strom`], also returning the HTTP address.
#[allow(dead_code)] // not every test binary asks the HTTP endpoint
pub fn spawn_strom_with_http(dir: &Path, extra: &[&str]) -> (Child, SocketAddr, SocketAddr) {
    spawn_strom_configured(dir, extra, |_| {})
}

/// [`spawn_strom`], with `configure` applied to the command before it is spawned
/// (e.g. to set resource limits in the child).
#[allow(dead_code)]
pub fn spawn_strom_command(
    dir: &Path,
    extra: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (Child, SocketAddr) {
    let (child, addr, _) = spawn_strom_configured(dir, extra, configure);
    (child, addr)
}

fn spawn_strom_configured(
    dir: &Path,
    extra: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (Child, SocketAddr, SocketAddr) {
    let args = [&["--kafka-addr", "127.0.0.1:0"], extra].concat();
    let (child, addr, line) = spawn(dir, &args, "kafka_addr=", "kafka_addr=", configure);
    let http = line
        .split_once("http_addr=Some(")
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|addr| addr.parse().ok())
        .expect("http address in the serving line");
    (child, addr, http)
}

/// Starts `strom serve` on `dir` with ephemeral ports; returns the child and the
/// address of its schema registry (logged once the registry serves).
pub fn spawn_strom_registry(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let args = [&["--kafka-addr", "127.0.0.1:0"], extra].concat();
    let (child, addr, _) = spawn(
        dir,
        &args,
        "schema registry serving",
        "schema_registry_addr=",
        |_| {},
    );
    (child, addr)
}

/// Starts `strom serve --config CONFIG` on `dir` (the config names the listeners);
/// returns the child and the address of the listener named `listener`.
pub fn spawn_strom_with_config(dir: &Path, config: &Path, listener: &str) -> (Child, SocketAddr) {
    let config = config.to_str().expect("utf-8 config path");
    let marker = format!("listening listener={listener} ");
    let (child, addr, _) = spawn(dir, &["--config", config], &marker, " addr=", |_| {});
    (child, addr)
}

/// Starts `strom serve ARGS` on `dir` with an ephemeral HTTP port (the command
/// adjusted by `configure`); returns the child, the address that follows `key` in the
/// first log line containing `marker`, and that line.
fn spawn(
    dir: &Path,
    args: &[&str],
    marker: &str,
    key: &str,
    configure: impl FnOnce(&mut Command),
) -> (Child, SocketAddr, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command
        .args(["serve", "--http-addr", "127.0.0.1:0"])
        .args(["--schema-registry-addr", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("spawn strom");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("strom exited before it was serving")
            .expect("read stderr");
        if !line.contains(marker) {
            continue;
        }
        if let Some((_, rest)) = line.split_once(key) {
            let addr = rest.split_whitespace().next().expect("address");
            break (addr.parse().expect("socket address"), line.clone());
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr.0, addr.1)
}
