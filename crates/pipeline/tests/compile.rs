//! Pipelines compiled to topologies and run through the strom-streams test driver: the
//! output contract of aggregations, filters, routes, event time, dedup, and honest
//! errors for what cannot run yet.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use strom_pipeline::compile::compile;
use strom_pipeline::parse;
use strom_streams::prelude::*;

mod support;
use support::{dlq_reasons, driver, out, send};

const VIEWS: &str = r#"
stream_pipeline:
  name: views
  input_topics: [user-views]
  processors:
    - name: per-content
      type: tumbling-window
      window_size: 10ms
      operations: [count_by_content_id, sum_watch_duration, avg_watch_duration, max_watch_duration]
  output_sinks:
    - type: kafka
      topic: view-counts
"#;

#[test]
fn a_windowed_aggregation_emits_the_output_contract_when_the_window_closes() {
    let mut d = driver(VIEWS);
    send(
        &mut d,
        "user-views",
        "u1",
        json!({"content_id": "c7", "watch_duration": 100}),
        1,
    );
    send(
        &mut d,
        "user-views",
        "u2",
        json!({"content_id": "c7", "watch_duration": 50}),
        4,
    );
    send(
        &mut d,
        "user-views",
        "u3",
        json!({"content_id": "c8", "watch_duration": 10}),
        5,
    );
    assert!(out(&mut d, "view-counts").is_empty());
    send(
        &mut d,
        "user-views",
        "u1",
        json!({"content_id": "c9", "watch_duration": 1}),
        10,
    );
    assert_eq!(
        out(&mut d, "view-counts"),
        vec![
            (
                "c7".into(),
                json!({"content_id": "c7", "window_start": 0, "window_end": 10,
                "count_by_content_id": 2, "sum_watch_duration": 150.0,
                "avg_watch_duration": 75.0, "max_watch_duration": 100.0})
            ),
            (
                "c8".into(),
                json!({"content_id": "c8", "window_start": 0, "window_end": 10,
                "count_by_content_id": 1, "sum_watch_duration": 10.0,
                "avg_watch_duration": 10.0, "max_watch_duration": 10.0})
            ),
        ]
    );
}

#[test]
fn a_non_windowed_aggregation_emits_every_update_without_window_fields() {
    let mut d = driver(
        "pipeline:\n  name: totals\n  input_topics: [in]\n  processors:\n    - name: t\n      operations: [group_by_user_id, sum_amount]\n  output_sinks:\n    - {type: kafka, topic: out}\n",
    );
    send(&mut d, "in", "", json!({"user_id": 7, "amount": 5}), 1);
    send(&mut d, "in", "", json!({"user_id": 7, "amount": 2}), 2);
    assert_eq!(
        out(&mut d, "out"),
        vec![
            ("7".into(), json!({"user_id": 7, "sum_amount": 5.0})),
            ("7".into(), json!({"user_id": 7, "sum_amount": 7.0})),
        ]
    );
}

#[test]
fn filters_and_routes_choose_the_outputs() {
    let mut d = driver(
        r#"
message_pipeline:
  name: msgs
  input_topics: [incoming]
  processing_stages:
    - name: routing
      operations:
        - filter: "size(text) > 0"
        - route: "online ? \"online_users\" : \"offline_users\""
  delivery_channels:
    - {type: kafka, topic: online, for: online_users}
    - {type: kafka, topic: offline, for: offline_users}
    - {type: kafka, topic: audit}
"#,
    );
    send(
        &mut d,
        "incoming",
        "chat1",
        json!({"text": "hi", "online": true}),
        1,
    );
    send(
        &mut d,
        "incoming",
        "chat2",
        json!({"text": "yo", "online": false}),
        2,
    );
    send(
        &mut d,
        "incoming",
        "chat3",
        json!({"text": "", "online": true}),
        3,
    );
    send(&mut d, "incoming", "chat4", json!({"online": true}), 4); // no text: expression error
    assert_eq!(
        out(&mut d, "online"),
        vec![("chat1".into(), json!({"text": "hi", "online": true}))]
    );
    assert_eq!(
        out(&mut d, "offline"),
        vec![("chat2".into(), json!({"text": "yo", "online": false}))]
    );
    assert_eq!(out(&mut d, "audit").len(), 2);
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].key.as_deref(), Some(&b"chat4"[..]));
}

