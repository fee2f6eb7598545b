//! The schema-registry serdes through the topology test driver, against strom's
//! registry started in-process on a loopback port: Avro, Protobuf and JSON Schema round
//! trips in Confluent's wire format, evolution, register-on-first-use vs lookup vs
//! latest version, validation on produce, and the encryption envelope (round trip,
//! rotation, wrong key, tampering, missing header) with the dead-letter topic, and a
//! registry outage that pauses the partition instead.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prost_reflect::{DynamicMessage, ReflectMessage, Value as Proto};
use serde::{Deserialize, Serialize};
use strom_registry::types::{SchemaInput, SchemaType};
use strom_streams::prelude::*;
use strom_streams::registry::{
    compile_proto, topic_subject, AvroSerde, EncryptedSerde, Envelope, JsonSchemaSerde, Keyring,
    ProtobufSerde, SchemaRegistry, SerdeConfig, KEY_ID_HEADER,
};

/// strom's registry on its own runtime (stopped on drop), and a client of it.
struct Server {
    registry: SchemaRegistry,
    runtime: tokio::runtime::Runtime,
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = runtime
        .block_on(strom_registry::api::serve_in_memory(std::future::pending()))
        .unwrap();
    Server {
        registry: SchemaRegistry::connect_url(&format!("http://{addr}")).unwrap(),
        runtime,
    }
}

impl Server {
    /// Registers `schema` under `subject` directly (another application's writer).
    fn register(&self, subject: &str, schema: &str, schema_type: SchemaType) -> i32 {
        let input = SchemaInput {
            schema: schema.into(),
            schema_type,
            references: vec![],
        };
        let client = self.registry.client().clone();
        let subject = subject.to_owned();
        self.runtime
            .block_on(async move { client.register(&subject, &input, false).await })
            .unwrap()
    }

    /// The id and schema of a subject's latest version.
    fn latest(&self, subject: &str) -> (i32, i32, String) {
        let client = self.registry.client().clone();
        let subject = subject.to_owned();
        let (id, version, input) = self
            .runtime
            .block_on(async move { client.version(&subject, "latest").await })
            .unwrap();
        (id, version, input.schema)
    }
}

/// The schema id in front of a framed payload.
fn schema_id(framed: &[u8]) -> i32 {
    assert_eq!(framed[0], 0, "Confluent's magic byte");
    i32::from_be_bytes(framed[1..5].try_into().unwrap())
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
        .map(|v| std::str::from_utf8(v).unwrap())
}

fn dead_letters() -> DriverConfig {
    DriverConfig {
        deserialization_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        processing_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        ..DriverConfig::default()
    }
}

// ---- Avro ------------------------------------------------------------------------

const RIDE_V1: &str = r#"{"type":"record","name":"Ride","namespace":"strom.test","fields":[{"name":"id","type":"string"},{"name":"km","type":"int"}]}"#;
const RIDE_V2: &str = r#"{"type":"record","name":"Ride","namespace":"strom.test","fields":[{"name":"id","type":"string"},{"name":"km","type":"int"},{"name":"city","type":["null","string"],"default":null}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RideV1 {
    id: String,
    km: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RideV2 {
    id: String,
    km: i32,
    city: Option<String>,
}

fn avro<T>(server: &Server, topic: &str, schema: &str, config: SerdeConfig) -> AvroSerde<T> {
    AvroSerde::new(
        &server.registry,
        &topic_subject(topic, false),
        schema,
        config,
    )
    .unwrap()
}

/// A builder whose topology reads `rides` as Avro with `schema` (the reader's).
fn read_rides<T>(server: &Server, schema: &str) -> (StreamsBuilder, KStream<String, T>)
where
    T: Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
{
    let b = StreamsBuilder::new();
    let rides = b.stream(
        "rides",
        StringSerde,
        avro::<T>(server, "rides", schema, SerdeConfig::default()),
    );
    (b, rides)
}

