//! Non-blocking retry topics through the test driver: tiers by wall clock, the input
//! flowing meanwhile, the dead-letter topic after the last tier, failed attempts undone,
//! exactly-once under abort.
#![allow(clippy::unwrap_used)]

use strom_streams::prelude::*;

const APP: &str = "test-app";
const RETRY_1: &str = "test-app-enrich-retry-1";
const RETRY_2: &str = "test-app-enrich-retry-2";
const START_MS: i64 = 100_000;

fn s(x: &str) -> String {
    x.to_string()
}

/// Fails on values starting with `flaky` until the third attempt, on values starting
/// with `poison` always, on `invalid` with an error that does not retry; otherwise
/// forwards the value upper-cased with the attempt it took.
struct Enrich;

impl Processor<String, String, String, String> for Enrich {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let attempt = ctx.attempt();
        ctx.send(OutputRecord {
            topic: s("side"),
            partition: None,
            key: None,
            value: Some(r.value.clone().into_bytes()),
            timestamp_ms: r.timestamp_ms,
            headers: Vec::new(),
        });
        let error = if r.value.starts_with("flaky") && attempt < 3 {
            Some(format!("service down (attempt {attempt})"))
        } else if r.value.starts_with("poison") {
            Some(s("cannot enrich"))
        } else if r.value.starts_with("invalid") {
            Some(s("invalid order"))
        } else {
            None
        };
        if let Some(error) = error {
            // Forwarded and sent before failing: a failed attempt must leave none of it.
            ctx.forward(Record {
                value: format!("partial {}", r.value),
                ..r
            });
            return Err(ProcessError::user(error));
        }
        ctx.forward(Record {
            value: format!("{}@{attempt}", r.value.to_uppercase()),
            ..r
        });
        Ok(())
    }
}

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("orders", StringSerde, StringSerde)
        .process_with_retry_topics(
            || Enrich,
            &[],
            RetryTopics::new("enrich")
                .backoff_ms([1_000, 10_000])
                .retry_on(|e| !e.to_string().contains("invalid")),
            StringSerde,
            StringSerde,
        )
        .to("enriched", StringSerde, StringSerde);
    b.build().unwrap()
}

fn driver(auto_commit: bool) -> TopologyTestDriver {
    TopologyTestDriver::with_config(
        &topology(),
        DriverConfig {
            auto_commit,
            wall_clock_start_ms: START_MS,
            processing_errors: ErrorHandler::DeadLetter { topic: s("dlq") },
            ..DriverConfig::default()
        },
    )
    .unwrap()
}

fn pipe(d: &mut TopologyTestDriver, k: &str, v: &str, ts: i64) {
    d.pipe("orders", &StringSerde, &StringSerde, &s(k), &s(v), ts)
        .unwrap();
}

fn enriched(d: &mut TopologyTestDriver) -> Vec<(String, String, i64)> {
    d.read_output("enriched", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp_ms))
        .collect()
}

fn header(r: &OutputRecord, name: &str) -> Option<String> {
    r.headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
}

fn headers(r: &OutputRecord) -> Vec<(String, String)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone().unwrap()).unwrap()))
        .collect()
}

#[test]
fn retry_topics_are_sources_of_the_processors_sub_topology() {
    let t = topology();
    assert_eq!(t.retry_topics(APP), vec![s(RETRY_1), s(RETRY_2)]);
    assert_eq!(t.internal_topics(APP), vec![s(RETRY_1), s(RETRY_2)]);
    let mut sources = t.source_topics(APP);
    sources.sort();
    assert_eq!(sources, vec![s("orders"), s(RETRY_1), s(RETRY_2)]);
    assert_eq!(t.describe().matches("sub-topology").count(), 1);
}

