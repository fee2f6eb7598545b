//! What the pipeline tests share: a pipeline file compiled and run in the strom-streams
//! test driver, with dead letters on topic `dlq`, JSON values in and out.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part

use serde_json::Value;
use strom_pipeline::compile::{compile, TextKey};
use strom_pipeline::parse;
use strom_streams::prelude::*;

/// The test driver running the pipeline file `yaml`; processing and deserialization
/// errors go to the topic `dlq`.
pub fn driver(yaml: &str) -> TopologyTestDriver {
    let p = parse("p.yaml", yaml, &|_| None).unwrap();
    let topology = compile("p.yaml", &p).unwrap_or_else(|e| panic!("{e}"));
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        deserialization_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        ..DriverConfig::default()
    };
    TopologyTestDriver::with_config(&topology, config).unwrap()
}

/// Pipes one JSON record with its key and timestamp into `topic`.
pub fn send(d: &mut TopologyTestDriver, topic: &str, key: &str, v: Value, ts: i64) {
    let serde = JsonSerde::<Value>::new();
    d.pipe(topic, &TextKey, &serde, &key.to_string(), &v, ts)
        .unwrap();
}

/// The records written to `topic` since the last read: (key, JSON value).
pub fn out(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, Value)> {
    d.read_output(topic, &StringSerde, &JsonSerde::<Value>::new())
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

/// The dead-letter topic's records: the original value and the `strom.error` header.
pub fn dead_letters(d: &mut TopologyTestDriver) -> Vec<(Value, String)> {
    d.read_raw("dlq")
        .iter()
        .map(|r| {
            let h = r.headers.iter().find(|(k, _)| k == "strom.error").unwrap();
            (
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
                String::from_utf8(h.1.clone().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The `strom.error` header of each dead-lettered record.
pub fn dlq_reasons(d: &mut TopologyTestDriver) -> Vec<String> {
    d.read_raw("dlq")
        .iter()
        .map(|r| {
            let h = r.headers.iter().find(|(k, _)| k == "strom.error").unwrap();
            String::from_utf8(h.1.clone().unwrap()).unwrap()
        })
        .collect()
}
