//! Registry and serde costs: lookups served over loopback HTTP (what a client that
//! misses its cache pays), registrations of an already registered schema (what
//! auto-registering serializers without a cache send), and per-record serde costs
//! (Avro and Protobuf encode/decode in Confluent framing, AES-256-GCM sealing).
//!
//! `cargo bench -p strom-registry --bench registry`

use std::time::Duration;

use apache_avro::types::Value as Avro;
use criterion::{Criterion, Throughput};
use prost_reflect::{DynamicMessage, Value as Proto};
use serde_json::json;
use strom_registry::client::encryption::{Envelope, Keyring};
use strom_registry::client::serde::{
    AvroDeserializer, AvroSerializer, ProtobufDeserializer, ProtobufSerializer, SerdeConfig,
};
use strom_registry::client::{ClientConfig, Method, RegistryClient};

const RIDE: &str = r#"{"type":"record","name":"Ride","namespace":"acme","fields":[
  {"name":"id","type":"string"},{"name":"driver","type":"string"},{"name":"km","type":"double"},
  {"name":"fare_cents","type":"long"},{"name":"city","type":"string"},{"name":"at","type":"long"}]}"#;

const RIDE_PROTO: &str = "syntax = \"proto3\";\npackage acme;\nmessage Ride { string id = 1; string driver = 2; double km = 3; int64 fare_cents = 4; string city = 5; int64 at = 6; }\n";

fn ride() -> Avro {
    Avro::Record(vec![
        ("id".into(), Avro::String("ride-000042".into())),
        ("driver".into(), Avro::String("driver-1337".into())),
        ("km".into(), Avro::Double(12.5)),
        ("fare_cents".into(), Avro::Long(2350)),
        ("city".into(), Avro::String("Oslo".into())),
        ("at".into(), Avro::Long(1_765_000_000_000)),
    ])
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = runtime
        .block_on(strom_registry::api::serve_in_memory(std::future::pending()))
        .expect("registry");
    let client = RegistryClient::new(&ClientConfig {
        url: format!("http://{addr}"),
        ..ClientConfig::default()
    })
    .expect("client");
    let body = json!({ "schema": RIDE });
    runtime
        .block_on(client.request(Method::POST, "/subjects/rides-value/versions", Some(&body)))
        .expect("register");

    let mut group = c.benchmark_group("registry_http");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_schema_by_id", |b| {
        b.iter(|| {
            runtime
                .block_on(client.request(Method::GET, "/schemas/ids/1", None))
                .expect("lookup")
        })
    });
    group.bench_function("register_existing_schema", |b| {
        b.iter(|| {
            runtime
                .block_on(client.request(
                    Method::POST,
                    "/subjects/rides-value/versions",
                    Some(&body),
                ))
                .expect("register")
        })
    });
    group.finish();
    concurrent_lookups(&runtime, &client);

    let serializer = runtime
        .block_on(AvroSerializer::new(
            client.clone(),
            RIDE,
            vec![],
            SerdeConfig::default(),
        ))
        .expect("serializer");
    let deserializer = AvroDeserializer::new(client.clone(), None).expect("deserializer");
    let framed = runtime
        .block_on(serializer.serialize("rides-value", ride()))
        .expect("serialize");
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("serde_per_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("avro_encode", |b| {
        b.iter(|| {
            local
                .block_on(serializer.serialize("rides-value", ride()))
                .expect("encode")
        })
    });
    // Warm the writer-schema cache, then measure decoding alone.
    runtime
        .block_on(deserializer.deserialize(&framed))
        .expect("decode");
    group.bench_function("avro_decode", |b| {
        b.iter(|| {
            local
                .block_on(deserializer.deserialize(&framed))
                .expect("decode")
        })
    });

    let pool = {
        let mut compiler = protox::Compiler::with_file_resolver(Single);
        compiler.open_file("acme/ride.proto").expect("compiles");
        compiler.descriptor_pool()
    };
    let descriptor = pool.get_message_by_name("acme.Ride").expect("Ride");
    let mut message = DynamicMessage::new(descriptor.clone());
    message.set_field_by_name("id", Proto::String("ride-000042".into()));
    message.set_field_by_name("driver", Proto::String("driver-1337".into()));
    message.set_field_by_name("km", Proto::F64(12.5));
    message.set_field_by_name("fare_cents", Proto::I64(2350));
    message.set_field_by_name("city", Proto::String("Oslo".into()));
    message.set_field_by_name("at", Proto::I64(1_765_000_000_000));
    let proto_serializer = ProtobufSerializer::new(
        client.clone(),
        descriptor.parent_file(),
        SerdeConfig::default(),
    );
    let proto_deserializer = ProtobufDeserializer::new(client.clone());
    let proto_framed = runtime
        .block_on(proto_serializer.serialize("rides-proto", &message))
        .expect("serialize");
    runtime
        .block_on(proto_deserializer.deserialize(&proto_framed))
        .expect("decode");
    group.bench_function("protobuf_encode", |b| {
        b.iter(|| {
            local
                .block_on(proto_serializer.serialize("rides-proto", &message))
                .expect("encode")
        })
    });
    group.bench_function("protobuf_decode", |b| {
        b.iter(|| {
            local
                .block_on(proto_deserializer.deserialize(&proto_framed))
                .expect("decode")
        })
    });
    let envelope = Envelope::new(
        Keyring::parse(&format!("k1={}", Keyring::generate_key().expect("key"))).expect("keyring"),
    );
    let (key_id, sealed) = envelope.seal(&framed).expect("seal");
    group.bench_function("aes256gcm_seal_avro_record", |b| {
        b.iter(|| envelope.seal(&framed).expect("seal"))
    });
    group.bench_function("aes256gcm_open_avro_record", |b| {
        b.iter(|| envelope.open(Some(&key_id), &sealed).expect("open"))
    });
    group.finish();
}

/// Lookups by id from `CLIENTS` concurrent clients for a fixed time: the registry's
/// throughput rather than one client's latency (printed, not a criterion figure).
fn concurrent_lookups(runtime: &tokio::runtime::Runtime, client: &RegistryClient) {
    const CLIENTS: usize = 16;
    const RUN: Duration = Duration::from_secs(3);
    let total: u64 = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + RUN;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while tokio::time::Instant::now() < deadline {
                    client
                        .request(Method::GET, "/schemas/ids/1", None)
                        .await
                        .expect("lookup");
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("task");
        }
        total
    });
    println!(
        "registry_http/get_schema_by_id, {CLIENTS} concurrent clients: {:.0} lookups/s",
        total as f64 / RUN.as_secs_f64()
    );
}

struct Single;

impl protox::file::FileResolver for Single {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == "acme/ride.proto" {
            protox::file::File::from_source(name, RIDE_PROTO)
        } else {
            protox::file::GoogleFileResolver::new().open_file(name)
        }
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