#[test]
fn avro_round_trips_through_a_topology_in_confluents_wire_format() {
    let server = server();
    let (b, rides) = read_rides::<RideV2>(&server, RIDE_V2);
    rides
        .map_values(|r: &RideV2| RideV2 {
            km: r.km * 2,
            ..r.clone()
        })
        .to(
            "rides-doubled",
            StringSerde,
            avro::<RideV2>(&server, "rides-doubled", RIDE_V2, SerdeConfig::default()),
        );
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    let input = avro::<RideV2>(&server, "rides", RIDE_V2, SerdeConfig::default());
    let ride = RideV2 {
        id: "r1".into(),
        km: 21,
        city: Some("Oslo".into()),
    };
    d.pipe("rides", &StringSerde, &input, &"k".to_string(), &ride, 1)
        .unwrap();
    let raw = d.read_raw("rides-doubled");
    assert_eq!(raw.len(), 1);
    // Registered on first use under the topic's value subject; the payload names it.
    let (id, version, schema) = server.latest("rides-doubled-value");
    assert_eq!(version, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&schema).unwrap(),
        serde_json::from_str::<serde_json::Value>(RIDE_V2).unwrap()
    );
    let framed = raw[0].value.as_deref().unwrap();
    assert_eq!(schema_id(framed), id);
    // One global id for one schema under two subjects.
    assert_eq!(server.latest("rides-value").0, id);
    let output = avro::<RideV2>(&server, "rides-doubled", RIDE_V2, SerdeConfig::default());
    assert_eq!(
        output.deserialize(framed).unwrap(),
        RideV2 { km: 42, ..ride }
    );
}