#[test]
fn a_record_failing_twice_passes_on_the_third_attempt_after_both_tiers_while_others_flow() {
    let mut d = driver(true);
    pipe(&mut d, "a", "flaky-1", 1);
    pipe(&mut d, "b", "ok-2", 2);
    pipe(&mut d, "c", "ok-3", 3);
    // The failing record waits in tier 1; the others are not held behind it.
    assert_eq!(
        enriched(&mut d),
        vec![(s("b"), s("OK-2@1"), 2), (s("c"), s("OK-3@1"), 3)]
    );
    let tier1 = d.read_raw(RETRY_1);
    assert_eq!(tier1.len(), 1);
    assert_eq!(tier1[0].partition, Some(0), "the task's own partition");
    assert_eq!(
        (
            tier1[0].key.clone(),
            tier1[0].value.clone(),
            tier1[0].timestamp_ms
        ),
        (Some(b"a".to_vec()), Some(b"flaky-1".to_vec()), 1)
    );
    assert_eq!(
        headers(&tier1[0]),
        vec![
            (s("strom.retry.attempt"), s("2")),
            (s("strom.retry.due.ms"), (START_MS + 1_000).to_string()),
            (s("strom.original.topic"), s("orders")),
            (s("strom.original.partition"), s("0")),
            (s("strom.original.offset"), s("0")),
            (s("strom.original.timestamp"), s("1")),
            (s("strom.error.kind"), s("processing")),
            (s("strom.error"), s("service down (attempt 1)")),
        ]
    );
    // Read before its due time: that retry partition waits, nothing else does.
    assert_eq!(d.paused_records(), 1);
    d.advance_wall_clock(999).unwrap();
    pipe(&mut d, "d", "ok-4", 4);
    assert_eq!(enriched(&mut d), vec![(s("d"), s("OK-4@1"), 4)]);
    assert!(d.read_raw(RETRY_2).is_empty());
    // Due: attempt 2 fails and moves on to tier 2, keeping the first attempt's origin.
    d.advance_wall_clock(1).unwrap();
    assert!(enriched(&mut d).is_empty());
    let tier2 = d.read_raw(RETRY_2);
    assert_eq!(tier2.len(), 1);
    assert_eq!(header(&tier2[0], "strom.retry.attempt").unwrap(), "3");
    assert_eq!(
        header(&tier2[0], "strom.retry.due.ms").unwrap(),
        (START_MS + 1_000 + 10_000).to_string()
    );
    assert_eq!(header(&tier2[0], "strom.original.topic").unwrap(), "orders");
    assert_eq!(header(&tier2[0], "strom.original.offset").unwrap(), "0");
    assert_eq!(
        header(&tier2[0], "strom.error").unwrap(),
        "service down (attempt 2)"
    );
    assert_eq!(
        tier2[0].headers.len(),
        8,
        "the retry headers are replaced, not piled up"
    );
    d.advance_wall_clock(9_999).unwrap();
    assert!(enriched(&mut d).is_empty());
    d.advance_wall_clock(1).unwrap();
    // Once, with its event time, without the retry headers.
    let out = d.read_raw("enriched");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (
            out[0].key.clone(),
            out[0].value.clone(),
            out[0].timestamp_ms
        ),
        (Some(b"a".to_vec()), Some(b"FLAKY-1@3".to_vec()), 1)
    );
    assert!(out[0].headers.is_empty(), "{:?}", out[0].headers);
    assert_eq!(d.paused_records(), 0);
    assert!(d.read_raw("dlq").is_empty());
    // Side outputs of the failed attempts were undone: one per record processed.
    let side: Vec<Vec<u8>> = d
        .read_raw("side")
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(
        side,
        ["ok-2", "ok-3", "ok-4", "flaky-1"].map(|v| v.as_bytes().to_vec())
    );
}

#[test]
fn a_record_failing_on_every_attempt_lands_in_the_dead_letter_topic_with_headers() {
    let mut d = driver(true);
    pipe(&mut d, "x", "ok-0", 10);
    d.pipe_raw(
        "orders",
        Some(b"p".to_vec()),
        Some(b"poison-1".to_vec()),
        11,
        vec![(s("traceparent"), Some(b"tp".to_vec()))],
    )
    .unwrap();
    d.advance_wall_clock(1_000).unwrap();
    assert_eq!(d.read_raw(RETRY_1).len(), 1);
    assert!(d.read_raw("dlq").is_empty());
    d.advance_wall_clock(10_000).unwrap();
    assert_eq!(d.read_raw(RETRY_2).len(), 1);
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    let r = &dlq[0];
    assert_eq!(
        (r.key.clone(), r.value.clone(), r.timestamp_ms),
        (Some(b"p".to_vec()), Some(b"poison-1".to_vec()), 11)
    );
    assert_eq!(
        headers(r),
        vec![
            (s("traceparent"), s("tp")),
            (s("strom.error.kind"), s("processing")),
            (s("strom.error"), s("cannot enrich")),
            (s("strom.original.topic"), s("orders")),
            (s("strom.original.partition"), s("0")),
            (s("strom.original.offset"), s("1")),
            (s("strom.original.timestamp"), s("11")),
            (s("strom.retry.attempts"), s("3")),
        ]
    );
    assert_eq!(enriched(&mut d), vec![(s("x"), s("OK-0@1"), 10)]);
    assert_eq!(d.paused_records(), 0);
}

