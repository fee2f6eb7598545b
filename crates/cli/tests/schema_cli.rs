//! `strom schema` end to end: the built binary against the schema registry of a
//! spawned `strom serve`, and the registry's state across a SIGKILL.

mod support;

use std::process::{Command, Output};

use support::{run_with_input, spawn_strom_registry};

const RIDE_V1: &str = r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"string"}]}"#;
const RIDE_V2: &str = r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"string"},{"name":"km","type":"int","default":0}]}"#;
const RIDE_BAD: &str = r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"int"}]}"#;

fn schema(registry: &str, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command
        .arg("schema")
        .args(["--registry", registry])
        .args(args)
        .env_remove("STROM_SCHEMA_REGISTRY")
        .env_remove("STROM_SCHEMA_REGISTRY_AUTH");
    run_with_input(&mut command, stdin)
}

fn ok(registry: &str, args: &[&str], stdin: &str) -> String {
    let out = schema(registry, args, stdin);
    assert!(
        out.status.success(),
        "strom schema {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn register_get_list_check_config_delete_and_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = spawn_strom_registry(dir.path(), &[]);
    let registry = format!("http://{addr}");
    let r = registry.as_str();
    let id = ok(r, &["register", "rides-value", "--file", "-"], RIDE_V1);
    assert_eq!(id.trim(), "1");
    // The same schema under another subject: the same id.
    assert_eq!(
        ok(r, &["register", "other", "--file", "-"], RIDE_V1).trim(),
        "1"
    );
    assert_eq!(ok(r, &["list"], ""), "other\nrides-value\n");
    assert_eq!(
        ok(r, &["get", "rides-value", "--schema-only"], "").trim(),
        RIDE_V1
    );
    assert!(ok(r, &["get", "--id", "1"], "").contains("Ride"));
    assert_eq!(
        ok(r, &["check", "rides-value", "--file", "-"], RIDE_V2).trim(),
        "compatible"
    );
    let bad = schema(r, &["check", "rides-value", "--file", "-"], RIDE_BAD);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("incompatible"));
    let refused = schema(r, &["register", "rides-value", "--file", "-"], RIDE_BAD);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("error code 409"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(ok(r, &["config"], "").trim(), "BACKWARD");
    assert_eq!(
        ok(r, &["config", "rides-value", "--set", "none"], "").trim(),
        "NONE"
    );
    assert_eq!(ok(r, &["config", "rides-value"], "").trim(), "NONE");
    assert_eq!(
        ok(r, &["register", "rides-value", "--file", "-"], RIDE_BAD).trim(),
        "2"
    );
    assert_eq!(ok(r, &["list", "rides-value"], ""), "1\n2\n");
    assert_eq!(
        ok(r, &["delete", "rides-value", "--version", "1"], "").trim(),
        "1"
    );
    assert_eq!(ok(r, &["list", "rides-value"], ""), "2\n");
    assert_eq!(ok(r, &["list", "rides-value", "--deleted"], ""), "1\n2\n");

    // SIGKILL: everything acknowledged is still there after a restart.
    child.kill().expect("kill");
    child.wait().expect("wait");
    let (mut child, addr) = spawn_strom_registry(dir.path(), &[]);
    let registry = format!("http://{addr}");
    let r = registry.as_str();
    assert_eq!(ok(r, &["list", "rides-value"], ""), "2\n");
    assert_eq!(ok(r, &["config", "rides-value"], "").trim(), "NONE");
    assert!(
        ok(r, &["get", "--id", "1"], "").contains("Ride"),
        "soft-deleted, readable by id"
    );
    assert_eq!(
        ok(r, &["register", "rides-value", "--file", "-"], RIDE_BAD).trim(),
        "2"
    );
    let fresh = r#"{"type":"record","name":"Fresh","fields":[]}"#;
    assert_eq!(
        ok(r, &["register", "fresh", "--file", "-"], fresh).trim(),
        "3"
    );
    let missing = schema(r, &["get", "nope"], "");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("40401"));
    child.kill().expect("kill");
    child.wait().expect("wait");
}
