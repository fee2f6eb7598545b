//! The ride-hailing operations (`strom_pipeline::rides`, and the location operations
//! they build on) compiled from YAML and run through the strom-streams test driver:
//! anomalies to the dead-letter topic, ETAs within a radius and a time window across
//! cell edges, matching in the driver's own region and never twice, availability over
//! the last minutes, and surge per region from hopping windows.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use strom_pipeline::builtins::{geohash, haversine_km};
use strom_pipeline::compile::compile;
use strom_pipeline::parse;
use strom_streams::prelude::*;

mod support;
use support::{dead_letters, driver, out, send};

fn at(lat: f64, lon: f64) -> Value {
    json!({"latitude": lat, "longitude": lon})
}

fn location(id: &str, lat: f64, lon: f64, available: bool) -> Value {
    json!({"driver_id": id, "latitude": lat, "longitude": lon, "available": available})
}

/// One entry of `etas` as `calculate_eta_to_requests` writes it.
fn eta(id: &str, from: (f64, f64), to: (f64, f64), speed_kmh: f64) -> Value {
    let km = haversine_km(from, to);
    json!({"request_id": id, "latitude": to.0, "longitude": to.1, "distance_km": km,
           "eta_s": (km / speed_kmh * 3600.0).round() as i64})
}

#[test]
fn anomalous_positions_go_to_the_dead_letter_topic_and_never_become_the_reference() {
    let mut d = driver("pipeline:\n  name: a\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [{detect_anomalies: {dead_letter: true}}]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    let paris = (48.8566, 2.3522);
    let north = (48.8656, 2.3522); // 1 km on
    let london = (51.5074, -0.1278);
    send(&mut d, "in", "d1", at(paris.0, paris.1), 0);
    send(&mut d, "in", "d1", at(north.0, north.1), 60_000);
    send(&mut d, "in", "d1", at(london.0, london.1), 120_000);
    send(&mut d, "in", "d1", at(48.8746, 2.3522), 180_000); // 1 km from the last good one
    let passed: Vec<Value> = out(&mut d, "out").into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        passed,
        vec![
            at(paris.0, paris.1),
            at(north.0, north.1),
            at(48.8746, 2.3522)
        ],
        "passed on unmarked"
    );
    let speed = haversine_km(north, london) * 60.0;
    assert_eq!(
        dead_letters(&mut d),
        vec![(
            at(london.0, london.1),
            format!("anomaly: implied speed {speed:.0} km/h above 250 km/h")
        )]
    );

    let p = parse("p.yaml", "pipeline:\n  name: a\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [{detect_anomalies: {dead_letter: maybe}}]\n  output_sinks:\n    - {type: kafka, topic: out}\n", &|_| None).unwrap();
    let e = compile("p.yaml", &p).err().unwrap().to_string();
    assert!(e.contains("dead_letter \"maybe\": true or false"), "{e}");
}

const ETAS: &str = r#"
pipeline:
  name: e
  input_topics: [driver-locations]
  processors:
    - name: eta
      operations:
        - calculate_eta_to_requests: {top: 10, traffic_multiplier: 1.5}
  output_sinks:
    - {type: kafka, topic: out}
"#;

