//! Interactive queries: read the materialised stores of a running application over HTTP.
//!
//! A key lives in the task of partition `murmur2(key bytes) % partitions` (the Java
//! partitioner every producer of the application uses). The stream thread that owns
//! the task answers from its store's committed state (never uncommitted writes), between
//! two polls. Which instance owns which partition comes from the consumer group: each
//! instance puts its query address into its consumers' `client.id`
//! (`strom-streams@HOST:PORT`), and DescribeGroups (ConsumerGroupDescribe under the new
//! group protocol, KIP-848) returns every member's client id and assignment. A query for
//! a key held elsewhere is answered with a redirect there.
//!
//! Routes (`KafkaStreams::serve_http`):
//! - `GET /v1/stores` — the queryable stores;
//! - `GET /v1/stores/{store}/keys/{key}` — one key's value (404 when absent);
//! - `GET /v1/stores/{store}/keys/{key}/windows?from=MS&to=MS` — a window store's windows
//!   of the key whose start lies in `[from, to]` (open windows: closed ones are emitted
//!   and dropped);
//! - `GET /v1/stores/{store}/range?from=KEY&to=KEY` — key-value entries of the partitions
//!   this instance holds, in key order (bounds optional, inclusive);
//! - `GET /v1/stores/{store}/metadata/{key}` — the key's partition and owning instance;
//! - `GET /v1/instances` — members of the group with their query address and partitions;
//! - `GET /metrics` — Prometheus text.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::http::{Response, Route};
use super::Shared;
use crate::record::TaskId;
use crate::serdes::Serde;
use crate::store::KvPairs;
use crate::window::state::Family;

/// Prefix of a consumer's `client.id` that carries the instance's query address.
pub(crate) const CLIENT_ID_PREFIX: &str = "strom-streams@";

/// A read of a task's committed store, answered by the thread that owns the task.
pub(crate) struct QueryRequest {
    pub task: TaskId,
    pub store: String,
    pub from: Bound<Vec<u8>>,
    pub to: Bound<Vec<u8>>,
    pub reply: mpsc::Sender<QueryReply>,
}

/// A thread's answer.
pub(crate) enum QueryReply {
    /// The thread does not hold the task (or it is still restoring).
    NotHere,
    Rows(KvPairs),
    Failed(String),
}

type ParseKey = Arc<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;
type Render = Arc<dyn Fn(&[u8]) -> Result<Value, String> + Send + Sync>;

/// A store made readable over HTTP: how to parse a key from the URL and how to show keys
/// and values as JSON.
#[derive(Clone)]
pub struct Queryable {
    name: String,
    windowed: bool,
    parse_key: ParseKey,
    render_key: Render,
    render_value: Render,
}

