//! The OTLP exporter (feature `otel`): a small OTLP/HTTP receiver in the test collects
//! the exported spans (protobuf, decoded here by hand); processing spans must be children
//! of the input records' `traceparent`, and outputs must carry a `traceparent` naming
//! the span that produced them — through the test driver, and once through `strom serve`.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> Vec<u8> {
    format!("00-{TRACE}-{PARENT}-01").into_bytes()
}

fn s(x: &str) -> String {
    x.to_string()
}

// ---- an OTLP/HTTP receiver ------------------------------------------------------------

/// Accepts OTLP/HTTP requests on 127.0.0.1 and keeps the bodies posted to `/v1/traces`.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let b = b.clone();
                std::thread::spawn(move || serve(conn, &b));
            }
        });
        Receiver { addr, bodies }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Span> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| decode_request(b))
            .collect()
    }
}

/// One keep-alive connection: requests until the client closes it.
fn serve(conn: TcpStream, bodies: &Mutex<Vec<Vec<u8>>>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).unwrap();
        if request_line.starts_with("POST /v1/traces ") {
            bodies.lock().unwrap().push(body);
        }
        out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
    }
}

// ---- protobuf, as much as OTLP's ExportTraceServiceRequest needs ----------------------

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let byte = b[0];
        *b = &b[1..];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

fn fields(mut b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b);
        let field = match tag & 7 {
            0 => Field::Varint(varint(&mut b)),
            1 => {
                b = &b[8..];
                Field::Fixed
            }
            2 => {
                let n = varint(&mut b) as usize;
                let (v, rest) = b.split_at(n);
                b = rest;
                Field::Bytes(v)
            }
            5 => {
                b = &b[4..];
                Field::Fixed
            }
            w => panic!("wire type {w}"),
        };
        out.push((tag >> 3, field));
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A KeyValue: key, and a string or integer value as text.
fn key_value(b: &[u8]) -> (String, String) {
    let (mut k, mut v) = (String::new(), String::new());
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x),
            (2, Field::Bytes(any)) => {
                for (n, f) in fields(any) {
                    match (n, f) {
                        (1, Field::Bytes(x)) => v = text(x),
                        (3, Field::Varint(i)) => v = (i as i64).to_string(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (k, v)
}

#[derive(Debug, Clone, Default)]
struct Span {
    service: String,
    resource: BTreeMap<String, String>,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: u64,
    attributes: BTreeMap<String, String>,
    status_code: u64,
}

impl Span {
    fn attr(&self, k: &str) -> &str {
        self.attributes.get(k).map(String::as_str).unwrap_or("")
    }
}

fn decode_span(b: &[u8], resource: &BTreeMap<String, String>) -> Span {
    let mut span = Span {
        service: resource.get("service.name").cloned().unwrap_or_default(),
        resource: resource.clone(),
        ..Span::default()
    };
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(x)) => span.trace_id = hex(x),
            (2, Field::Bytes(x)) => span.span_id = hex(x),
            (4, Field::Bytes(x)) => span.parent_span_id = hex(x),
            (5, Field::Bytes(x)) => span.name = text(x),
            (6, Field::Varint(k)) => span.kind = k,
            (9, Field::Bytes(x)) => {
                let (k, v) = key_value(x);
                span.attributes.insert(k, v);
            }
            (15, Field::Bytes(x)) => {
                for (n, f) in fields(x) {
                    if let (3, Field::Varint(c)) = (n, f) {
                        span.status_code = c;
                    }
                }
            }
            _ => {}
        }
    }
    span
}

/// ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource, scope_spans:
/// [ScopeSpans { scope, spans }] }] }
fn decode_request(b: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    for (_, rs) in fields(b) {
        let Field::Bytes(rs) = rs else { continue };
        let mut resource = BTreeMap::new();
        let mut scope_spans = Vec::new();
        for (n, f) in fields(rs) {
            match (n, f) {
                (1, Field::Bytes(r)) => {
                    for (n, f) in fields(r) {
                        if let (1, Field::Bytes(kv)) = (n, f) {
                            let (k, v) = key_value(kv);
                            resource.insert(k, v);
                        }
                    }
                }
                (2, Field::Bytes(ss)) => scope_spans.push(ss),
                _ => {}
            }
        }
        for ss in scope_spans {
            for (n, f) in fields(ss) {
                if let (2, Field::Bytes(span)) = (n, f) {
                    out.push(decode_span(span, &resource));
                }
            }
        }
    }
    out
}

// ---- the tests --------------------------------------------------------------------------

const SPAN_KIND_CONSUMER: u64 = 5;
const STATUS_CODE_ERROR: u64 = 2;

/// (trace id, span id) of a `traceparent` header.
fn parse_traceparent(headers: &Headers) -> (String, String) {
    let values: Vec<&Option<Vec<u8>>> = headers
        .iter()
        .filter(|(k, _)| k == "traceparent")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "one traceparent: {headers:?}");
    let tp = String::from_utf8(values[0].clone().unwrap()).unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{tp}");
    (parts[1].to_string(), parts[2].to_string())
}

fn find<'a>(spans: &'a [Span], name: &str, offset: i64, trace: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            s.name == name
                && s.attr("messaging.kafka.offset") == offset.to_string()
                && s.trace_id == trace
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} @{offset} in {trace}: {spans:#?}");
    found[0]
}