#[test]
fn avro_evolves_old_writers_to_the_readers_schema_and_back() {
    let server = server();
    // The application reads with v2 (a field added with a default)...
    let (b, rides) = read_rides::<RideV2>(&server, RIDE_V2);
    rides
        .map_values(|r: &RideV2| format!("{}:{}:{:?}", r.id, r.km, r.city))
        .to("summaries", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    // ...records written by an old producer with v1.
    let old_writer = avro::<RideV1>(&server, "rides", RIDE_V1, SerdeConfig::default());
    let old = RideV1 {
        id: "r1".into(),
        km: 3,
    };
    d.pipe(
        "rides",
        &StringSerde,
        &old_writer,
        &"k".to_string(),
        &old,
        1,
    )
    .unwrap();
    let v1_id = server.latest("rides-value").0;
    // A new producer registers v2 (backward compatible) and writes with it.
    let new_writer = avro::<RideV2>(&server, "rides", RIDE_V2, SerdeConfig::default());
    let new = RideV2 {
        id: "r2".into(),
        km: 4,
        city: Some("Bergen".into()),
    };
    d.pipe(
        "rides",
        &StringSerde,
        &new_writer,
        &"k".to_string(),
        &new,
        2,
    )
    .unwrap();
    let (v2_id, version, _) = server.latest("rides-value");
    assert_eq!(version, 2);
    assert_ne!(v1_id, v2_id);
    let log = d.topic_log("rides").to_vec();
    assert_eq!(schema_id(log[0].value.as_deref().unwrap()), v1_id);
    assert_eq!(schema_id(log[1].value.as_deref().unwrap()), v2_id);
    assert_eq!(
        kv(&d
            .read_output("summaries", &StringSerde, &StringSerde)
            .unwrap()),
        vec![
            ("k".to_string(), "r1:3:None".to_string()),
            ("k".to_string(), "r2:4:Some(\"Bergen\")".to_string()),
        ]
    );
    // And forward: an old reader drops the field it does not know.
    let old_reader = avro::<RideV1>(&server, "rides", RIDE_V1, SerdeConfig::default());
    assert_eq!(
        old_reader
            .deserialize(log[1].value.as_deref().unwrap())
            .unwrap(),
        RideV1 {
            id: "r2".into(),
            km: 4
        }
    );
}

fn kv<K: Clone, V: Clone>(records: &[Record<K, V>]) -> Vec<(K, V)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

#[test]
fn register_on_first_use_lookup_only_and_use_latest_version() {
    let server = server();
    let ride = RideV1 {
        id: "r1".into(),
        km: 7,
    };
    // Lookup only: an unknown subject fails (40401), and nothing is registered.
    let lookup = SerdeConfig {
        auto_register: false,
        ..SerdeConfig::default()
    };
    let looked_up = avro::<RideV1>(&server, "trips", RIDE_V1, lookup);
    let err = looked_up.serialize(&ride).unwrap_err().to_string();
    assert!(err.contains("40401"), "{err}");
    // Registered by someone else: the lookup finds its id; a schema the subject does
    // not hold is not found (40403).
    let v1_id = server.register("trips-value", RIDE_V1, SchemaType::Avro);
    assert_eq!(schema_id(&looked_up.serialize(&ride).unwrap()), v1_id);
    let unregistered = avro::<RideV2>(&server, "trips", RIDE_V2, lookup);
    let err = unregistered
        .serialize(&RideV2 {
            id: "r1".into(),
            km: 7,
            city: None,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("40403"), "{err}");
    // Then v2 is registered; a serializer built with v1 and `use_latest_version` writes
    // with v2 (the missing field takes its default), a default one keeps v1.
    let v2_id = server.register("trips-value", RIDE_V2, SchemaType::Avro);
    let latest = avro::<RideV1>(
        &server,
        "trips",
        RIDE_V1,
        SerdeConfig {
            auto_register: false,
            use_latest_version: true,
            normalize: false,
        },
    );
    let framed = latest.serialize(&ride).unwrap();
    assert_eq!(schema_id(&framed), v2_id);
    let reader = avro::<RideV2>(&server, "trips", RIDE_V2, SerdeConfig::default());
    assert_eq!(
        reader.deserialize(&framed).unwrap(),
        RideV2 {
            id: "r1".into(),
            km: 7,
            city: None
        }
    );
    let first_use = avro::<RideV1>(&server, "trips", RIDE_V1, SerdeConfig::default());
    assert_eq!(schema_id(&first_use.serialize(&ride).unwrap()), v1_id);
    assert_eq!(server.latest("trips-value").1, 2, "no new version");
}

#[test]
fn undecodable_payloads_go_to_the_dead_letter_topic_with_the_reason() {
    let server = server();
    let (b, rides) = read_rides::<RideV1>(&server, RIDE_V1);
    rides
        .map_values(|r: &RideV1| r.id.clone())
        .to("out", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), dead_letters()).unwrap();
    let good = avro::<RideV1>(&server, "rides", RIDE_V1, SerdeConfig::default())
        .serialize(&RideV1 {
            id: "r1".into(),
            km: 1,
        })
        .unwrap();
    let mut unknown_id = good.clone();
    unknown_id[1..5].copy_from_slice(&999i32.to_be_bytes());
    let cases: [(&[u8], &str); 4] = [
        (b"plain text", "unknown magic byte"),
        (&good[..3], "shorter than the 5-byte schema header"),
        (&unknown_id, "40403"),
        (&good[..good.len() - 1], "cannot decode"),
    ];
    for (i, (payload, _)) in cases.iter().enumerate() {
        d.pipe_raw(
            "rides",
            Some(b"k".to_vec()),
            Some(payload.to_vec()),
            i as i64,
            vec![],
        )
        .unwrap();
    }
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), cases.len());
    for (record, (payload, reason)) in dlq.iter().zip(cases) {
        assert_eq!(record.value.as_deref(), Some(payload), "the original bytes");
        assert_eq!(
            header(&record.headers, "strom.error.kind"),
            Some("deserialization")
        );
        let error = header(&record.headers, "strom.error").unwrap();
        assert!(error.contains(reason), "{error} should say {reason}");
    }
    assert!(d.read_raw("out").is_empty());
}

// ---- Protobuf ----------------------------------------------------------------------

const RIDE_PROTO_V1: &str = "syntax = \"proto3\";\npackage strom.test;\n\
    message Ride { string id = 1; int32 km = 2; message Stop { string name = 1; } repeated Stop stops = 3; }\n";
const RIDE_PROTO_V2: &str = "syntax = \"proto3\";\npackage strom.test;\n\
    import \"google/protobuf/timestamp.proto\";\n\
    message Ride { string id = 1; int32 km = 2; message Stop { string name = 1; } repeated Stop stops = 3;\n\
    google.protobuf.Timestamp at = 4; string city = 5; }\n";

