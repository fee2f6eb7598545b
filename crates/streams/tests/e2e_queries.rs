//! Interactive queries against `strom serve`: two instances of one application, each
//! serving its stores over HTTP; a query for a key the other instance holds is redirected
//! there, key-value reads, window fetches and local range scans return the committed
//! state.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::BaseRecord;
use strom_streams::prelude::*;
use strom_streams::runtime::query::Queryable;
use strom_streams::runtime::{GroupProtocol, KafkaStreams, StreamsConfig};
use support::*;

const KEYS: usize = 20;
const HOUR: i64 = 3_600_000;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let grouped = b
        .stream("clicks", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde);
    grouped.count("click-counts");
    grouped
        .windowed_by(TimeWindows::of_size(HOUR))
        .emit(Emit::OnUpdate)
        .retain_for_queries(24 * HOUR)
        .count("click-windows");
    b.build().unwrap()
}

fn start(bs: &str, dir: &std::path::Path, port: u16, protocol: GroupProtocol) -> KafkaStreams {
    let mut c = StreamsConfig::new("query-app", bs);
    c.group_protocol = protocol;
    c.state_dir = dir.to_path_buf();
    c.application_server = Some(format!("127.0.0.1:{port}"));
    c.client_config
        .insert("session.timeout.ms".into(), "6000".into());
    c.client_config
        .insert("heartbeat.interval.ms".into(), "500".into());
    let app = KafkaStreams::start(&topology(), c).unwrap();
    let stores = vec![
        Queryable::key_value("click-counts", StringSerde, I64Serde),
        Queryable::windowed("click-windows", StringSerde, I64Serde),
    ];
    app.serve_http(format!("127.0.0.1:{port}").parse().unwrap(), stores)
        .unwrap();
    app
}

