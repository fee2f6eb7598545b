//! A pipeline as a strom-streams topology (feature `runtime`).
//!
//! Records are JSON objects keyed by text. Inputs merge into one stream; each step
//! applies its operations in order; a step with aggregate operations (`count_by_<f>`,
//! `sum_<f>`, `avg_<f>`, `min_<f>`, `max_<f>`, `count`) groups by its `group_by_<f>` and
//! `count_by_<f>` fields and emits the output contract — one JSON object with the group
//! fields, `window_start` and `window_end` (windowed steps) and one field per aggregate
//! named as the operation. `route` tags records for the outputs whose `for` names the
//! route; outputs without `for` get every record.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use strom_streams::prelude::*;
use strom_streams::registry::{RegistryFormat, RegistryJsonSerde, SchemaRegistry};
use strom_streams::window::aggregations::Aggregation;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::expr::Expr;
use crate::op_metrics::OpMetrics;
use crate::operations;
use crate::plugin::Plugins;
use crate::spec::{Emit as StepEmit, Operation, Pipeline, Step, StepKind};

/// The field `route` writes and outputs read (removed before a record is written).
pub const ROUTE_FIELD: &str = "_route";

type Stream = KStream<String, Json>;

/// Record keys as text: null keys are empty, bytes are read as UTF-8 (lossily).
#[derive(Debug, Clone, Copy, Default)]
pub struct TextKey;

impl Serde<String> for TextKey {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, SerdeError> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerdeError> {
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        Ok(bytes
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default())
    }
}

fn values() -> JsonSerde<Json> {
    JsonSerde::new()
}

/// A field of a JSON object by name (`a.b` for nested objects).
pub fn field<'v>(v: &'v Json, path: &str) -> Option<&'v Json> {
    path.split('.').try_fold(v, |v, part| v.get(part))
}

/// A JSON value as key text: strings as they are, others as JSON.
fn key_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch from a number (ms) or an RFC 3339 string.
pub fn event_time(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Json::String(s) => rfc3339_ms(s),
        _ => None,
    }
}

/// `2026-12-07T08:03:51.250Z` or with an offset (`+01:00`) → ms since the epoch.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let ms3: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = ms3.parse::<i64>().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + millis)
}

/// A fallible record operator: `f` returns the record to pass on, none, or an error (the
/// record then goes to the dead-letter topic); its time and errors count toward the
/// operation's metrics.
struct TryMap<F>(Arc<F>, Arc<OpMetrics>);

impl<F> Processor<String, Json, String, Json> for TryMap<F>
where
    F: Fn(String, Json) -> Result<Option<(String, Json)>, String> + Send + Sync + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let started = std::time::Instant::now();
        let result = (self.0)(r.key, r.value);
        self.1.latency.observe(started.elapsed());
        let out = result.map_err(|e| {
            self.1.errors.fetch_add(1, Ordering::Relaxed);
            ProcessError::user(e)
        })?;
        if let Some((key, value)) = out {
            ctx.forward(Record {
                key,
                value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
        }
        Ok(())
    }
}

fn try_map(
    s: &Stream,
    m: &Arc<OpMetrics>,
    f: impl Fn(String, Json) -> Result<Option<(String, Json)>, String> + Send + Sync + 'static,
) -> Stream {
    let (f, m) = (Arc::new(f), m.clone());
    s.process(move || TryMap(f.clone(), m.clone()), &[])
}

/// Counts the records passed on, for each of the operations whose output they are (one
/// record-at-a-time operation, or every aggregate of a step: they share its results).
#[derive(Clone)]
struct CountOut(Vec<Arc<OpMetrics>>);

impl Processor<String, Json, String, Json> for CountOut {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        for m in &self.0 {
            m.records_out.fetch_add(1, Ordering::Relaxed);
        }
        ctx.forward(r);
        Ok(())
    }
}

/// What an aggregate measures in each record.
#[derive(Debug, Clone)]
enum Measure {
    /// A numeric field.
    Field(String),
    /// `part / whole`, clamped to [0, 1] (a completion rate).
    Ratio { part: String, whole: String },
}