#[test]
fn driver_spans_are_children_of_the_input_traceparent_and_outputs_name_them() {
    let receiver = Receiver::start();
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .repartition("hop", StringSerde, StringSerde)
        .map_values(|v| v.to_uppercase())
        .to("out", StringSerde, StringSerde);
    b.stream("clicks", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .count("click-counts")
        .to("click-totals", StringSerde, I64Serde);
    b.stream("nums", StringSerde, I64Serde)
        .to("nums-out", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::with_config(
        &b.build().unwrap(),
        DriverConfig {
            otlp_endpoint: Some(receiver.endpoint()),
            deserialization_errors: ErrorHandler::DeadLetter { topic: s("dlq") },
            ..DriverConfig::default()
        },
    )
    .unwrap();
    let tp = vec![(s("traceparent"), Some(traceparent()))];
    d.pipe_raw(
        "in",
        Some(b"k".to_vec()),
        Some(b"a".to_vec()),
        1,
        tp.clone(),
    )
    .unwrap();
    d.pipe_raw(
        "in",
        Some(b"k".to_vec()),
        Some(b"b".to_vec()),
        2,
        Vec::new(),
    )
    .unwrap();
    for ts in [3, 4] {
        d.pipe_raw(
            "clicks",
            Some(b"u".to_vec()),
            Some(b"c".to_vec()),
            ts,
            Vec::new(),
        )
        .unwrap();
    }
    // Not an i64: dead-lettered under a span of its own.
    d.pipe_raw(
        "nums",
        Some(b"n".to_vec()),
        Some(b"xyz".to_vec()),
        5,
        tp.clone(),
    )
    .unwrap();
    let out = d.read_raw("out");
    let dlq = d.read_raw("dlq");
    let report = d.restart(true).unwrap();
    assert_eq!(report.records_restored.get("click-counts"), Some(&2));
    drop(d); // exports what is queued
    let spans = receiver.spans();

    // Record 1: a child of the producer's span, then of the repartitioning task's span.
    assert_eq!(out.len(), 2);
    let first = find(&spans, "process in", 0, TRACE);
    assert_eq!(first.parent_span_id, PARENT);
    assert_eq!(first.kind, SPAN_KIND_CONSUMER);
    assert_eq!(first.service, "test-app");
    for (k, v) in [
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "in"),
        ("messaging.destination.partition.id", "0"),
        ("messaging.consumer.group.name", "test-app"),
        ("strom.task", "0_0"),
        ("strom.outcome", "processed"),
    ] {
        assert_eq!(first.attr(k), v, "{k}: {first:#?}");
    }
    let hop = find(&spans, "process test-app-hop-repartition", 0, TRACE);
    assert_eq!(hop.parent_span_id, first.span_id);
    assert_eq!(hop.attr("strom.task"), "1_0");
    assert_eq!(
        parse_traceparent(&out[0].headers),
        (s(TRACE), hop.span_id.clone())
    );

    // Record 2 had no traceparent: it starts a trace, continued the same way.
    let (trace2, span2) = parse_traceparent(&out[1].headers);
    assert_ne!(trace2, TRACE);
    let root = find(&spans, "process in", 1, &trace2);
    assert_eq!(root.parent_span_id, "");
    let hop2 = find(&spans, "process test-app-hop-repartition", 1, &trace2);
    assert_eq!(
        (hop2.parent_span_id.clone(), hop2.span_id.clone()),
        (root.span_id.clone(), span2)
    );

    // The dead letter names the span that skipped it; that span is an error.
    assert_eq!(dlq.len(), 1);
    let nums = find(&spans, "process nums", 0, TRACE);
    assert_eq!(nums.parent_span_id, PARENT);
    assert_eq!(nums.attr("strom.outcome"), "skipped");
    assert_eq!(nums.status_code, STATUS_CODE_ERROR);
    assert_eq!(
        parse_traceparent(&dlq[0].headers),
        (s(TRACE), nums.span_id.clone())
    );

    // Commits and the restore after the restart have spans too.
    assert!(spans
        .iter()
        .any(|s| s.name == "commit" && s.attr("strom.records") == "1"));
    let restores: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "restore" && s.attr("strom.restored.records") == "2")
        .collect();
    assert_eq!(restores.len(), 1, "{spans:#?}");
    assert_eq!(restores[0].parent_span_id, "");
}

#[test]
fn runtime_exports_spans_to_the_collector_through_strom_serve() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, Producer};
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let broker = support::spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    support::create_topic(&bs, "in", 2, &[]).unwrap();
    support::create_topic(&bs, "counts", 2, &[]).unwrap();
    let p = support::producer(&bs);
    let tp = traceparent();
    p.send(
        BaseRecord::to("in")
            .key("k")
            .payload("v")
            .headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(&tp),
            })),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .count("n")
        .to("counts", StringSerde, I64Serde);
    let mut cfg = StreamsConfig::new("otel-app", &bs);
    cfg.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    cfg.state_dir = dir.path().join("state");
    cfg.transaction_timeout = Duration::from_secs(10);
    cfg.request_timeout = Duration::from_secs(15);
    cfg.otlp_endpoint = Some(receiver.endpoint());
    let app = KafkaStreams::start(&b.build().unwrap(), cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        out = support::read_committed_records(&bs, "counts");
    }
    app.close().unwrap(); // exports what is queued
    assert_eq!(out.len(), 1);
    let (trace, span) = parse_traceparent(&out[0].headers);
    assert_eq!(trace, TRACE);
    let spans = receiver.spans();
    let process = find(&spans, "process in", 0, TRACE);
    assert_eq!(process.span_id, span);
    assert_eq!(process.parent_span_id, PARENT);
    assert_eq!(process.service, "otel-app");
    assert!(process.resource.contains_key("service.instance.id"));
    assert!(spans.iter().any(|s| s.name == "commit"), "{spans:#?}");
    assert!(
        spans
            .iter()
            .any(|s| s.name == "restore" && s.attr("strom.restored.records") == "0"),
        "{spans:#?}"
    );
}