#[test]
fn etas_list_the_requests_within_the_radius_made_in_the_minute_before_across_cell_edges() {
    let mut d = driver(ETAS);
    // 9q8y's northern edge is at 37.79296875°: the driver is 0.9 km south of it.
    let here = (37.785, -122.45);
    assert_eq!(geohash(here.0, here.1, 4), "9q8y");
    let request = |lat: f64, lon: f64, t: Option<i64>| match t {
        Some(t) => json!({"latitude": lat, "longitude": lon, "timestamp": t}),
        None => json!({"latitude": lat, "longitude": lon}),
    };
    let across = (37.803, -122.45); // 2 km north, in 9q8z
    assert_eq!(geohash(across.0, across.1, 4), "9q8z");
    let near = (37.794, -122.45);
    let edge = (37.790, -122.45);
    let untimed = (37.785, -122.43);
    let t = 120_000;
    send(
        &mut d,
        "ride-requests",
        "r-across",
        request(across.0, across.1, Some(100_000)),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-near",
        request(near.0, near.1, Some(119_000)),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-edge",
        request(edge.0, edge.1, Some(t - 60_000)),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-old",
        request(37.786, -122.45, Some(t - 60_001)),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-future",
        request(37.786, -122.45, Some(t + 1)),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-far",
        request(37.84, -122.45, Some(t)),
        0,
    ); // 6.1 km
    send(
        &mut d,
        "ride-requests",
        "r-untimed",
        request(untimed.0, untimed.1, None),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r-bad",
        request(-200.0, -122.45, Some(t)),
        0,
    );
    send(
        &mut d,
        "driver-locations",
        "d1",
        location("d1", here.0, here.1, true),
        t,
    );
    // The record's own multiplier wins over the parameter.
    let mut jammed = location("d1", here.0, here.1, true);
    jammed["traffic_multiplier"] = json!(3);
    send(&mut d, "driver-locations", "d1", jammed, t);

    let want = |speed: f64| {
        let mut etas = vec![
            eta("r-edge", here, edge, speed),
            eta("r-near", here, near, speed),
            eta("r-untimed", here, untimed, speed),
            eta("r-across", here, across, speed),
        ];
        etas.sort_by(|a, b| {
            a["distance_km"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["distance_km"].as_f64().unwrap())
        });
        Value::Array(etas)
    };
    let got = out(&mut d, "out");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1["etas"], want(30.0 / 1.5));
    assert_eq!(got[1].1["etas"], want(30.0 / 3.0));
    assert_eq!(
        got[0].1["etas"][0]["request_id"],
        json!("r-edge"),
        "nearest first"
    );
}