fn ride_message(
    descriptor: &prost_reflect::MessageDescriptor,
    id: &str,
    km: i32,
) -> DynamicMessage {
    let mut m = DynamicMessage::new(descriptor.clone());
    m.set_field_by_name("id", Proto::String(id.into()));
    m.set_field_by_name("km", Proto::I32(km));
    m
}

#[test]
fn protobuf_round_trips_and_evolves_through_a_topology() {
    let server = server();
    let v1 = compile_proto("strom/test/ride.proto", RIDE_PROTO_V1)
        .unwrap()
        .messages()
        .find(|m| m.full_name() == "strom.test.Ride")
        .unwrap();
    let v2 = compile_proto("strom/test/ride.proto", RIDE_PROTO_V2)
        .unwrap()
        .messages()
        .find(|m| m.full_name() == "strom.test.Ride")
        .unwrap();
    let serde = |topic: &str, message: &prost_reflect::MessageDescriptor| {
        ProtobufSerde::new(
            &server.registry,
            &topic_subject(topic, false),
            message.clone(),
            SerdeConfig::default(),
        )
    };
    // The application reads v2 and writes v2 with the city filled in.
    let b = StreamsBuilder::new();
    b.stream("rides", StringSerde, serde("rides", &v2))
        .map_values(|m: &DynamicMessage| {
            let mut m = m.clone();
            m.set_field_by_name("city", Proto::String("Oslo".into()));
            m
        })
        .to("rides-city", StringSerde, serde("rides-city", &v2));
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    // An old producer writes v1 (with a nested repeated message).
    let mut old = ride_message(&v1, "r1", 5);
    let stop_v1 = v1.get_field_by_name("stops").unwrap();
    let mut stop = DynamicMessage::new(v1.child_messages().find(|m| m.name() == "Stop").unwrap());
    stop.set_field_by_name("name", Proto::String("depot".into()));
    old.set_field(&stop_v1, Proto::List(vec![Proto::Message(stop)]));
    d.pipe(
        "rides",
        &StringSerde,
        &serde("rides", &v1),
        &"k".to_string(),
        &old,
        1,
    )
    .unwrap();
    let raw = d.read_raw("rides-city");
    assert_eq!(raw.len(), 1);
    let framed = raw[0].value.as_deref().unwrap();
    assert_eq!(schema_id(framed), server.latest("rides-city-value").0);
    assert_eq!(
        framed[5], 0,
        "message indexes [0]: the first message, one 0 byte"
    );
    let read = serde("rides-city", &v2).deserialize(framed).unwrap();
    assert_eq!(read.descriptor(), v2);
    assert_eq!(read.get_field_by_name("id").unwrap().as_str(), Some("r1"));
    assert_eq!(read.get_field_by_name("km").unwrap().as_i32(), Some(5));
    assert_eq!(
        read.get_field_by_name("city").unwrap().as_str(),
        Some("Oslo")
    );
    let stops = read.get_field_by_name("stops").unwrap();
    let stops = stops.as_list().unwrap();
    assert_eq!(
        stops[0]
            .as_message()
            .unwrap()
            .get_field_by_name("name")
            .unwrap()
            .as_str(),
        Some("depot")
    );
    // A message of another type is refused on produce.
    let stop_type = v2.child_messages().find(|m| m.name() == "Stop").unwrap();
    let err = serde("rides-city", &v2)
        .serialize(&DynamicMessage::new(stop_type))
        .unwrap_err();
    assert!(err.to_string().contains("strom.test.Ride.Stop"), "{err}");
}

// ---- JSON Schema -------------------------------------------------------------------

const PAYMENT_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"id":{"type":"string"},"cents":{"type":"integer","minimum":0}},"required":["id","cents"]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payment {
    id: String,
    cents: i64,
}