#[test]
fn an_error_retry_on_rejects_goes_to_the_processing_handler_at_once() {
    let mut d = driver(true);
    pipe(&mut d, "i", "invalid-1", 5);
    assert!(d.read_raw(RETRY_1).is_empty());
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], "strom.error").unwrap(), "invalid order");
    assert_eq!(header(&dlq[0], "strom.original.topic").unwrap(), "orders");
    assert_eq!(header(&dlq[0], "strom.retry.attempts"), None);
}

#[test]
fn an_aborted_transaction_takes_back_the_retry_record_and_replays_it_once() {
    let mut d = driver(false);
    pipe(&mut d, "a", "flaky-1", 1);
    d.abort().unwrap();
    d.commit().unwrap();
    assert_eq!(d.read_raw(RETRY_1).len(), 1);
    d.advance_wall_clock(1_000).unwrap();
    d.commit().unwrap();
    d.advance_wall_clock(10_000).unwrap();
    d.commit().unwrap();
    assert_eq!(d.read_raw(RETRY_2).len(), 1);
    assert_eq!(enriched(&mut d), vec![(s("a"), s("FLAKY-1@3"), 1)]);
}

/// Counts records per key in a store, then fails on the first attempt.
struct CountThenFail {
    store: StoreHandle<String, i64>,
}

impl Processor<String, String, String, i64> for CountThenFail {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, i64>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let attempt = ctx.attempt();
        let mut store = ctx.store(&self.store)?;
        let n = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &n)?;
        if attempt == 1 {
            return Err(ProcessError::user("first attempt fails"));
        }
        ctx.forward(Record::new(r.key, n, r.timestamp_ms));
        Ok(())
    }
}

/// Counts every record per key in a store and passes it on.
struct Seen {
    store: StoreHandle<String, i64>,
}

impl Processor<String, String, String, String> for Seen {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.store(&self.store)?;
        let n = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &n)?;
        ctx.forward(r);
        Ok(())
    }
}

#[test]
fn a_failed_attempt_undoes_only_its_own_store_writes_and_comes_back_past_the_operators_before_it() {
    let seen = StoreHandle::new("seen", StringSerde, I64Serde);
    let counts = StoreHandle::new("counts", StringSerde, I64Serde);
    let b = StreamsBuilder::new();
    b.add_store(&seen);
    b.add_store(&counts);
    let (s1, c1) = (seen.clone(), counts.clone());
    b.stream("orders", StringSerde, StringSerde)
        .process(move || Seen { store: s1.clone() }, &["seen"])
        .process_with_retry_topics(
            move || CountThenFail { store: c1.clone() },
            &["counts"],
            RetryTopics::new("count").backoff_ms([500]),
            StringSerde,
            StringSerde,
        )
        .to("counted", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe(&mut d, "k", "v", 1);
    assert_eq!(d.store_get(&seen, &s("k")).unwrap(), Some(1));
    assert_eq!(d.store_get(&counts, &s("k")).unwrap(), None);
    d.advance_wall_clock(500).unwrap();
    assert_eq!(
        d.store_get(&seen, &s("k")).unwrap(),
        Some(1),
        "the retry enters at the processor"
    );
    assert_eq!(d.store_get(&counts, &s("k")).unwrap(), Some(1));
    let out = d.read_output("counted", &StringSerde, &I64Serde).unwrap();
    assert_eq!(
        out.into_iter()
            .map(|r| (r.key, r.value))
            .collect::<Vec<_>>(),
        vec![(s("k"), 1)]
    );
}

#[test]
fn retry_topic_specs_out_of_bounds_fail_the_build() {
    let b = StreamsBuilder::new();
    b.stream("orders", StringSerde, StringSerde)
        .process_with_retry_topics(
            || Enrich,
            &[],
            RetryTopics::new("enrich").backoff_ms([]),
            StringSerde,
            StringSerde,
        )
        .to("enriched", StringSerde, StringSerde);
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("0 tiers"), "{err}");
}