#[test]
fn the_request_index_follows_the_table_at_most_once_per_second_of_event_time() {
    let mut d = driver(ETAS);
    let here = (37.785, -122.45);
    let later = (37.786, -122.45);
    let listed = |d: &mut TopologyTestDriver| -> Vec<Vec<String>> {
        out(d, "out")
            .into_iter()
            .map(|(_, v)| {
                v["etas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["request_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    send(
        &mut d,
        "driver-locations",
        "d1",
        location("d1", here.0, here.1, true),
        120_000,
    );
    send(
        &mut d,
        "ride-requests",
        "r-late",
        json!({"latitude": later.0, "longitude": later.1, "timestamp": 120_500}),
        120_500,
    );
    send(
        &mut d,
        "driver-locations",
        "d1",
        location("d1", here.0, here.1, true),
        120_999,
    );
    send(
        &mut d,
        "driver-locations",
        "d1",
        location("d1", here.0, here.1, true),
        121_000,
    );
    assert_eq!(
        listed(&mut d),
        vec![vec![], vec![], vec!["r-late".to_string()]],
        "the index built at 120 s is kept until 121 s"
    );
}

const MATCHING: &str = r#"
pipeline:
  name: m
  input_topics: [driver-locations]
  processors:
    - name: match
      operations:
        - group_by_region: {precision: 5}
        - calculate_eta_to_requests: {top: 5}
        - trigger_matching_algorithm: {max_eta: 3 minutes, horizon: 10 minutes}
  output_sinks:
    - {type: kafka, topic: out}
    - {type: kafka, topic: matches, for: matches}
"#;

#[test]
fn a_driver_is_matched_to_the_nearest_reachable_request_of_its_region_never_taken_twice() {
    let mut d = driver(MATCHING);
    // The driver is 0.2 km west of its precision-5 cell's eastern edge (-122.43164°).
    let here = (37.77, -122.434);
    let region = geohash(here.0, here.1, 5);
    let requests = [
        ("rx", (37.77, -122.430)),  // 0.35 km, across the edge: another region
        ("ra", (37.774, -122.434)), // 0.44 km
        ("rb", (37.779, -122.434)), // 1.0 km
        ("rc", (37.79, -122.434)),  // 2.2 km: 4.4 minutes at 30 km/h
    ];
    assert_ne!(geohash(37.77, -122.430, 5), region);
    for (id, (lat, lon)) in requests {
        // No timestamp: open for every location (the time window is tested above).
        send(&mut d, "ride-requests", id, at(lat, lon), 0);
    }
    let drive = |d: &mut TopologyTestDriver, id: &str, available: bool, t: i64| {
        send(
            d,
            "driver-locations",
            id,
            location(id, here.0, here.1, available),
            t,
        );
    };
    drive(&mut d, "d1", true, 1_000);
    drive(&mut d, "d2", true, 2_000);
    drive(&mut d, "d3", true, 3_000); // ra and rb taken; rc too far; rx not its region
    drive(&mut d, "d4", false, 4_000); // not available
    drive(&mut d, "d5", true, 600_999); // ra's match (at 1 s) is remembered for 10 minutes
    drive(&mut d, "d6", true, 601_000); // ...and forgotten after
    let all = out(&mut d, "out");
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|(k, _)| *k == region));
    let listed: Vec<&str> = all[0].1["etas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["rx", "ra", "rb", "rc"]);
    let matched: Vec<(&str, Option<&str>)> = all
        .iter()
        .map(|(_, v)| {
            (
                v["driver_id"].as_str().unwrap(),
                v.get("match").map(|m| m["request_id"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        matched,
        [
            ("d1", Some("ra")),
            ("d2", Some("rb")),
            ("d3", None),
            ("d4", None),
            ("d5", None),
            ("d6", Some("ra")),
        ]
    );
    assert_eq!(
        all[0].1["match"], all[0].1["etas"][1],
        "the ETA entry itself"
    );
    let matches: Vec<String> = out(&mut d, "matches")
        .into_iter()
        .map(|(_, v)| v["driver_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(matches, ["d1", "d2", "d6"], "only matches take the route");
}

#[test]
fn available_drivers_are_those_whose_latest_report_in_the_region_within_the_ttl_said_so() {
    let mut d = driver("pipeline:\n  name: v\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [group_by_region, {update_driver_availability: {ttl: 1 minute}}]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    let sf = (37.7749, -122.4194);
    let paris = (48.8566, 2.3522);
    let report =
        |d: &mut TopologyTestDriver, id: &str, p: (f64, f64), available: Option<bool>, t| {
            let mut v = json!({"driver_id": id, "latitude": p.0, "longitude": p.1});
            if let Some(a) = available {
                v["available"] = json!(a);
            }
            send(d, "in", id, v, t);
        };
    report(&mut d, "a", sf, None, 0); // available by default
    report(&mut d, "b", sf, Some(true), 10_000);
    report(&mut d, "c", sf, Some(false), 20_000);
    report(&mut d, "b", sf, Some(false), 30_000);
    report(&mut d, "a", paris, Some(true), 40_000); // moved on: still counted in SF until its report there is a minute old
    report(&mut d, "c", sf, Some(true), 59_999);
    report(&mut d, "c", sf, Some(true), 60_000); // a's SF report (at 0) has expired
    report(&mut d, "b", sf, Some(true), 90_001); // b's report at 30 s expires; c's at 60 s has not
    let got: Vec<(String, bool, i64)> = out(&mut d, "out")
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v["available"].as_bool().unwrap(),
                v["available_drivers"].as_i64().unwrap(),
            )
        })
        .collect();
    let (s, p) = (geohash(sf.0, sf.1, 4), geohash(paris.0, paris.1, 4));
    assert_eq!(
        got,
        [
            (s.clone(), true, 1),
            (s.clone(), true, 2),
            (s.clone(), false, 2),
            (s.clone(), false, 1),
            (p, true, 1),
            (s.clone(), true, 2),
            (s.clone(), true, 1),
            (s, true, 2),
        ]
    );
}

#[test]
fn surge_is_priced_per_region_and_hopping_window_from_its_request_count() {
    let mut d = driver(
        r#"
pipeline:
  name: s
  input_topics: [ride-requests]
  processors:
    - name: demand
      type: hopping-window
      window_size: 2 minutes
      advance: 1 minute
      operations:
        - validate_coordinates
        - group_by_region: {precision: 5}
        - count_by_region
    - name: surge
      operations:
        - calculate_surge_multiplier: {baseline: 2, step: 0.5, max: 2}
  output_sinks:
    - {type: kafka, topic: surge-pricing}
"#,
    );
    let (a, b) = ((37.77, -122.434), (37.70, -122.50));
    let (ra, rb) = (geohash(a.0, a.1, 5), geohash(b.0, b.1, 5));
    assert_ne!(ra, rb);
    let t0 = 600_000;
    // In event-time order: a request behind a closed window would be late for it.
    let requests = [
        ("a0", a, 10),
        ("a1", a, 20),
        ("a2", a, 30),
        ("b0", b, 50),
        ("bad", (-200.0, b.1), 55),
        ("a3", a, 70),
        ("a4", a, 80),
    ];
    for (id, (lat, lon), s) in requests {
        send(&mut d, "ride-requests", id, at(lat, lon), t0 + s * 1000);
    }
    // Ten minutes later: every earlier window closes.
    send(&mut d, "ride-requests", "flush", at(a.0, a.1), t0 + 600_000);
    let mut got: Vec<Value> = out(&mut d, "surge-pricing")
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v["region"].as_str(), Some(k.as_str()));
            v
        })
        .collect();
    got.sort_by_key(|v| (v["region"].to_string(), v["window_start"].as_i64()));
    let window = |region: &str, start: i64, n: u64, surge: f64| {
        json!({"region": region, "window_start": t0 + start, "window_end": t0 + start + 120_000,
               "count_by_region": n, "surge_multiplier": surge})
    };
    // baseline 2, step 0.5, max 2: 1 request is 0.5× demand (1.0), 3 are 1.5, 5 are capped at 2.
    let mut want = vec![
        window(&ra, -60_000, 3, 1.5),
        window(&ra, 0, 5, 2.0),
        window(&ra, 60_000, 2, 1.0),
        window(&rb, -60_000, 1, 1.0),
        window(&rb, 0, 1, 1.0),
    ];
    want.sort_by_key(|v| (v["region"].to_string(), v["window_start"].as_i64()));
    assert_eq!(got, want);
    assert_eq!(
        dead_letters(&mut d),
        vec![(
            at(-200.0, b.1),
            "coordinates out of range: latitude=-200, longitude=-122.5".to_string()
        )]
    );
}

#[test]
fn the_driver_location_example_runs_in_the_test_driver() {
    // examples/driver-location/pipeline.yaml as shipped: one ride request feeds both
    // the ETA table and the surge windows.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/driver-location/pipeline.yaml"
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let p = parse(path, &yaml, &|_| None).unwrap();
    let topology = compile(path, &p).unwrap_or_else(|e| panic!("{e}"));
    let mut d = TopologyTestDriver::with_config(
        &topology,
        DriverConfig {
            processing_errors: ErrorHandler::DeadLetter {
                topic: "dlq".into(),
            },
            ..DriverConfig::default()
        },
    )
    .unwrap();
    let t = 1_790_000_000_000;
    let here = (37.77, -122.434);
    let req = json!({"request_id": "r1", "rider_id": "u1", "latitude": 37.774, "longitude": -122.434, "timestamp": t});
    send(&mut d, "ride-requests", "r1", req, t);
    let loc = json!({"driver_id": "d1", "latitude": here.0, "longitude": here.1, "available": true, "speed_kmh": 30.0, "timestamp": t + 5_000});
    send(&mut d, "driver-locations", "d1", loc, t + 5_000);
    let matches = out(&mut d, "ride-matches");
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0].1["match"]["request_id"], json!("r1"));
    assert_eq!(out(&mut d, "eta-updates").len(), 1);
    assert_eq!(out(&mut d, "driver-availability-updates").len(), 1);
    // A request an hour later closes the windows holding r1: ten of them, one minute apart.
    let late = json!({"request_id": "r2", "latitude": 37.774, "longitude": -122.434, "timestamp": t + 3_600_000});
    send(&mut d, "ride-requests", "r2", late, t + 3_600_000);
    let surge = out(&mut d, "surge-pricing");
    assert_eq!(surge.len(), 10, "{surge:?}");
    assert!(surge
        .iter()
        .all(|(_, v)| v["count_by_region"] == json!(1) && v["surge_multiplier"] == json!(1.0)));
}
