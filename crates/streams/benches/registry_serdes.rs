//! Per-record cost of strom-streams' schema-registry serdes, as a topology calls them
//! (synchronously, ids and writer schemas cached): typed Avro (`serde` ↔ Avro values ↔
//! bytes), Protobuf (dynamic messages), JSON Schema (validated both ways), and the
//! AES-256-GCM envelope around the Avro serde.
//!
//! `cargo bench -p strom-streams --features registry --bench registry_serdes`

use criterion::{Criterion, Throughput};
use prost_reflect::{DynamicMessage, Value as Proto};
use serde::{Deserialize, Serialize};
use strom_streams::prelude::{Headers, Serde};
use strom_streams::registry::{
    compile_proto, AvroSerde, EncryptedSerde, Envelope, JsonSchemaSerde, Keyring, ProtobufSerde,
    SchemaRegistry, SerdeConfig,
};

const RIDE_AVRO: &str = r#"{"type":"record","name":"Ride","namespace":"acme","fields":[
  {"name":"id","type":"string"},{"name":"driver","type":"string"},{"name":"km","type":"double"},
  {"name":"fare_cents","type":"long"},{"name":"city","type":"string"},{"name":"at","type":"long"}]}"#;
const RIDE_JSON: &str = r#"{"type":"object","properties":{"id":{"type":"string"},
  "driver":{"type":"string"},"km":{"type":"number"},"fare_cents":{"type":"integer"},
  "city":{"type":"string"},"at":{"type":"integer"}},
  "required":["id","driver","km","fare_cents","city","at"]}"#;
const RIDE_PROTO: &str = "syntax = \"proto3\";\npackage acme;\nmessage Ride { string id = 1; string driver = 2; double km = 3; int64 fare_cents = 4; string city = 5; int64 at = 6; }\n";

/// The same 6-field ride as the registry crate's benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ride {
    id: String,
    driver: String,
    km: f64,
    fare_cents: i64,
    city: String,
    at: i64,
}

fn ride() -> Ride {
    Ride {
        id: "ride-000042".into(),
        driver: "driver-1337".into(),
        km: 12.5,
        fare_cents: 2350,
        city: "Oslo".into(),
        at: 1_765_000_000_000,
    }
}

/// strom's registry in this process (in memory), on its own runtime.
fn registry(runtime: &tokio::runtime::Runtime) -> SchemaRegistry {
    let addr = runtime
        .block_on(strom_registry::api::serve_in_memory(std::future::pending()))
        .expect("registry");
    SchemaRegistry::connect_url(&format!("http://{addr}")).expect("client")
}

/// Measures `serialize` and `deserialize` of `serde` on `value` as `{name}_encode` and
/// `{name}_decode`, through the header-aware calls sources and sinks make.
fn encode_decode<T: 'static>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    serde: &impl Serde<T>,
    value: &T,
) {
    let mut headers = Headers::new();
    let bytes = serde
        .serialize_with_headers(value, &mut headers)
        .expect("serialize");
    serde
        .deserialize_with_headers(bytes.as_deref(), &headers)
        .expect("warm the writer-schema cache");
    group.bench_function(format!("{name}_encode"), |b| {
        b.iter(|| {
            serde
                .serialize_with_headers(value, &mut Headers::new())
                .expect("encode")
        })
    });
    group.bench_function(format!("{name}_decode"), |b| {
        b.iter(|| {
            serde
                .deserialize_with_headers(bytes.as_deref(), &headers)
                .expect("decode")
        })
    });
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = registry(&runtime);
    let mut group = c.benchmark_group("streams_serde_per_record");
    group.throughput(Throughput::Elements(1));

    let avro = AvroSerde::<Ride>::new(&registry, "rides-value", RIDE_AVRO, SerdeConfig::default())
        .expect("avro");
    encode_decode(&mut group, "avro", &avro, &ride());

    let descriptor = compile_proto("acme/ride.proto", RIDE_PROTO)
        .expect("compiles")
        .messages()
        .next()
        .expect("Ride");
    let mut message = DynamicMessage::new(descriptor.clone());
    let fixture = ride();
    for (field, value) in [
        ("id", Proto::String(fixture.id)),
        ("driver", Proto::String(fixture.driver)),
        ("km", Proto::F64(fixture.km)),
        ("fare_cents", Proto::I64(fixture.fare_cents)),
        ("city", Proto::String(fixture.city)),
        ("at", Proto::I64(fixture.at)),
    ] {
        message.set_field_by_name(field, value);
    }
    let protobuf = ProtobufSerde::new(&registry, "rides-proto", descriptor, SerdeConfig::default());
    encode_decode(&mut group, "protobuf", &protobuf, &message);

    let json =
        JsonSchemaSerde::<Ride>::new(&registry, "rides-json", RIDE_JSON, SerdeConfig::default())
            .expect("json");
    encode_decode(&mut group, "json_schema", &json, &ride());

    let keyring =
        Keyring::parse(&format!("k1={}", Keyring::generate_key().expect("key"))).expect("keyring");
    let encrypted = EncryptedSerde::new(
        AvroSerde::<Ride>::new(&registry, "rides-value", RIDE_AVRO, SerdeConfig::default())
            .expect("avro"),
        Envelope::new(keyring),
    );
    encode_decode(&mut group, "encrypted_avro", &encrypted, &ride());
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