#[test]
fn json_schema_round_trips_and_validates_on_produce() {
    let server = server();
    let serde = |topic: &str| {
        JsonSchemaSerde::<Payment>::new(
            &server.registry,
            &topic_subject(topic, false),
            PAYMENT_SCHEMA,
            SerdeConfig::default(),
        )
        .unwrap()
    };
    let b = StreamsBuilder::new();
    // A refund negates the amount: invalid for the output schema (minimum 0).
    b.stream("payments", StringSerde, serde("payments"))
        .map_values(|p: &Payment| Payment {
            id: p.id.clone(),
            cents: if p.id.starts_with("refund") {
                -p.cents
            } else {
                p.cents
            },
        })
        .to("payments-out", StringSerde, serde("payments-out"));
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), dead_letters()).unwrap();
    let input = serde("payments");
    for (i, id) in ["p1", "refund-1"].into_iter().enumerate() {
        let payment = Payment {
            id: id.into(),
            cents: 250,
        };
        d.pipe(
            "payments",
            &StringSerde,
            &input,
            &"k".to_string(),
            &payment,
            i as i64,
        )
        .unwrap();
    }
    let out = d
        .read_output("payments-out", &StringSerde, &serde("payments-out"))
        .unwrap();
    assert_eq!(
        kv(&out),
        vec![(
            "k".to_string(),
            Payment {
                id: "p1".into(),
                cents: 250
            }
        )]
    );
    let raw = d.topic_log("payments-out").to_vec();
    let framed = raw[0].value.as_deref().unwrap();
    assert_eq!(schema_id(framed), server.latest("payments-out-value").0);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&framed[5..]).unwrap(),
        serde_json::json!({"id": "p1", "cents": 250})
    );
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        header(&dlq[0].headers, "strom.error.kind"),
        Some("processing")
    );
    let error = header(&dlq[0].headers, "strom.error").unwrap();
    assert!(error.contains("invalid value"), "{error}");
    // A payload valid JSON but not valid for its writer's schema is refused on read.
    let bad = {
        let mut framed = framed.to_vec();
        framed.truncate(5);
        framed.extend_from_slice(br#"{"id":"p2"}"#);
        framed
    };
    let err = serde("payments-out").deserialize(&bad).unwrap_err();
    assert!(err.to_string().contains("invalid value"), "{err}");
}

// ---- Encryption --------------------------------------------------------------------

fn keyring(entries: &[(&str, &str)]) -> Keyring {
    let text: Vec<String> = entries
        .iter()
        .map(|(id, key)| format!("{id}={key}"))
        .collect();
    Keyring::parse(&text.join("\n")).unwrap()
}

/// An app that reads encrypted Avro rides and writes them, encrypted, elsewhere.
fn encrypted_app(server: &Server, envelope: &Envelope) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.stream("secure-rides", StringSerde, secure_writer(server, envelope))
        .to(
            "secure-out",
            StringSerde,
            sealed_rides(server, "secure-out", envelope),
        );
    TopologyTestDriver::with_config(&b.build().unwrap(), dead_letters()).unwrap()
}

/// Avro rides of `topic` sealed with `envelope`'s keys.
fn sealed_rides(
    server: &Server,
    topic: &str,
    envelope: &Envelope,
) -> EncryptedSerde<AvroSerde<RideV1>> {
    EncryptedSerde::new(
        avro::<RideV1>(server, topic, RIDE_V1, SerdeConfig::default()),
        envelope.clone(),
    )
}

fn secure_writer(server: &Server, envelope: &Envelope) -> EncryptedSerde<AvroSerde<RideV1>> {
    sealed_rides(server, "secure-rides", envelope)
}

/// Opens and decodes a record of `secure-out` as a consumer with `envelope` would.
fn read_secure(server: &Server, envelope: &Envelope, record: &OutputRecord) -> RideV1 {
    sealed_rides(server, "secure-out", envelope)
        .deserialize_with_headers(record.value.as_deref(), &record.headers)
        .unwrap()
}

/// Produces a ride to `secure-rides` with `writer`.
fn pipe_ride(d: &mut TopologyTestDriver, writer: &impl Serde<RideV1>, id: &str, ts: i64) {
    d.pipe(
        "secure-rides",
        &StringSerde,
        writer,
        &"k".to_string(),
        &ride(id),
        ts,
    )
    .unwrap();
}

fn ride(id: &str) -> RideV1 {
    RideV1 {
        id: id.into(),
        km: 9,
    }
}