/// One aggregate of a step.
#[derive(Debug, Clone)]
enum Agg {
    Count,
    Sum(Measure),
    Avg(Measure),
    Min(Measure),
    Max(Measure),
    /// How many records had each value of a field: `{"drama": 3, "comedy": 1}`.
    CountEach(String),
}

fn param_or(op: &Operation, name: &str, default: &str) -> String {
    op.params
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_text())
        .unwrap_or(default)
        .to_string()
}

fn aggregate_of(op: &Operation) -> Option<Agg> {
    let name = op.name.as_str();
    if name == "count" || name.starts_with("count_by_") {
        return Some(Agg::Count);
    }
    if let Some(f) = name.strip_prefix("count_each_") {
        return Some(Agg::CountEach(f.to_string()));
    }
    if name == "calculate_completion_rate" {
        // The mean share of the content watched (`watched / duration` per view).
        return Some(Agg::Avg(Measure::Ratio {
            part: param_or(op, "watched", "watch_duration"),
            whole: param_or(op, "duration", "content_duration"),
        }));
    }
    let (prefix, f) = name.split_once('_')?;
    let m = Measure::Field(f.to_string());
    Some(match prefix {
        "sum" => Agg::Sum(m),
        "avg" => Agg::Avg(m),
        "min" => Agg::Min(m),
        "max" => Agg::Max(m),
        _ => return None,
    })
}

fn number(v: &Json, m: &Measure) -> Option<f64> {
    let num = |f: &str| field(v, f).and_then(Json::as_f64);
    match m {
        Measure::Field(f) => num(f),
        Measure::Ratio { part, whole } => match (num(part), num(whole)) {
            (Some(p), Some(w)) if w > 0.0 => Some((p / w).clamp(0.0, 1.0)),
            _ => None,
        },
    }
}

