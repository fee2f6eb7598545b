//! The external outputs' settings: names and internal topics, retry and circuit-breaker
//! settings, WebSocket endpoints. (Each output against its real server: the compat suite,
//! `tests/compat/python/test_pipeline_sinks.py`.)
#![allow(clippy::unwrap_used)]

use strom_pipeline::connectors::worker::WorkerConfig;
use strom_pipeline::connectors::{self, websocket};
use strom_pipeline::{parse, Sink};
use strom_streams::prelude::{BreakerState, CircuitBreaker};

const TWO_REDIS: &str = r#"
pipeline:
  name: p
  input_topics: [a]
  output_sinks:
    - type: redis
      key_pattern: "x:{id}"
      retries: 3
      retry_backoff: 50ms
      circuit_breaker: 2 seconds
      max_in_flight: 20
    - type: redis
      key_pattern: "y:{id}"
    - type: websocket
      for: online_users
    - type: postgres
      name: counts
      table: counts
    - type: kafka
      topic: out
"#;

fn pipeline() -> strom_pipeline::Pipeline {
    parse("p.yaml", TWO_REDIS, &|_| None).unwrap()
}

#[test]
fn outputs_are_named_by_type_position_or_name() {
    let p = pipeline();
    let names: Vec<String> = (0..p.sinks.len())
        .map(|i| connectors::name(&p, i))
        .collect();
    assert_eq!(
        names,
        ["redis-1", "redis-2", "websocket", "counts", "kafka"]
    );
    assert_eq!(connectors::topic(&p, 3), "p-sink-counts");
    assert!(!connectors::is_external(&p.sinks[4]));
    assert_eq!(websocket::endpoint(&p.sinks[2]), "/online_users");
}

#[test]
fn retries_backoff_and_circuit_come_from_the_output() {
    let p = pipeline();
    let cfg = WorkerConfig::new(
        "b:9092",
        "p",
        "redis-1",
        "p-sink-redis-1",
        "p-dlq",
        &p.sinks[0],
    )
    .unwrap();
    assert_eq!(cfg.group, "p-sink-redis-1");
    assert_eq!(cfg.max_batch, 20);
    assert_eq!(cfg.retry_backoff.as_millis(), 50);
    assert_eq!(cfg.breaker.cool_down_ms, 2000);
    assert!(!cfg.tail);
    // Three failures in a row open the circuit; a success in between starts over.
    let mut b = CircuitBreaker::new(cfg.breaker.clone());
    b.record(false, 0);
    b.record(false, 1);
    b.record(true, 2);
    b.record(false, 3);
    b.record(false, 4);
    assert_eq!(b.state(5), BreakerState::Closed);
    b.record(false, 6);
    assert_eq!(b.state(7), BreakerState::Open { until_ms: 2006 });
    assert_eq!(b.state(2006), BreakerState::HalfOpen);
    // Defaults.
    let cfg = WorkerConfig::new("b:9092", "p", "redis-2", "t", "p-dlq", &p.sinks[1]).unwrap();
    assert_eq!(
        (cfg.max_batch, cfg.breaker.window, cfg.breaker.cool_down_ms),
        (500, 5, 10_000)
    );
    let ws = WorkerConfig::new("b:9092", "p", "websocket", "t", "p-dlq", &p.sinks[2]).unwrap();
    assert!(
        ws.tail,
        "websocket outputs read every partition from its end"
    );
}

#[test]
fn bad_numbers_and_durations_are_named() {
    let mut sink: Sink = pipeline().sinks[1].clone();
    sink.settings
        .push(("retries".into(), strom_pipeline::Value::Text("0".into())));
    let e = WorkerConfig::new("b", "p", "r", "t", "d", &sink).unwrap_err();
    assert!(e.contains("retries \"0\""), "{e}");
    let mut sink: Sink = pipeline().sinks[1].clone();
    sink.settings.push((
        "retry_backoff".into(),
        strom_pipeline::Value::Text("soon".into()),
    ));
    let e = WorkerConfig::new("b", "p", "r", "t", "d", &sink).unwrap_err();
    assert!(e.starts_with("retry_backoff:"), "{e}");
}