#[test]
fn encryption_round_trips_with_the_key_id_in_a_header() {
    let server = server();
    let key = Keyring::generate_key().unwrap();
    // The app's keys from a keyring file, the producer's from the environment.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyring");
    std::fs::write(&file, format!("# current first\nk1={key}\n")).unwrap();
    let app_envelope = Envelope::new(Keyring::from_file(&file).unwrap());
    std::env::set_var("STROM_TEST_KEYRING_ROUND_TRIP", format!("k1={key}"));
    let producer_envelope =
        Envelope::new(Keyring::from_env("STROM_TEST_KEYRING_ROUND_TRIP").unwrap());
    let mut d = encrypted_app(&server, &app_envelope);
    let writer = secure_writer(&server, &producer_envelope);
    pipe_ride(&mut d, &writer, "secret-ride", 1);
    let input = d.topic_log("secure-rides")[0].clone();
    assert_eq!(header(&input.headers, KEY_ID_HEADER), Some("k1"));
    let sealed = input.value.as_deref().unwrap();
    assert!(
        !sealed.windows(11).any(|w| w == b"secret-ride"),
        "the payload is encrypted"
    );
    let out = d.read_raw("secure-out");
    assert_eq!(out.len(), 1);
    assert_eq!(header(&out[0].headers, KEY_ID_HEADER), Some("k1"));
    assert_ne!(out[0].value, input.value, "a fresh nonce per record");
    assert_eq!(
        read_secure(&server, &app_envelope, &out[0]),
        ride("secret-ride")
    );
    assert!(d.read_raw("dlq").is_empty());
}

#[test]
fn rotation_keeps_old_records_readable_and_seals_with_the_new_key() {
    let server = server();
    let (old_key, new_key) = (
        Keyring::generate_key().unwrap(),
        Keyring::generate_key().unwrap(),
    );
    let app = Envelope::new(keyring(&[("k1", &old_key)]));
    let producer = Envelope::new(keyring(&[("k1", &old_key)]));
    let mut d = encrypted_app(&server, &app);
    let writer = secure_writer(&server, &producer);
    pipe_ride(&mut d, &writer, "before", 1);
    // Readers first: the app learns k2 and seals with it; old records still open.
    app.replace_keyring(keyring(&[("k2", &new_key), ("k1", &old_key)]));
    pipe_ride(&mut d, &writer, "during", 2);
    // Then writers.
    producer.replace_keyring(keyring(&[("k2", &new_key), ("k1", &old_key)]));
    pipe_ride(&mut d, &writer, "after", 3);
    let input_keys: Vec<_> = d
        .topic_log("secure-rides")
        .iter()
        .map(|r| header(&r.headers, KEY_ID_HEADER).unwrap().to_owned())
        .collect();
    assert_eq!(input_keys, ["k1", "k1", "k2"]);
    let out = d.read_raw("secure-out");
    let out_keys: Vec<_> = out
        .iter()
        .map(|r| header(&r.headers, KEY_ID_HEADER).unwrap())
        .collect();
    assert_eq!(out_keys, ["k1", "k2", "k2"]);
    let ids: Vec<_> = out
        .iter()
        .map(|r| read_secure(&server, &app, r).id)
        .collect();
    assert_eq!(ids, ["before", "during", "after"]);
    // Once k1 is retired, a record still sealed with it is reported, not garbled.
    app.replace_keyring(keyring(&[("k2", &new_key)]));
    let stale = d.topic_log("secure-rides")[0].clone();
    d.pipe_raw(
        "secure-rides",
        Some(b"k".to_vec()),
        stale.value.clone(),
        4,
        stale.headers.clone(),
    )
    .unwrap();
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        header(&dlq[0].headers, "strom.error"),
        Some("invalid payload: unknown encryption key `k1`")
    );
    assert!(d.read_raw("secure-out").is_empty());
}