/// (status code, Location header, body).
fn get(port: u16, path: &str) -> (u16, Option<String>, serde_json::Value) {
    let text = http_get(("127.0.0.1", port), path);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .map(str::to_string);
    (
        status,
        location,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Follows one redirect to the instance that holds the key.
fn get_following(port: u16, path: &str, redirects: &mut usize) -> (u16, serde_json::Value) {
    let (status, location, body) = get(port, path);
    if status != 307 {
        return (status, body);
    }
    *redirects += 1;
    let location = location.unwrap();
    let rest = location.strip_prefix("http://127.0.0.1:").unwrap();
    let (p, path) = rest.split_at(rest.find('/').unwrap());
    let (status, _, body) = get(p.parse().unwrap(), path);
    (status, body)
}

#[test]
fn queries_reach_the_instance_that_holds_each_key() {
    queries_reach_the_instance_that_holds_each_key_with(GroupProtocol::Classic);
}

/// The same under the new group protocol (KIP-848): instances find each other through
/// ConsumerGroupDescribe.
#[test]
fn queries_reach_the_instance_that_holds_each_key_under_the_new_group_protocol() {
    queries_reach_the_instance_that_holds_each_key_with(GroupProtocol::Consumer);
}

fn queries_reach_the_instance_that_holds_each_key_with(protocol: GroupProtocol) {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "clicks", 6, &[]).unwrap();
    let ports = [free_port(), free_port()];
    let apps: Vec<KafkaStreams> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| start(&bs, &dir.path().join(format!("i{i}")), p, protocol))
        .collect();
    // Key u{k} gets k + 1 clicks.
    let mut records = Vec::new();
    for k in 0..KEYS {
        for _ in 0..=k {
            records.push((format!("u{k}"), "click".to_string()));
        }
    }
    let p = producer(&bs);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // "old" clicked three hours ago, then now: its old window closes but stays readable.
    for ts in [now - 3 * HOUR, now] {
        let rec = BaseRecord::to("clicks")
            .key("old")
            .payload("click")
            .timestamp(ts);
        p.send(rec).map_err(|(e, _)| e).unwrap();
    }
    produce(&p, "clicks", &records);

    // Both members in the group, every partition assigned, each with its address and a
    // share (the new protocol has no initial rebalance delay: the second member gets its
    // share a few heartbeats after the first took everything).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = get(ports[0], "/v1/instances");
        let members = body.as_array().cloned().unwrap_or_default();
        let hosts = members.iter().filter(|m| m["host"].is_string()).count();
        let partitions: usize = members
            .iter()
            .map(|m| m["partitions"].as_array().map_or(0, Vec::len))
            .sum();
        let each_holds_some = members
            .iter()
            .all(|m| m["partitions"].as_array().is_some_and(|p| !p.is_empty()));
        if status == 200 && hosts == 2 && partitions == 6 && each_holds_some {
            break;
        }
        assert!(Instant::now() < deadline, "group did not settle: {body}");
        std::thread::sleep(Duration::from_millis(300));
    }

    let mut redirects = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    while counts.len() < KEYS || counts.iter().any(|(k, v)| *v != want(k)) {
        assert!(Instant::now() < deadline, "counts not served: {counts:?}");
        for k in 0..KEYS {
            let key = format!("u{k}");
            let (status, body) = get_following(
                ports[0],
                &format!("/v1/stores/click-counts/keys/{key}"),
                &mut redirects,
            );
            if status == 200 {
                assert_eq!(body["key"], key);
                counts.insert(key, body["value"].as_i64().unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(redirects > 0, "some keys live on the second instance");

    // Window fetch: the hour window holding every click of the key.
    let (status, body) = get_following(
        ports[1],
        "/v1/stores/click-windows/keys/u4/windows",
        &mut redirects,
    );
    assert_eq!(status, 200, "{body}");
    let windows = body["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{body}");
    assert_eq!(windows[0]["value"], 5);
    let start_ms = windows[0]["start"].as_i64().unwrap();
    assert!(start_ms <= now && now < start_ms + HOUR + 60_000);
    let (status, body) = get_following(
        ports[0],
        "/v1/stores/click-windows/keys/old/windows",
        &mut redirects,
    );
    assert_eq!(status, 200, "{body}");
    let counts_old: Vec<i64> = body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_i64().unwrap())
        .collect();
    assert_eq!(
        counts_old,
        vec![1, 1],
        "the closed window is kept for queries: {body}"
    );
    let (status, body) = get_following(
        ports[0],
        &format!(
            "/v1/stores/click-windows/keys/old/windows?from={}",
            now - HOUR - 1
        ),
        &mut redirects,
    );
    assert_eq!(status, 200);
    assert_eq!(
        body["windows"].as_array().unwrap().len(),
        1,
        "from= bounds the window starts"
    );

    // Range scans are local: the two instances together hold every key once.
    let mut ranged = BTreeMap::new();
    for port in ports {
        let (status, _, body) = get(port, "/v1/stores/click-counts/range");
        assert_eq!(status, 200);
        for e in body.as_array().unwrap() {
            let key = e["key"].as_str().unwrap().to_string();
            assert!(ranged.insert(key, e["value"].as_i64().unwrap()).is_none());
        }
    }
    counts.insert("old".to_string(), 2);
    assert_eq!(ranged, counts);

    // Metadata names the key's partition and its instance; bad requests get clear errors.
    let (status, _, meta) = get(ports[0], "/v1/stores/click-counts/metadata/u3");
    assert_eq!(status, 200);
    assert!(meta["partition"].as_i64().unwrap() < 6 && meta["host"].is_string());
    assert_eq!(get(ports[0], "/v1/stores/nope/keys/u1").0, 404);
    assert_eq!(
        get(ports[0], "/v1/stores/click-counts/keys/u1/windows").0,
        404
    );
    let (status, missing) = get_following(ports[0], "/v1/stores/click-counts/keys/absent", &mut 0);
    assert_eq!(status, 404, "{missing}");
    for app in apps {
        app.close().unwrap();
    }
}

fn want(key: &str) -> i64 {
    key[1..].parse::<i64>().unwrap() + 1
}