impl Queryable {
    /// A key-value store (a table or a non-windowed aggregation) with its serdes.
    pub fn key_value<K, V>(name: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self
    where
        K: FromStr + Serialize + 'static,
        V: Serialize + 'static,
    {
        Self::new(name, false, key_serde, value_serde)
    }

    /// A window store (a windowed aggregation) with its key and aggregate serdes.
    pub fn windowed<K, A>(
        name: &str,
        key_serde: impl Serde<K>,
        aggregate_serde: impl Serde<A>,
    ) -> Self
    where
        K: FromStr + Serialize + 'static,
        A: Serialize + 'static,
    {
        Self::new(name, true, key_serde, aggregate_serde)
    }

    fn new<K, V>(
        name: &str,
        windowed: bool,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Self
    where
        K: FromStr + Serialize + 'static,
        V: Serialize + 'static,
    {
        let key_serde = Arc::new(key_serde);
        let ks = key_serde.clone();
        Queryable {
            name: name.to_string(),
            windowed,
            parse_key: Arc::new(move |s| {
                let k = K::from_str(s).map_err(|_| format!("cannot parse key {s:?}"))?;
                ks.serialize(&k).map_err(|e| e.to_string())
            }),
            render_key: Arc::new(move |b| {
                let k = key_serde.deserialize(b).map_err(|e| e.to_string())?;
                serde_json::to_value(k).map_err(|e| e.to_string())
            }),
            render_value: Arc::new(move |b| {
                let v = value_serde.deserialize(b).map_err(|e| e.to_string())?;
                serde_json::to_value(v).map_err(|e| e.to_string())
            }),
        }
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= (*b as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java partitioner picks for a key.
pub(crate) fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Decodes a consumer-protocol assignment (any version): its topic partitions.
pub(crate) fn decode_assignment(b: &[u8]) -> Option<Vec<(String, i32)>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    let i16_of = |s: &[u8]| i16::from_be_bytes([s[0], s[1]]);
    let i32_of = |s: &[u8]| i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let mut b = b;
    take(&mut b, 2)?; // version
    let topics = i32_of(take(&mut b, 4)?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16_of(take(&mut b, 2)?).max(0) as usize;
        let topic = String::from_utf8(take(&mut b, len)?.to_vec()).ok()?;
        let n = i32_of(take(&mut b, 4)?);
        for _ in 0..n.max(0) {
            out.push((topic.clone(), i32_of(take(&mut b, 4)?)));
        }
    }
    Some(out)
}

/// Where a store's tasks live: its sub-topology, partition count and the source topic
/// whose partitions name the tasks.
struct Placement {
    subtopology: u32,
    partitions: i32,
    topic: String,
}

fn placement(shared: &Shared, store: &str) -> Option<Placement> {
    let inner = &shared.topology.inner;
    let sub = inner
        .subtopologies
        .iter()
        .find(|s| s.stores.iter().any(|n| n == store))?;
    let source = *sub.sources.first()?;
    Some(Placement {
        subtopology: sub.id,
        partitions: *shared.partitions.get(&sub.id)?,
        topic: inner.sources[source]
            .topic
            .resolve(&shared.config.application_id),
    })
}

/// Asks every stream thread for a range of a task's committed store.
fn ask(
    shared: &Shared,
    request: impl Fn(mpsc::Sender<QueryReply>) -> QueryRequest,
) -> Result<Option<KvPairs>, String> {
    let (tx, rx) = mpsc::channel();
    let mut asked = 0;
    for thread in shared.query_tx.iter() {
        let sent = thread
            .lock()
            .map_err(|_| "query channel poisoned".to_string())?
            .send(request(tx.clone()))
            .is_ok();
        asked += usize::from(sent);
    }
    drop(tx);
    for _ in 0..asked {
        match rx.recv_timeout(shared.config.request_timeout) {
            Ok(QueryReply::Rows(rows)) => return Ok(Some(rows)),
            Ok(QueryReply::Failed(e)) => return Err(e),
            Ok(QueryReply::NotHere) => {}
            Err(_) => return Err("a stream thread did not answer in time".into()),
        }
    }
    Ok(None)
}

/// One member of the group as interactive queries see it.
#[derive(Debug, Clone, Serialize)]
struct Instance {
    host: Option<String>,
    partitions: Vec<(String, i32)>,
}

fn instances(shared: &Shared) -> Result<Vec<Instance>, String> {
    use rdkafka::consumer::Consumer;
    // One client for every lookup of this instance, created on the first.
    let mut client = shared
        .group_client
        .lock()
        .map_err(|_| "group client poisoned".to_string())?;
    if client.is_none() {
        *client = Some(
            super::admin::client_config(&shared.config)
                .create()
                .map_err(|e| e.to_string())?,
        );
    }
    let Some(consumer) = client.as_ref() else {
        return Err("no group client".into());
    };
    let app = &shared.config.application_id;
    if shared.membership.protocol == super::GroupProtocol::Consumer {
        // A new-protocol group is not a classic one: DescribeGroups does not list it.
        return Ok(
            describe_consumer_group(consumer.client(), app, Duration::from_secs(5))?
                .into_iter()
                .map(|(client_id, partitions)| Instance {
                    host: client_id.strip_prefix(CLIENT_ID_PREFIX).map(str::to_string),
                    partitions,
                })
                .collect(),
        );
    }
    let groups = consumer
        .fetch_group_list(Some(app), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let Some(group) = groups.groups().iter().find(|g| g.name() == app) else {
        return Ok(Vec::new());
    };
    Ok(group
        .members()
        .iter()
        .map(|m| Instance {
            host: m
                .client_id()
                .strip_prefix(CLIENT_ID_PREFIX)
                .map(str::to_string),
            partitions: m
                .assignment()
                .and_then(decode_assignment)
                .unwrap_or_default(),
        })
        .collect())
}

/// A member's client id and assigned partitions.
type GroupMember = (String, Vec<(String, i32)>);

/// Client id and assigned partitions of each member of `group`, through librdkafka's
/// DescribeConsumerGroups (which rdkafka does not wrap): it asks ConsumerGroupDescribe
/// first and falls back to DescribeGroups for a classic group. An unknown group has no
/// members.
fn describe_consumer_group<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<GroupMember>, String> {
    use rdkafka::bindings as rd;
    use std::ffi::{c_char, CStr, CString};

    /// A C string librdkafka owns, copied (`None` for NULL).
    ///
    /// # Safety
    /// `p` is NULL or a NUL-terminated string valid for the call.
    unsafe fn text(p: *const c_char) -> Option<String> {
        // SAFETY: the caller's promise.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    let group_c = CString::new(group).map_err(|e| e.to_string())?;
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128 / 2) as i32;
    let rk = client.native_ptr();
    // SAFETY: `rk` is a live client for the whole call; the queue, options and event are
    // created and destroyed here, and every pointer read from the event is used before
    // the event is destroyed (librdkafka owns them until then).
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut groups = [group_c.as_ptr()];
        rd::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options, queue);
        // The request copied the options.
        rd::rd_kafka_AdminOptions_destroy(options);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1000));
        let result = if event.is_null() {
            Err("describing the group timed out".to_string())
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(text(rd::rd_kafka_event_error_string(event)).unwrap_or_default())
        } else {
            let described = rd::rd_kafka_event_DescribeConsumerGroups_result(event);
            let mut count = 0usize;
            let groups = if described.is_null() {
                std::ptr::null_mut()
            } else {
                rd::rd_kafka_DescribeConsumerGroups_result_groups(described, &mut count)
            };
            let mut members = Vec::new();
            let mut error = None;
            for g in (0..count).map(|i| *groups.add(i)) {
                let e = rd::rd_kafka_ConsumerGroupDescription_error(g);
                if !e.is_null() {
                    if rd::rd_kafka_error_code(e)
                        != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND
                    {
                        error = text(rd::rd_kafka_error_string(e));
                    }
                    continue;
                }
                for j in 0..rd::rd_kafka_ConsumerGroupDescription_member_count(g) {
                    let m = rd::rd_kafka_ConsumerGroupDescription_member(g, j);
                    let client_id = text(rd::rd_kafka_MemberDescription_client_id(m));
                    let assignment = rd::rd_kafka_MemberDescription_assignment(m);
                    let list = if assignment.is_null() {
                        std::ptr::null()
                    } else {
                        rd::rd_kafka_MemberAssignment_partitions(assignment)
                    };
                    let mut partitions = Vec::new();
                    if !list.is_null() {
                        for k in 0..(*list).cnt.max(0) as usize {
                            let tp = &*(*list).elems.add(k);
                            if let Some(topic) = text(tp.topic) {
                                partitions.push((topic, tp.partition));
                            }
                        }
                    }
                    members.push((client_id.unwrap_or_default(), partitions));
                }
            }
            match error {
                Some(e) => Err(e),
                None => Ok(members),
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        result
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// The HTTP routes of an instance: metrics and interactive queries.
pub(crate) fn route(shared: Arc<Shared>, stores: Vec<Queryable>) -> Route {
    let stores: BTreeMap<String, Queryable> =
        stores.into_iter().map(|q| (q.name.clone(), q)).collect();
    Arc::new(move |target: &str| {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let params = query_params(query);
        match seg.as_slice() {
            ["metrics"] => Response {
                content_type: "text/plain; version=0.0.4",
                ..Response::ok("", shared.metrics.render(&shared.config.application_id))
            },
            ["v1", "stores"] => Response::ok(
                "application/json",
                json!(stores.keys().collect::<Vec<_>>()).to_string(),
            ),
            ["v1", "instances"] => match instances(&shared) {
                Ok(list) => Response::ok("application/json", json!(list).to_string()),
                Err(e) => Response::error("503 Service Unavailable", &e),
            },
            ["v1", "stores", store, rest @ ..] => match stores.get(*store) {
                None => Response::error("404 Not Found", &format!("no queryable store {store}")),
                Some(q) => store_route(&shared, q, rest, &params, target),
            },
            _ => Response::error("404 Not Found", "no such route"),
        }
    })
}

fn store_route(
    shared: &Shared,
    q: &Queryable,
    rest: &[&str],
    params: &BTreeMap<String, String>,
    target: &str,
) -> Response {
    let Some(place) = placement(shared, &q.name) else {
        return Response::error(
            "404 Not Found",
            &format!("store {} is not in the topology", q.name),
        );
    };
    let keyed = |key: &str| -> Result<(Vec<u8>, TaskId), Response> {
        let kb = (q.parse_key)(key).map_err(|e| Response::error("400 Bad Request", &e))?;
        let task = TaskId {
            subtopology: place.subtopology,
            partition: partition_for(&kb, place.partitions),
        };
        Ok((kb, task))
    };
    let result = match rest {
        ["keys", key] if !q.windowed => keyed(key).and_then(|(kb, task)| {
            let rows = read_or_redirect(shared, task, &q.name, Bound::Included(kb.clone()), Bound::Included(kb), &place, target)?;
            match rows.first() {
                Some((_, v)) => render(&q.render_value, v).map(|value| json!({ "key": key, "value": value })),
                None => Err(Response::error("404 Not Found", &format!("no value for key {key}"))),
            }
        }),
        ["keys", key, "windows"] if q.windowed => keyed(key).and_then(|(kb, task)| {
            let num = |name: &str, default: i64| -> Result<i64, Response> {
                params.get(name).map_or(Ok(default), |v| {
                    v.parse().map_err(|_| Response::error("400 Bad Request", &format!("{name} must be milliseconds")))
                })
            };
            let (from, to) = (num("from", i64::MIN)?, num("to", i64::MAX)?);
            let (lo, hi) = Family::new(&q.name, 0).data_range(&kb);
            let rows = read_or_redirect(shared, task, &q.name, Bound::Included(lo), Bound::Included(hi), &place, target)?;
            let mut windows = Vec::new();
            for (k, v) in rows {
                let Some((_, end, start)) = Family::split_data_key(&k) else { continue };
                if (from..=to).contains(&start) {
                    windows.push(json!({ "start": start, "end": end, "value": render(&q.render_value, &v)? }));
                }
            }
            Ok(json!({ "key": key, "windows": windows }))
        }),
        ["range"] if !q.windowed => {
            let bound = |name: &str| -> Result<Bound<Vec<u8>>, Response> {
                match params.get(name) {
                    None => Ok(Bound::Unbounded),
                    Some(k) => (q.parse_key)(k).map(Bound::Included).map_err(|e| Response::error("400 Bad Request", &e)),
                }
            };
            (|| {
                let (from, to) = (bound("from")?, bound("to")?);
                let mut all: KvPairs = Vec::new();
                for partition in 0..place.partitions {
                    let task = TaskId { subtopology: place.subtopology, partition };
                    let asked = ask(shared, |reply| QueryRequest {
                        task,
                        store: q.name.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reply,
                    });
                    match asked {
                        Ok(Some(rows)) => all.extend(rows),
                        Ok(None) => {}
                        Err(e) => return Err(Response::error("503 Service Unavailable", &e)),
                    }
                }
                all.sort();
                let entries = all
                    .iter()
                    .map(|(k, v)| Ok(json!({ "key": render(&q.render_key, k)?, "value": render(&q.render_value, v)? })))
                    .collect::<Result<Vec<Value>, Response>>()?;
                Ok(json!(entries))
            })()
        }
        ["metadata", key] => keyed(key).map(|(_, task)| {
            let host = owner(shared, &place, task.partition).ok().flatten();
            json!({ "partition": task.partition, "host": host })
        }),
        _ => Err(Response::error("404 Not Found", "no such route for this store")),
    };
    match result {
        Ok(body) => Response::ok("application/json", body.to_string()),
        Err(r) => r,
    }
}

fn render(f: &Render, bytes: &[u8]) -> Result<Value, Response> {
    f(bytes).map_err(|e| Response::error("500 Internal Server Error", &e))
}

/// The query address of the member that holds `partition` of the store's source topic.
fn owner(shared: &Shared, place: &Placement, partition: i32) -> Result<Option<String>, String> {
    Ok(instances(shared)?
        .into_iter()
        .find(|i| {
            i.partitions
                .iter()
                .any(|(t, p)| *t == place.topic && *p == partition)
        })
        .and_then(|i| i.host))
}

/// Reads a task locally, or answers with a redirect to the instance that holds it.
fn read_or_redirect(
    shared: &Shared,
    task: TaskId,
    store: &str,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    place: &Placement,
    target: &str,
) -> Result<KvPairs, Response> {
    let asked = ask(shared, |reply| QueryRequest {
        task,
        store: store.to_string(),
        from: from.clone(),
        to: to.clone(),
        reply,
    });
    match asked {
        Ok(Some(rows)) => Ok(rows),
        Err(e) => Err(Response::error("503 Service Unavailable", &e)),
        Ok(None) => match owner(shared, place, task.partition) {
            Ok(Some(host))
                if Some(host.as_str()) != shared.config.application_server.as_deref() =>
            {
                Err(Response {
                    status: "307 Temporary Redirect",
                    location: Some(format!("http://{host}{target}")),
                    ..Response::error(
                        "307 Temporary Redirect",
                        &format!("partition {} is held by {host}", task.partition),
                    )
                })
            }
            Ok(_) => Err(Response::error(
                "503 Service Unavailable",
                &format!(
                    "no instance serves partition {} yet (rebalancing or restoring)",
                    task.partition
                ),
            )),
            Err(e) => Err(Response::error("503 Service Unavailable", &e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), want, "{s}");
        }
    }

    #[test]
    fn assignments_decode_and_garbage_is_refused() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 2, b'i', b'n', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5,
        ];
        b.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]); // null user data
        assert_eq!(
            decode_assignment(&b),
            Some(vec![("in".into(), 3), ("in".into(), 5)])
        );
        assert_eq!(decode_assignment(&b[..9]), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2F"), "a b c/");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