#[test]
fn wrong_key_tampering_and_missing_headers_go_to_the_dead_letter_topic() {
    let server = server();
    let app = Envelope::new(keyring(&[("k1", &Keyring::generate_key().unwrap())]));
    // A producer with another key under the same id.
    let impostor = Envelope::new(keyring(&[("k1", &Keyring::generate_key().unwrap())]));
    let mut d = encrypted_app(&server, &app);
    pipe_ride(&mut d, &secure_writer(&server, &impostor), "wrong-key", 1);
    // A genuine record, then the same bytes with one bit flipped, then without header.
    let mut headers = Headers::new();
    let genuine = secure_writer(&server, &app)
        .serialize_with_headers(&ride("genuine"), &mut headers)
        .unwrap()
        .unwrap();
    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    for (ts, (value, headers)) in [
        (genuine, headers.clone()),
        (tampered, headers.clone()),
        (Keyring::generate_key().unwrap().into_bytes(), vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        d.pipe_raw(
            "secure-rides",
            Some(b"k".to_vec()),
            Some(value),
            2 + ts as i64,
            headers,
        )
        .unwrap();
    }
    let out = d.read_raw("secure-out");
    assert_eq!(out.len(), 1, "only the genuine record goes downstream");
    assert_eq!(read_secure(&server, &app, &out[0]).id, "genuine");
    let dlq = d.read_raw("dlq");
    let reasons: Vec<_> = dlq
        .iter()
        .map(|r| header(&r.headers, "strom.error").unwrap())
        .collect();
    let sealed_does_not_open =
        "invalid payload: payload sealed with key `k1` does not open: wrong key or tampered data";
    assert_eq!(
        reasons,
        [
            sealed_does_not_open,
            sealed_does_not_open,
            "invalid payload: no strom.encryption.key header: the payload is not encrypted or lost its key id",
        ]
    );
    let inputs = d.topic_log("secure-rides").to_vec();
    for (dead, original) in dlq.iter().zip([&inputs[0], &inputs[2], &inputs[3]]) {
        assert_eq!(dead.value, original.value, "the original bytes, untouched");
        assert_eq!(
            header(&dead.headers, "strom.error.kind"),
            Some("deserialization")
        );
    }
}

// ---- Registry outage -----------------------------------------------------------------

#[test]
fn an_unreachable_registry_pauses_the_partition_instead_of_dead_lettering() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(strom_registry::store::MemoryStore::new());
    let registry = runtime
        .block_on(strom_registry::Registry::open(store))
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server {
        registry: SchemaRegistry::connect_url(&format!("http://{addr}")).unwrap(),
        runtime,
    };
    // Serves `registry` on `listener` until the returned sender fires.
    let serve = |listener| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = server.runtime.spawn(strom_registry::api::serve(
            listener,
            Arc::clone(&registry),
            async {
                let _ = stopped.await;
            },
        ));
        (stop, task)
    };
    let (stop, task) = serve(listener);
    let (b, rides) = read_rides::<RideV1>(&server, RIDE_V1);
    rides
        .map_values(|r: &RideV1| r.id.clone())
        .to("out", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), dead_letters()).unwrap();
    // Written while the registry is up; the application has not fetched its schema.
    let framed = avro::<RideV1>(&server, "rides", RIDE_V1, SerdeConfig::default())
        .serialize(&ride("r1"))
        .unwrap();
    stop.send(()).unwrap();
    server.runtime.block_on(task).unwrap().unwrap();
    d.pipe_raw("rides", Some(b"k".to_vec()), Some(framed), 1, vec![])
        .unwrap();
    assert_eq!(d.paused_records(), 1, "waiting for the registry");
    assert!(d.read_raw("dlq").is_empty(), "not the record's fault");
    assert!(d.read_raw("out").is_empty());
    // Still down when the retry comes: paused again.
    d.advance_wall_clock(1_000).unwrap();
    assert_eq!(d.paused_records(), 1);
    // Back on the same address with the same store: the retry processes the record.
    let listener = server
        .runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .unwrap();
    let (_stop, _task) = serve(listener);
    d.advance_wall_clock(1_000).unwrap();
    assert_eq!(d.paused_records(), 0);
    assert_eq!(
        kv(&d.read_output("out", &StringSerde, &StringSerde).unwrap()),
        vec![("k".to_string(), "r1".to_string())]
    );
    assert!(d.read_raw("dlq").is_empty());
}