#[test]
fn event_time_comes_from_the_value_and_records_without_it_are_dead_lettered() {
    let mut d = driver(
        "pipeline:\n  name: t\n  event_time: at\n  input_topics: [in]\n  processors:\n    - name: w\n      type: tumbling-window\n      window_size: 1 minute\n      operations: [count]\n  output_sinks:\n    - {type: kafka, topic: out}\n",
    );
    send(&mut d, "in", "k", json!({"at": "2026-12-07T08:00:30Z"}), 0);
    send(&mut d, "in", "k", json!({"at": 1_796_630_461_000_i64}), 0); // 08:01:01
    send(&mut d, "in", "k", json!({"no": "time"}), 0);
    let o = out(&mut d, "out");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].1["window_start"], json!(1_796_630_400_000_i64));
    assert_eq!(o[0].1["count"], json!(1));
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    let kind = dlq[0]
        .headers
        .iter()
        .find(|(k, _)| k == "strom.error.kind")
        .unwrap();
    assert_eq!(kind.1.as_deref(), Some(&b"timestamp"[..]));
}

#[test]
fn dedupe_by_a_field_within_its_horizon() {
    let mut d = driver(
        "pipeline:\n  name: d\n  input_topics: [in]\n  processors:\n    - name: s\n      operations:\n        - dedupe_by_payment_id: {horizon: 1 minute}\n  output_sinks:\n    - {type: kafka, topic: out}\n",
    );
    send(&mut d, "in", "a", json!({"payment_id": "p1"}), 1_000);
    send(&mut d, "in", "b", json!({"payment_id": "p1"}), 2_000);
    send(&mut d, "in", "c", json!({"payment_id": "p2"}), 3_000);
    send(&mut d, "in", "d", json!({"payment_id": "p1"}), 70_000);
    let ids: Vec<Value> = out(&mut d, "out")
        .into_iter()
        .map(|(_, v)| v["payment_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("p1"), json!("p2"), json!("p1")]);
}

#[test]
fn the_seeds_compile_with_every_operation_and_output() {
    // `encrypt_content` (the message seed) seals with a keyring from the environment.
    std::env::set_var(
        "STROM_PIPELINE_KEYS",
        "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    for seed in [
        "driver-location-tracking",
        "user-engagement-analytics",
        "message-delivery-system",
    ] {
        let path = format!("{}/tests/seeds/{seed}.yaml", env!("CARGO_MANIFEST_DIR"));
        let yaml = std::fs::read_to_string(&path).unwrap();
        let p = parse(&path, &yaml, &|_| None).unwrap();
        if let Err(e) = compile(&path, &p) {
            panic!("{seed}: {e}");
        }
    }
}

#[test]
fn location_operations_validate_hash_and_regroup() {
    let mut d = driver(
        r#"
location_pipeline:
  name: loc
  input_topics: [driver-locations]
  stream_processors:
    - name: validator
      operations: [validate_coordinates]
    - name: geo
      operations:
        - calculate_geohash: {precision: 7}
        - group_by_region
  output_destinations:
    - {type: kafka, topic: regions}
"#,
    );
    send(
        &mut d,
        "driver-locations",
        "d1",
        json!({"latitude": 37.7749, "longitude": -122.4194}),
        1,
    );
    send(
        &mut d,
        "driver-locations",
        "d2",
        json!({"latitude": 123.0, "longitude": 0.0}),
        2,
    );
    send(&mut d, "driver-locations", "d3", json!({"lat": 1.0}), 3);
    assert_eq!(
        out(&mut d, "regions"),
        vec![(
            "9q8y".into(),
            json!({"latitude": 37.7749, "longitude": -122.4194, "geohash": "9q8yyk8", "region": "9q8y"})
        )]
    );
    let reasons = dlq_reasons(&mut d);
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].contains("coordinates out of range"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("missing or non-numeric coordinates"),
        "{reasons:?}"
    );

    let mut d = driver("pipeline:\n  name: f\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [filter_invalid_locations]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    send(
        &mut d,
        "in",
        "a",
        json!({"latitude": 1.0, "longitude": 2.0}),
        1,
    );
    send(
        &mut d,
        "in",
        "b",
        json!({"latitude": 91.0, "longitude": 2.0}),
        2,
    );
    assert_eq!(out(&mut d, "out").len(), 1);
    assert!(d.read_raw("dlq").is_empty(), "filtered silently");
}

#[test]
fn anomalies_are_marked_per_driver_and_do_not_become_the_reference() {
    let mut d = driver("pipeline:\n  name: a\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [detect_anomalies]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    let at = |lat: f64, lon: f64| json!({"latitude": lat, "longitude": lon});
    send(&mut d, "in", "d1", at(48.8566, 2.3522), 0);
    send(&mut d, "in", "d2", at(51.5074, -0.1278), 10_000); // another driver: no comparison
    send(&mut d, "in", "d1", at(48.8656, 2.3522), 60_000); // 1 km in a minute: 60 km/h
    send(&mut d, "in", "d1", at(51.5074, -0.1278), 120_000); // London a minute later
    send(&mut d, "in", "d1", at(48.8746, 2.3522), 180_000); // 1 km from the last good one
    let flags: Vec<(String, Value)> = out(&mut d, "out")
        .into_iter()
        .map(|(k, v)| (k, v.get("anomaly").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("d1".into(), Value::Null),
            ("d2".into(), Value::Null),
            ("d1".into(), Value::Null),
            ("d1".into(), json!(true)),
            ("d1".into(), Value::Null),
        ]
    );
}

#[test]
fn the_spatial_index_counts_recent_drivers_per_region() {
    let mut d = driver("pipeline:\n  name: g\n  input_topics: [in]\n  processors:\n    - name: s\n      operations: [group_by_region, {update_spatial_index: {ttl: 1 minute}}]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    let at = |id: &str| json!({"driver_id": id, "latitude": 37.7749, "longitude": -122.4194});
    send(&mut d, "in", "", at("a"), 0);
    send(&mut d, "in", "", at("b"), 10_000);
    send(&mut d, "in", "", at("a"), 20_000); // a again: still two drivers
    send(&mut d, "in", "", at("c"), 75_000); // b is over a minute old; a (seen at 20 s) is not
    send(&mut d, "in", "", at("a"), 200_000); // a and c expired; a comes back alone
    send(&mut d, "in", "", at("b"), 210_000);
    let nearby: Vec<Value> = out(&mut d, "out")
        .into_iter()
        .map(|(_, v)| v["nearby"].clone())
        .collect();
    assert_eq!(
        nearby,
        vec![json!(1), json!(2), json!(2), json!(2), json!(1), json!(2)]
    );
}

#[test]
fn the_engagement_seeds_first_step_runs_with_its_completion_rate() {
    let mut d = driver(
        r#"
stream_pipeline:
  name: engagement
  input_topics: [user-views]
  processors:
    - name: view-aggregator
      type: tumbling-window
      window_size: "5 minutes"
      operations:
        - count_by_content_id
        - sum_watch_duration
        - calculate_completion_rate
  output_sinks:
    - type: kafka
      topic: processed-analytics
"#,
    );
    let view = |watched: i64| json!({"content_id": "c1", "watch_duration": watched, "content_duration": 200});
    send(&mut d, "user-views", "u1", view(200), 1_000);
    send(&mut d, "user-views", "u2", view(50), 2_000);
    send(&mut d, "user-views", "u3", view(400), 3_000); // watched twice: capped at 1
    send(
        &mut d,
        "user-views",
        "u4",
        json!({"content_id": "c2"}),
        300_000,
    );
    let o = out(&mut d, "processed-analytics");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].1["count_by_content_id"], json!(3));
    assert_eq!(o[0].1["sum_watch_duration"], json!(650.0));
    assert_eq!(o[0].1["calculate_completion_rate"], json!(0.75));
}

#[test]
fn the_message_stages_validate_filter_encrypt_and_route() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "k1=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n").unwrap();
    let yaml = format!(
        r#"
message_pipeline:
  name: messages
  input_topics: [incoming-messages]
  processing_stages:
    - name: message-validation
      operations:
        - validate_sender_permissions: {{blocked: [mallory]}}
        - check_spam_filters: {{blocked_words: [lottery]}}
        - encrypt_content: {{keyring_file: "{}"}}
    - name: delivery-routing
      operations:
        - determine_recipient_servers: {{servers: 4}}
        - route_to_appropriate_delivery_pipeline
  delivery_channels:
    - {{type: kafka, topic: online, for: online_users}}
    - {{type: kafka, topic: offline, for: offline_users}}
    - {{type: kafka, topic: failures, for: delivery_failures}}
"#,
        keys.display()
    );
    let mut d = driver(&yaml);
    let msg = |from: &str, text: &str, online: bool| json!({"sender_id": from, "recipient_id": "bob", "content": text, "online": online});
    send(
        &mut d,
        "incoming-messages",
        "chat1",
        msg("alice", "hi bob", true),
        1,
    );
    send(
        &mut d,
        "incoming-messages",
        "chat1",
        msg("alice", "see you", false),
        2,
    );
    send(
        &mut d,
        "incoming-messages",
        "chat2",
        msg("mallory", "hi", true),
        3,
    );
    send(
        &mut d,
        "incoming-messages",
        "chat3",
        msg("eve", "WIN THE LOTTERY", true),
        4,
    );
    let mut failed = msg("alice", "retry me", true);
    failed["delivery_failed"] = json!(true);
    send(&mut d, "incoming-messages", "chat1", failed, 5);

    let online = out(&mut d, "online");
    assert_eq!(online.len(), 1);
    let m = &online[0].1;
    assert_eq!(m["encryption_key_id"], json!("k1"));
    assert!(m["recipient_server"]
        .as_str()
        .unwrap()
        .starts_with("server-"));
    assert!(
        m.get("_route").is_none(),
        "the route tag is not written out"
    );
    // The content is sealed: the registry's envelope opens it with the same keyring.
    let keyring = strom_registry::client::encryption::Keyring::from_file(&keys).unwrap();
    let envelope = strom_registry::client::encryption::Envelope::new(keyring);
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(m["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(envelope.open(Some("k1"), &sealed).unwrap(), b"hi bob");
    assert_eq!(out(&mut d, "offline").len(), 1);
    assert_eq!(out(&mut d, "failures").len(), 1);
    let reasons = dlq_reasons(&mut d);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("sender mallory is blocked"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("spam: blocked word \"lottery\""),
        "{reasons:?}"
    );
}

#[test]
fn presence_decides_the_channel_and_failed_deliveries_are_retried_then_given_up() {
    let mut d = driver(
        r#"
message_pipeline:
  name: delivery
  input_topics: [incoming-messages]
  processing_stages:
    - name: delivery-routing
      operations:
        - check_recipient_online_status
        - route_to_appropriate_delivery_pipeline
    - name: delivery-tracking
      operations:
        - manage_retry_logic: {max_attempts: 2}
  delivery_channels:
    - {type: kafka, topic: online, for: online_users}
    - {type: kafka, topic: offline, for: offline_users}
    - {type: kafka, topic: failures, for: delivery_failures}
"#,
    );
    send(&mut d, "user-presence", "bob", json!(true), 1);
    send(
        &mut d,
        "user-presence",
        "carol",
        json!({"online": false}),
        1,
    );
    let to = |who: &str| json!({"recipient_id": who, "content": "hi"});
    send(&mut d, "incoming-messages", "c1", to("bob"), 2);
    send(&mut d, "incoming-messages", "c2", to("carol"), 3);
    send(&mut d, "incoming-messages", "c3", to("dave"), 4); // no presence: offline
    let mut failed = to("bob");
    failed["delivery_failed"] = json!(true);
    send(&mut d, "incoming-messages", "c1", failed.clone(), 5); // first failure: retried
    failed["attempt"] = json!(1);
    send(&mut d, "incoming-messages", "c1", failed, 6); // second: given up
    let online = out(&mut d, "online");
    assert_eq!(online.len(), 2, "{online:?}");
    assert_eq!(online[1].1["retry"], json!(true));
    assert_eq!(online[1].1["attempt"], json!(1));
    assert_eq!(out(&mut d, "offline").len(), 2);
    let failures = out(&mut d, "failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].1["attempt"], json!(2));
    assert_eq!(failures[0].1["retry"], json!(false));
}

#[test]
fn engagement_enrichment_affinities_and_recommendations() {
    let mut d = driver(
        r#"
stream_pipeline:
  name: recs
  input_topics: [user-views]
  processors:
    - name: real-time-recommendations
      type: stream-processor
      operations:
        - enrich_with_user_profile
        - calculate_affinity_scores
        - generate_recommendations: {top: 2}
  output_sinks:
    - {type: kafka, topic: recommendations}
"#,
    );
    send(&mut d, "user-profiles", "u1", json!({"country": "NL"}), 0);
    for (i, genre) in ["drama", "comedy", "drama", "docs"].iter().enumerate() {
        send(
            &mut d,
            "user-views",
            "",
            json!({"user_id": "u1", "genre": genre}),
            i as i64 + 1,
        );
    }
    send(
        &mut d,
        "user-views",
        "",
        json!({"user_id": "u2", "genre": "docs"}),
        9,
    );
    let o = out(&mut d, "recommendations");
    assert_eq!(o.len(), 5);
    let last_u1 = &o[3].1;
    assert_eq!(last_u1["profile"], json!({"country": "NL"}));
    assert_eq!(
        last_u1["affinity_scores"],
        json!({"drama": 0.5, "comedy": 0.25, "docs": 0.25})
    );
    assert_eq!(last_u1["recommendations"], json!(["drama", "comedy"]));
    assert_eq!(o[4].0, "u2");
    assert_eq!(o[4].1["profile"], Value::Null);
    assert_eq!(o[4].1["recommendations"], json!(["docs"]));
}

#[test]
fn delivery_status_is_tracked_and_confirmations_are_consumed() {
    let mut d = driver(
        r#"
message_pipeline:
  name: tracking
  input_topics: [incoming-messages]
  processing_stages:
    - name: delivery-tracking
      operations:
        - track_delivery_status
        - handle_delivery_confirmations
  delivery_channels:
    - {type: kafka, topic: tracked}
"#,
    );
    send(
        &mut d,
        "incoming-messages",
        "c1",
        json!({"message_id": "m1", "content": "hi"}),
        1,
    );
    send(
        &mut d,
        "incoming-messages",
        "c1",
        json!({"message_id": "m1", "type": "delivery_confirmation"}),
        2,
    );
    send(
        &mut d,
        "incoming-messages",
        "c1",
        json!({"message_id": "m2", "status": "queued"}),
        3,
    );
    let o = out(&mut d, "tracked");
    assert_eq!(o.len(), 2, "the confirmation is consumed: {o:?}");
    assert_eq!((o[0].0.as_str(), &o[0].1["status"]), ("m1", &json!("sent")));
    assert_eq!(o[1].1["status"], json!("queued"));
    let store: Vec<(String, Value)> = d
        .store_all(&StoreHandle::new(
            "delivery-status",
            StringSerde,
            JsonSerde::<Value>::new(),
        ))
        .unwrap();
    assert_eq!(store[0].1["status"], json!("delivered"));
    assert_eq!(store[1].1["status"], json!("queued"));
}

#[test]
fn the_location_seeds_stages_run_end_to_end_in_the_driver() {
    // The seed's processors verbatim, with Kafka outputs in place of redis-geo/websocket.
    let mut d = driver(
        r#"
location_pipeline:
  name: "driver-location-tracking"
  input_sources:
    - type: "kafka"
      topic: "driver-locations"
      partitions: 64
      replication_factor: 3
  stream_processors:
    - name: "location-validator"
      operations:
        - validate_coordinates
        - filter_invalid_locations
        - detect_anomalies
    - name: "geohash-processor"
      operations:
        - calculate_geohash
        - group_by_region
        - update_spatial_index
    - name: "eta-calculator"
      operations:
        - calculate_eta_to_requests
        - update_driver_availability
        - trigger_matching_algorithm
  output_destinations:
    - type: "kafka"
      topic: "driver-availability-updates"
    - type: "kafka"
      topic: "matches"
      for: matches
"#,
    );
    // Two open requests in San Francisco's region, one far away.
    send(
        &mut d,
        "ride-requests",
        "r1",
        json!({"latitude": 37.7750, "longitude": -122.4180}),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r2",
        json!({"latitude": 37.7800, "longitude": -122.4100}),
        0,
    );
    send(
        &mut d,
        "ride-requests",
        "r9",
        json!({"latitude": 48.85, "longitude": 2.35}),
        0,
    );
    let driver_at =
        |id: &str| json!({"driver_id": id, "latitude": 37.7749, "longitude": -122.4194});
    send(&mut d, "driver-locations", "d1", driver_at("d1"), 1_000);
    send(&mut d, "driver-locations", "d2", driver_at("d2"), 2_000);
    send(
        &mut d,
        "driver-locations",
        "d3",
        json!({"driver_id": "d3", "latitude": 37.7749, "longitude": -122.4194, "available": false}),
        3_000,
    );
    let updates = out(&mut d, "driver-availability-updates");
    assert_eq!(updates.len(), 3);
    let d1 = &updates[0].1;
    assert_eq!(d1["region"], json!("9q8y"));
    assert_eq!(
        d1["etas"].as_array().unwrap().len(),
        2,
        "the Paris request is not in the region"
    );
    assert_eq!(d1["etas"][0]["request_id"], json!("r1"));
    assert_eq!(d1["match"]["request_id"], json!("r1"));
    assert_eq!(
        updates[1].1["match"]["request_id"],
        json!("r2"),
        "r1 is taken"
    );
    assert!(
        updates[2].1.get("match").is_none(),
        "an unavailable driver gets no match"
    );
    assert_eq!(updates[2].1["available_drivers"], json!(2));
    let matches = out(&mut d, "matches");
    assert_eq!(matches.len(), 2);
}

#[test]
fn avro_and_protobuf_inputs_compile_without_contacting_the_registry() {
    for format in ["avro", "protobuf"] {
        let yaml = format!(
            "pipeline:\n  name: p\n  format: {format}\n  schema_registry: http://127.0.0.1:1\n  input_topics: [a]\n  output_sinks:\n    - type: kafka\n      topic: b\n"
        );
        let p = parse("p.yaml", &yaml, &|_| None).unwrap();
        assert_eq!(p.schema_registry.as_deref(), Some("http://127.0.0.1:1"));
        compile("p.yaml", &p).unwrap_or_else(|e| panic!("{format}: {e}"));
    }
}

/// Tags each record with where it came from (`source: <param>`); a record that is not
/// an object fails: a plugin operation.
struct TagSource;

impl strom_pipeline::plugin::OperationPlugin for TagSource {
    fn name(&self) -> &str {
        "tag_source"
    }

    fn build(
        &self,
        params: &[(String, strom_pipeline::Value)],
    ) -> Result<strom_pipeline::builtins::RecordFn, String> {
        let Some(source) = params
            .iter()
            .find(|(k, _)| k == "source")
            .and_then(|(_, v)| v.as_text())
            .map(str::to_string)
        else {
            return Err("tag_source needs `source`".into());
        };
        Ok(Box::new(move |k, mut v: Value| match v.as_object_mut() {
            Some(o) => {
                o.insert("source".into(), json!(source));
                Ok(Some((k, v)))
            }
            None => Err(format!("{v} is not an object")),
        }))
    }
}

#[test]
fn plugin_operations_run_by_name_and_count_in_operation_metrics() {
    use strom_pipeline::plugin::Plugins;
    let yaml = "pipeline:\n  name: p\n  input_topics: [users]\n  processors:\n    - name: tagging\n      operations:\n        - tag_source: {source: signup-form}\n  output_sinks:\n    - type: kafka\n      topic: tagged\n";
    // Unknown without the plugin, with the list of known operations.
    let e = parse("p.yaml", yaml, &|_| None).unwrap_err().to_string();
    assert!(e.contains("unknown operation \"tag_source\""), "{e}");
    let plugins = Plugins::new().register(TagSource);
    let p = strom_pipeline::parse_with("p.yaml", yaml, &|_| None, &plugins.names()).unwrap();
    let (topology, ops) =
        strom_pipeline::compile::compile_observed("p.yaml", &p, &plugins).unwrap();
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&topology, config).unwrap();
    send(&mut d, "users", "u1", json!({"name": "ada"}), 1);
    send(&mut d, "users", "u2", json!([1, 2]), 2);
    assert_eq!(
        out(&mut d, "tagged"),
        vec![(
            "u1".to_string(),
            json!({"name": "ada", "source": "signup-form"})
        )]
    );
    assert_eq!(
        dlq_reasons(&mut d),
        vec!["[1,2] is not an object".to_string()]
    );
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].operation, "tag_source");
    assert_eq!(
        ops[0]
            .records_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(ops[0].errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A plugin's own parameter errors are reported at the operation.
    let bad = yaml.replace("{source: signup-form}", "{}");
    let p = strom_pipeline::parse_with("p.yaml", &bad, &|_| None, &plugins.names()).unwrap();
    let e = strom_pipeline::compile::compile_with("p.yaml", &p, &plugins)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tag_source needs `source`"), "{e}");
}

const SESSIONS: &str = r#"
pipeline:
  name: sessions
  input_topics: [user-views]
  processors:
    - name: per-user
      type: session-window
      gap: 30 minutes
      grace: 2 minutes
      operations: [group_by_user_id, count, count_each_genre]
  output_sinks:
    - type: kafka
      topic: sessions
"#;

#[test]
fn a_session_closes_once_stream_time_passes_its_end_gap_and_grace() {
    let p = parse("p.yaml", SESSIONS, &|_| None).unwrap();
    let (topology, ops) =
        strom_pipeline::compile::compile_observed("p.yaml", &p, &Default::default()).unwrap();
    let mut d = TopologyTestDriver::with_config(&topology, DriverConfig::default()).unwrap();
    let min = 60_000;
    let view =
        |user: &str, genre: &str, t: i64| json!({"user_id": user, "genre": genre, "timestamp": t});
    send(&mut d, "user-views", "u1", view("u1", "drama", 0), 0);
    send(
        &mut d,
        "user-views",
        "u1",
        view("u1", "comedy", 20 * min),
        20 * min,
    );
    send(
        &mut d,
        "user-views",
        "u2",
        view("u2", "drama", 40 * min),
        40 * min,
    );
    // u1's session ends at 20m (+1, exclusive): it closes after 20m + 30m + 2m.
    assert_eq!(out(&mut d, "sessions"), vec![]);
    send(
        &mut d,
        "user-views",
        "u2",
        view("u2", "drama", 53 * min),
        53 * min,
    );
    assert_eq!(
        out(&mut d, "sessions"),
        vec![(
            "u1".to_string(),
            json!({"user_id": "u1", "window_start": 0, "window_end": 20 * min + 1, "count": 2,
                   "count_each_genre": {"drama": 1, "comedy": 1}})
        )]
    );
    // The step's grouping and every aggregate passed the one closed session on.
    let passed: Vec<(String, u64)> = ops
        .iter()
        .map(|m| {
            (
                m.operation.clone(),
                m.records_out.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    assert_eq!(
        passed,
        [
            ("group_by_user_id".to_string(), 1),
            ("count".to_string(), 1),
            ("count_each_genre".to_string(), 1)
        ]
    );
}

const BRANCHES: &str = r#"
pipeline:
  name: branches
  input_topics: [user-views, user-clicks]
  processors:
    - name: valid
      from: user-views
      operations:
        - filter: "watch_duration >= 0"
    - name: titled
      operations:
        - join: {table: content-metadata, on: content_id, as: content}
    - name: long
      from: valid
      operations:
        - filter: "watch_duration * 2 >= content_duration"
  output_sinks:
    - type: kafka
      topic: titled
      from: titled
    - type: kafka
      topic: long
    - type: kafka
      topic: everything
      from: [user-views, user-clicks]
"#;

#[test]
fn steps_and_outputs_read_the_inputs_and_steps_they_name() {
    let mut d = driver(BRANCHES);
    send(&mut d, "content-metadata", "c1", json!({"title": "One"}), 0);
    let view =
        |c: &str, w: i64| json!({"content_id": c, "watch_duration": w, "content_duration": 100});
    send(&mut d, "user-views", "u1", view("c1", 60), 1);
    send(&mut d, "user-views", "u1", view("c2", 10), 2);
    send(&mut d, "user-views", "u1", view("c1", -1), 3);
    send(&mut d, "user-clicks", "u1", json!({"content_id": "c1"}), 4);
    let with_content = |c: &str, w: i64, content: Value| {
        let mut v = view(c, w);
        v["content"] = content;
        v
    };
    assert_eq!(
        out(&mut d, "titled"),
        vec![
            (
                "u1".to_string(),
                with_content("c1", 60, json!({"title": "One"}))
            ),
            ("u1".to_string(), with_content("c2", 10, Value::Null)),
        ],
        "valid views only; clicks never reach the `valid` branch"
    );
    // `long` reads `valid`, not `titled`; an output without `from` writes the last step.
    assert_eq!(
        out(&mut d, "long"),
        vec![("u1".to_string(), view("c1", 60))]
    );
    assert_eq!(out(&mut d, "everything").len(), 4, "both inputs, merged");
}

const JOINED: &str = r#"
pipeline:
  name: joined
  input_topics: [user-views]
  processors:
    - name: titled
      operations:
        - join: {table: content-metadata, on: content_id, as: content}
  output_sinks:
    - type: kafka
      topic: titled
"#;

#[test]
fn join_adds_the_table_row_or_null() {
    let mut d = driver(JOINED);
    send(
        &mut d,
        "content-metadata",
        "c1",
        json!({"title": "One", "genre": "drama"}),
        0,
    );
    send(&mut d, "user-views", "u1", json!({"content_id": "c1"}), 1);
    send(&mut d, "user-views", "u2", json!({"content_id": "c9"}), 2);
    send(&mut d, "user-views", "u3", json!({"other": 1}), 3);
    assert_eq!(
        out(&mut d, "titled"),
        vec![
            (
                "u1".to_string(),
                json!({"content_id": "c1", "content": {"title": "One", "genre": "drama"}})
            ),
            (
                "u2".to_string(),
                json!({"content_id": "c9", "content": null})
            ),
            // Without the field the record key is looked up.
            ("u3".to_string(), json!({"other": 1, "content": null})),
        ]
    );
}