/// The step's aggregation: the accumulator is a JSON object with the group fields and
/// one partial result per operation.
fn aggregation(ops: Vec<(String, Agg)>, group: Vec<String>) -> Aggregation<Json, Json, Json> {
    let ops = Arc::new(ops);
    let (add_ops, merge_ops, finish_ops) = (ops.clone(), ops.clone(), ops);
    let num = |a: &Json| a.as_f64().unwrap_or(0.0);
    Aggregation::new(
        || json!({}),
        move |mut acc: Json, v: Json| {
            let Some(obj) = acc.as_object_mut() else {
                return acc;
            };
            for f in &group {
                if let Some(g) = field(&v, f) {
                    obj.entry(f.clone()).or_insert_with(|| g.clone());
                }
            }
            for (name, op) in add_ops.iter() {
                let slot = obj.entry(name.clone()).or_insert(Json::Null);
                *slot = match op {
                    Agg::Count => json!(slot.as_i64().unwrap_or(0) + 1),
                    Agg::CountEach(f) => {
                        let mut counts = match slot.take() {
                            Json::Object(m) => m,
                            _ => serde_json::Map::new(),
                        };
                        if let Some(value) = field(&v, f).filter(|x| !x.is_null()) {
                            let n = counts.entry(key_text(value)).or_insert(json!(0));
                            *n = json!(n.as_i64().unwrap_or(0) + 1);
                        }
                        Json::Object(counts)
                    }
                    Agg::Sum(f) => json!(num(slot) + number(&v, f).unwrap_or(0.0)),
                    Agg::Avg(f) => match number(&v, f) {
                        Some(x) => json!([
                            slot[0].as_f64().unwrap_or(0.0) + x,
                            slot[1].as_i64().unwrap_or(0) + 1
                        ]),
                        None => slot.clone(),
                    },
                    Agg::Min(f) | Agg::Max(f) => match (number(&v, f), slot.as_f64()) {
                        (Some(x), Some(cur)) if matches!(op, Agg::Min(_)) => json!(x.min(cur)),
                        (Some(x), Some(cur)) => json!(x.max(cur)),
                        (Some(x), None) => json!(x),
                        (None, _) => slot.clone(),
                    },
                };
            }
            acc
        },
        move |mut a: Json, b: Json| {
            for (name, op) in merge_ops.iter() {
                let (x, y) = (a[name.as_str()].clone(), b[name.as_str()].clone());
                a[name.as_str()] = match op {
                    Agg::Count => json!(x.as_i64().unwrap_or(0) + y.as_i64().unwrap_or(0)),
                    Agg::CountEach(_) => {
                        let mut sum = x.as_object().cloned().unwrap_or_default();
                        for (k, n) in y.as_object().into_iter().flatten() {
                            let slot = sum.entry(k.clone()).or_insert(json!(0));
                            *slot = json!(slot.as_i64().unwrap_or(0) + n.as_i64().unwrap_or(0));
                        }
                        Json::Object(sum)
                    }
                    Agg::Sum(_) => json!(num(&x) + num(&y)),
                    Agg::Avg(_) => json!([
                        num(&x[0]) + num(&y[0]),
                        x[1].as_i64().unwrap_or(0) + y[1].as_i64().unwrap_or(0)
                    ]),
                    Agg::Min(_) | Agg::Max(_) => match (x.as_f64(), y.as_f64()) {
                        (Some(p), Some(q)) if matches!(op, Agg::Min(_)) => json!(p.min(q)),
                        (Some(p), Some(q)) => json!(p.max(q)),
                        _ => {
                            if x.is_null() {
                                y
                            } else {
                                x
                            }
                        }
                    },
                };
            }
            if let (Some(ao), Some(bo)) = (a.as_object_mut(), b.as_object()) {
                for (k, v) in bo {
                    ao.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            a
        },
        move |acc: &Json| {
            let mut out = acc.clone();
            for (name, op) in finish_ops.iter() {
                if let Agg::Avg(_) = op {
                    let p = &acc[name.as_str()];
                    let n = p[1].as_i64().unwrap_or(0);
                    out[name.as_str()] = if n == 0 {
                        Json::Null
                    } else {
                        json!(num(&p[0]) / n as f64)
                    };
                }
            }
            out
        },
        values(),
    )
}

struct Compiler<'a> {
    file: &'a str,
    pipeline: &'a Pipeline,
    plugins: &'a Plugins,
    ops: Vec<Arc<OpMetrics>>,
    builder: StreamsBuilder,
    errors: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn not_runnable(&mut self, op: &Operation, why: &str) {
        self.errors.push(Diagnostic {
            file: self.file.to_string(),
            line: op.at.line,
            column: op.at.column,
            message: format!("operation {:?} cannot run yet: {why}", op.name),
        });
    }

    /// One stream per input (none where its serde cannot be built: an error says why).
    fn sources(&mut self) -> Vec<Option<Stream>> {
        let p = self.pipeline;
        let registry = match p.format.as_str() {
            "avro" | "protobuf" => {
                let url = p
                    .schema_registry
                    .as_deref()
                    .unwrap_or("http://127.0.0.1:8081");
                match SchemaRegistry::connect_url(url) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.errors.push(Diagnostic {
                            file: self.file.to_string(),
                            line: 0,
                            column: 0,
                            message: format!("schema registry {url}: {e}"),
                        });
                        None
                    }
                }
            }
            _ => None,
        };
        let configured = p.event_time.clone();
        let mut streams = Vec::new();
        for input in &p.inputs {
            let configured = configured.clone();
            let extract = move |_: &String, v: &Json, ts| match &configured {
                Some(f) => field(v, f).and_then(event_time),
                None => match field(v, "timestamp") {
                    Some(t) => event_time(t),
                    None => Some(ts),
                },
            };
            let s = match (&registry, p.format.as_str()) {
                (Some(r), format) => {
                    let format = if format == "avro" {
                        RegistryFormat::Avro
                    } else {
                        RegistryFormat::Protobuf
                    };
                    match RegistryJsonSerde::new(r, format) {
                        Ok(serde) => self.builder.stream_with_timestamps(
                            &input.topic,
                            TextKey,
                            serde,
                            extract,
                        ),
                        Err(e) => {
                            self.errors.push(Diagnostic {
                                file: self.file.to_string(),
                                line: input.at.line,
                                column: input.at.column,
                                message: e.to_string(),
                            });
                            streams.push(None);
                            continue;
                        }
                    }
                }
                _ => self
                    .builder
                    .stream_with_timestamps(&input.topic, TextKey, values(), extract),
            };
            streams.push(Some(s));
        }
        streams
    }

    /// The merge of what a step or output reads (none: nothing it reads could be built).
    fn upstream(
        inputs: &[Option<Stream>],
        steps: &[Stream],
        from: &[crate::spec::Upstream],
    ) -> Option<Stream> {
        let mut merged: Option<Stream> = None;
        for (i, u) in from.iter().enumerate() {
            if from[..i].contains(u) {
                continue;
            }
            let s = match *u {
                crate::spec::Upstream::Input(i) => inputs[i].as_ref(),
                crate::spec::Upstream::Step(n) => steps.get(n),
            };
            if let Some(s) = s {
                merged = Some(match merged {
                    None => s.clone(),
                    Some(m) => m.merge(s),
                });
            }
        }
        merged
    }

    fn step(&mut self, s: Stream, step: &Step) -> Stream {
        let mut stream = s;
        let mut aggs: Vec<(String, Agg)> = Vec::new();
        let mut agg_metrics: Vec<Arc<OpMetrics>> = Vec::new();
        let mut group: Vec<String> = Vec::new();
        for op in &step.operations {
            let name = op.name.as_str();
            let m = OpMetrics::new(&step.name, &op.name);
            self.ops.push(m.clone());
            // `group_by_region` is a built-in (a region computed from coordinates).
            let generic_group = !crate::builtins::NAMES.contains(&name);
            if let Some(f) = name
                .strip_prefix("group_by_")
                .filter(|_| generic_group && operations::is_known(name))
            {
                group.push(f.to_string());
                if !aggregating(step) {
                    let f = f.to_string();
                    let keyed = try_map(&stream, &m, move |k, v| {
                        let key = field(&v, &f).map(key_text).unwrap_or(k);
                        Ok(Some((key, v)))
                    });
                    // Stateful operations after it see every record of a key.
                    stream =
                        keyed.repartition(&format!("{}-{}", step.name, name), TextKey, values());
                } else {
                    agg_metrics.push(m); // it passes on the aggregation's results
                }
                continue;
            }
            if let Some(agg) = aggregate_of(op) {
                if let Some(f) = name.strip_prefix("count_by_") {
                    group.push(f.to_string());
                }
                aggs.push((op.name.clone(), agg));
                agg_metrics.push(m);
                continue;
            }
            match name {
                "filter" | "route" => {
                    let Some(expr) = operations::expression(&op.params).and_then(|t| Expr::compile(t).ok()) else {
                        continue; // reported by validation
                    };
                    let expr = Arc::new(expr);
                    stream = if name == "filter" {
                        try_map(&stream, &m, move |k, v| Ok(expr.test(&k, &v)?.then_some((k, v))))
                    } else {
                        try_map(&stream, &m, move |k, mut v| {
                            let route = expr.name(&k, &v)?;
                            if let Some(obj) = v.as_object_mut() {
                                obj.insert(ROUTE_FIELD.into(), Json::String(route));
                            }
                            Ok(Some((k, v)))
                        })
                    };
                }
                _ if name.starts_with("dedupe_by_") => {
                    let f = name["dedupe_by_".len()..].to_string();
                    let horizon = op
                        .params
                        .iter()
                        .find(|(k, _)| k == "horizon")
                        .and_then(|(_, v)| v.as_text())
                        .map(crate::duration::parse_ms);
                    let horizon = match horizon {
                        None => 3_600_000,
                        Some(Ok(ms)) => ms,
                        Some(Err(e)) => {
                            self.not_runnable(op, &e);
                            continue;
                        }
                    };
                    let g = f.clone();
                    let keyed = try_map(&stream, &m, move |k, v| {
                        let id = field(&v, &g).map(key_text).unwrap_or(k);
                        Ok(Some((id, v)))
                    });
                    let store = format!("{}-{}", step.name, op.name);
                    stream = keyed
                        .repartition(&store, TextKey, values())
                        .dedupe_by(&store, horizon, |k: &String, _| k.clone(), StringSerde, TextKey, values());
                }
                // The message-delivery operations per recipient (`crate::delivery`).
                _ if crate::delivery::runs(op) => {
                    match crate::delivery::add(&self.builder, &stream, op, &m) {
                        Ok(s) => stream = s,
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "check_recipient_online_status" | "enrich_with_user_profile" | "join" => {
                    let lookup = match crate::builtins::lookup(op) {
                        Some(Ok(l)) => Arc::new(l),
                        Some(Err(e)) => {
                            self.not_runnable(op, &e);
                            continue;
                        }
                        None => continue,
                    };
                    let table = self.builder.global_table(&lookup.topic, TextKey, values());
                    let by = lookup.clone();
                    stream = stream.left_join_global(
                        &table,
                        move |k: &String, v: &Json| match &by.key_field {
                            Some(f) => field(v, f).map(key_text).unwrap_or_else(|| k.clone()),
                            None => k.clone(),
                        },
                        move |v: &Json, row: Option<&Json>| {
                            let mut v = v.clone();
                            lookup.apply(&mut v, row);
                            v
                        },
                    );
                }
                "calculate_affinity_scores" | "track_delivery_status" | "handle_delivery_confirmations" => {
                    let by = crate::builtins::partition_field(op).unwrap_or_default();
                    let g = by.clone();
                    let keyed = try_map(&stream, &m, move |k, v| {
                        let key = field(&v, &g).map(key_text).unwrap_or(k);
                        Ok(Some((key, v)))
                    });
                    let part = format!("{}-{}", step.name, op.name);
                    let keyed = keyed.repartition(&part, TextKey, values());
                    if op.name == "calculate_affinity_scores" {
                        let store = "affinity".to_string();
                        let affinity = crate::builtins::AffinityScores {
                            store: StoreHandle::new(&store, StringSerde, values()),
                            category: param_or(op, "category", "genre"),
                            counts: op
                                .params
                                .iter()
                                .find(|(k, _)| k == "counts")
                                .and_then(|(_, v)| v.as_text())
                                .map(str::to_string),
                        };
                        let handle = affinity.store.clone();
                        stream = stateful(&self.builder, &keyed, &handle, affinity);
                    } else {
                        // One status store for tracking and confirmations.
                        let store = "delivery-status".to_string();
                        let tracker = crate::builtins::DeliveryStatus::new(op, &store);
                        let handle = tracker.store.clone();
                        stream = stateful(&self.builder, &keyed, &handle, tracker);
                    }
                }
                "update_driver_availability" => {
                    let store = format!("{}-availability", step.name);
                    match crate::builtins::SpatialIndex::availability(op, &store) {
                        Ok(index) => {
                            let handle = index.store.clone();
                            stream = stateful(&self.builder, &stream, &handle, index);
                        }
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "calculate_eta_to_requests" => {
                    let topic = param_or(op, "requests_topic", "ride-requests");
                    let table = self.builder.global_table(&topic, TextKey, values());
                    match crate::rides::RequestEtas::new(op, table) {
                        Ok(etas) => stream = stream.process(move || etas.clone(), &[]),
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "trigger_matching_algorithm" => {
                    let store = format!("{}-matches", step.name);
                    match crate::rides::Matching::new(op, &store) {
                        Ok(matching) => {
                            let handle = matching.store.clone();
                            stream = stateful(&self.builder, &stream, &handle, matching);
                        }
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "calculate_surge_multiplier" => match crate::rides::surge_multiplier(op) {
                    Ok(f) => stream = try_map(&stream, &m, f),
                    Err(e) => self.not_runnable(op, &e),
                },
                "update_spatial_index" => {
                    let store = format!("{}-spatial-index", step.name);
                    match crate::builtins::SpatialIndex::new(op, &store) {
                        Ok(index) => {
                            let handle = index.store.clone();
                            stream = stateful(&self.builder, &stream, &handle, index);
                        }
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "process_payment" => {
                    let store = format!("{}-payments", step.name);
                    match crate::payments::ProcessPayment::new(op, &store) {
                        Ok(p) => {
                            let s = p.settings.clone();
                            let keyed = try_map(&stream, &m, move |k, v| Ok(Some((s.account_key(k, &v), v))));
                            let part = format!("{}-{}", step.name, op.name);
                            let keyed = keyed.repartition(&part, TextKey, values());
                            let handle = p.store.clone();
                            stream = stateful(&self.builder, &keyed, &handle, p);
                        }
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                "detect_anomalies" => {
                    let store = format!("{}-anomalies", step.name);
                    match crate::builtins::DetectAnomalies::new(op, &store) {
                        Ok(detector) => {
                            let handle = detector.store.clone();
                            stream = stateful(&self.builder, &stream, &handle, detector);
                        }
                        Err(e) => self.not_runnable(op, &e),
                    }
                }
                _ if self.plugins.get(name).is_some() => {
                    match self.plugins.get(name).map(|p| p.build(&op.params)) {
                        Some(Ok(f)) => stream = try_map(&stream, &m, f),
                        Some(Err(e)) => self.not_runnable(op, &e),
                        None => {}
                    }
                }
                _ => match crate::builtins::build(op) {
                    Some(Ok(f)) => stream = try_map(&stream, &m, f),
                    Some(Err(e)) => self.not_runnable(op, &e),
                    None => self.not_runnable(op, "its built-in semantics are not implemented yet (the generic families, filter, route, group_by_, dedupe_by_ and the operations in `builtins` run)"),
                },
            }
            if name == "group_by_region" && !aggregating(step) {
                // Keyed by region now: the region's stores see all of its drivers.
                stream = stream.repartition(&format!("{}-{}", step.name, name), TextKey, values());
            }
            let count = CountOut(vec![m]);
            stream = stream.process(move || count.clone(), &[]);
        }
        if aggs.is_empty() {
            if step.window.is_some() {
                self.errors.push(Diagnostic {
                    file: self.file.to_string(),
                    line: step.at.line,
                    column: step.at.column,
                    message: format!("windowed step {:?} has no aggregate operation (count_by_<f>, sum_<f>, avg_<f>, min_<f>, max_<f>, count)", step.name),
                });
            }
            return stream;
        }
        group.dedup();
        let keys = group.clone();
        let grouped = stream.group_by(
            move |k: &String, v: &Json| match keys.as_slice() {
                [] => k.clone(),
                [one] => field(v, one).map(key_text).unwrap_or_default(),
                many => Json::Array(
                    many.iter()
                        .map(|f| field(v, f).cloned().unwrap_or(Json::Null))
                        .collect(),
                )
                .to_string(),
            },
            StringSerde,
            values(),
        );
        let store = step.name.clone();
        let agg = aggregation(aggs, group);
        let count = CountOut(agg_metrics);
        let results = match step.window {
            None => Self::aggregated(grouped, &store, agg),
            Some(w) => Self::windowed(grouped, &store, agg, step.kind, w),
        };
        results.process(move || count.clone(), &[])
    }

    /// A step's running aggregation, re-emitted on every update.
    fn aggregated(
        grouped: KGroupedStream<String, Json>,
        store: &str,
        agg: Aggregation<Json, Json, Json>,
    ) -> Stream {
        let (init, add, finish) = (agg.clone(), agg.clone(), agg);
        grouped
            .aggregate(
                store,
                move || init.init(),
                move |_, v, a| add.add(a, v),
                values(),
            )
            .to_stream()
            .flat_map_values(move |v: &Option<Json>| v.as_ref().map(|a| finish.finish(a)))
    }

    /// A step's windowed aggregation, with `window_start` and `window_end`.
    fn windowed(
        grouped: KGroupedStream<String, Json>,
        store: &str,
        agg: Aggregation<Json, Json, Json>,
        kind: StepKind,
        w: crate::spec::WindowSpec,
    ) -> Stream {
        let emit = match w.emit {
            StepEmit::OnWindowClose => Emit::OnWindowClose,
            StepEmit::OnUpdate => Emit::OnUpdate,
        };
        let table = match kind {
            StepKind::Session => grouped
                .windowed_by_session(
                    SessionWindows::with_inactivity_gap(w.gap_ms).grace(w.grace_ms),
                )
                .emit(emit)
                .aggregate_with(store, agg),
            StepKind::Sliding => grouped
                .windowed_by_sliding(
                    SlidingWindows::with_time_difference(w.size_ms).grace(w.grace_ms),
                )
                .emit(emit)
                .aggregate_with(store, agg),
            _ => grouped
                .windowed_by(
                    TimeWindows::of_size(w.size_ms)
                        .advance_by(w.advance_ms)
                        .grace(w.grace_ms),
                )
                .emit(emit)
                .aggregate_with(store, agg),
        };
        table
            .to_stream()
            .flat_map(|w: Windowed<String>, v: Option<Json>| {
                v.map(|mut obj| {
                    if let Some(o) = obj.as_object_mut() {
                        o.insert("window_start".into(), json!(w.window.start_ms));
                        o.insert("window_end".into(), json!(w.window.end_ms));
                    }
                    (w.key, obj)
                })
            })
    }

    /// Output `i`, writing what `s` carries (its `for` route only).
    fn sink(&mut self, i: usize, s: &Stream) {
        let p = self.pipeline;
        let sink = &p.sinks[i];
        let route = sink.route.clone();
        let routed = s.filter(move |_, v: &Json| match &route {
            None => true,
            Some(r) => v.get(ROUTE_FIELD).and_then(Json::as_str) == Some(r.as_str()),
        });
        let clean = routed.map_values(|v: &Json| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove(ROUTE_FIELD);
            }
            v
        });
        // External sinks read an internal topic (see `connectors`).
        let topic = match sink.setting("topic") {
            Some(t) if sink.kind == "kafka" => t.to_string(),
            _ => crate::connectors::topic(p, i),
        };
        clean.to(&topic, StringSerde, values());
    }
}

/// Adds a stateful operator and registers its store.
fn stateful<P>(
    builder: &StreamsBuilder,
    s: &Stream,
    store: &StoreHandle<String, Json>,
    p: P,
) -> Stream
where
    P: Processor<String, Json, String, Json> + Clone + Sync,
{
    builder.add_store(store);
    s.process(move || p.clone(), &[store.name()])
}

fn aggregating(step: &Step) -> bool {
    step.window.is_some() || step.operations.iter().any(|o| aggregate_of(o).is_some())
}

/// Builds the topology of a parsed pipeline, or says which parts cannot run yet.
pub fn compile(file: &str, pipeline: &Pipeline) -> Result<Topology, Diagnostics> {
    compile_with(file, pipeline, &Plugins::new())
}

/// [`compile`] with operations registered by Rust code.
pub fn compile_with(
    file: &str,
    pipeline: &Pipeline,
    plugins: &Plugins,
) -> Result<Topology, Diagnostics> {
    compile_observed(file, pipeline, plugins).map(|(t, _)| t)
}

/// [`compile_with`], returning also the metrics of each operation.
pub fn compile_observed(
    file: &str,
    pipeline: &Pipeline,
    plugins: &Plugins,
) -> Result<(Topology, Vec<Arc<OpMetrics>>), Diagnostics> {
    let mut c = Compiler {
        file,
        pipeline,
        plugins,
        ops: Vec::new(),
        builder: StreamsBuilder::new(),
        errors: Vec::new(),
    };
    let inputs = c.sources();
    if inputs.is_empty() {
        return Err(Diagnostics(vec![Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: "no inputs".into(),
        }]));
    }
    let mut steps: Vec<Stream> = Vec::new();
    for (n, step) in pipeline.steps.iter().enumerate() {
        let Some(s) = Compiler::upstream(&inputs, &steps, &pipeline.step_upstream(n)) else {
            break; // an input failed: its error is reported
        };
        let out = c.step(s, step);
        steps.push(out);
    }
    if steps.len() == pipeline.steps.len() {
        for i in 0..pipeline.sinks.len() {
            if let Some(s) = Compiler::upstream(&inputs, &steps, &pipeline.sink_upstream(i)) {
                c.sink(i, &s);
            }
        }
    }
    if !c.errors.is_empty() {
        return Err(Diagnostics(c.errors));
    }
    let ops = c.ops;
    let topology = c.builder.build().map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }])
    })?;
    Ok((topology, ops))
}
