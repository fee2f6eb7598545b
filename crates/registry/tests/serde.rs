//! The client-side serdes against a registry on a bound loopback port: Avro (with
//! evolution), JSON Schema (validation), Protobuf (nested types, imports registered as
//! references, well-known imports).

use apache_avro::types::Value as Avro;
use prost_reflect::{DynamicMessage, ReflectMessage, Value as Proto};
use serde_json::json;
use strom_registry::client::serde::{
    message_indexes, topic_subject, AvroDeserializer, AvroSerializer, JsonDeserializer,
    JsonSerializer, ProtobufDeserializer, ProtobufSerializer, SerdeConfig, SerdeError,
};
use strom_registry::client::{ClientConfig, ClientError, RegistryClient};

struct Server {
    client: RegistryClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn server() -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let addr = strom_registry::api::serve_in_memory(async {
        let _ = stopped.await;
    })
    .await
    .expect("registry");
    let client = RegistryClient::new(&ClientConfig {
        url: format!("http://{addr}"),
        ..ClientConfig::default()
    })
    .expect("client");
    Server {
        client,
        stop: Some(stop),
    }
}

const RIDE_V1: &str = r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"string"}]}"#;
const RIDE_V2: &str = r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"string"},{"name":"km","type":"int","default":0}]}"#;

fn ride_v2(id: &str, km: i32) -> Avro {
    Avro::Record(vec![
        ("id".into(), Avro::String(id.into())),
        ("km".into(), Avro::Int(km)),
    ])
}

#[tokio::test]
async fn avro_round_trip_and_evolution() {
    let server = server().await;
    let subject = topic_subject("rides", false);
    assert_eq!(subject, "rides-value");
    let v1 = AvroSerializer::new(
        server.client.clone(),
        RIDE_V1,
        vec![],
        SerdeConfig::default(),
    )
    .await
    .expect("v1 serializer");
    let framed_v1 = v1
        .serialize(
            &subject,
            Avro::Record(vec![("id".into(), Avro::String("a".into()))]),
        )
        .await
        .expect("serialize v1");
    assert_eq!(&framed_v1[..5], &[0, 0, 0, 0, 1]);
    let v2 = AvroSerializer::new(
        server.client.clone(),
        RIDE_V2,
        vec![],
        SerdeConfig::default(),
    )
    .await
    .expect("v2 serializer");
    let framed_v2 = v2
        .serialize(&subject, ride_v2("b", 7))
        .await
        .expect("serialize v2");
    assert_eq!(&framed_v2[..5], &[0, 0, 0, 0, 2]);
    // Without a reader schema: values as written.
    let plain = AvroDeserializer::new(server.client.clone(), None).expect("deserializer");
    assert_eq!(
        plain.deserialize(&framed_v2).await.expect("v2"),
        ride_v2("b", 7)
    );
    // A v2 reader reads v1 data with the default; a v1 reader drops km.
    let new_reader = AvroDeserializer::new(server.client.clone(), Some(RIDE_V2)).expect("reader");
    assert_eq!(
        new_reader.deserialize(&framed_v1).await.expect("evolve"),
        ride_v2("a", 0)
    );
    let old_reader = AvroDeserializer::new(server.client.clone(), Some(RIDE_V1)).expect("reader");
    assert_eq!(
        old_reader.deserialize(&framed_v2).await.expect("evolve"),
        Avro::Record(vec![("id".into(), Avro::String("b".into()))])
    );
    // A value that does not match the schema is refused before anything is sent.
    let wrong = v2
        .serialize(&subject, Avro::Record(vec![("id".into(), Avro::Int(1))]))
        .await;
    assert!(matches!(wrong, Err(SerdeError::Invalid(_))), "{wrong:?}");
    // Corrupt framing.
    assert!(matches!(
        plain.deserialize(&[1, 0, 0, 0, 1]).await,
        Err(SerdeError::Wire(_))
    ));
    assert!(matches!(
        plain.deserialize(&[0, 0, 0, 0, 99]).await,
        Err(SerdeError::Registry(ClientError::Registry {
            code: 40403,
            ..
        }))
    ));
}

#[tokio::test]
async fn avro_auto_register_off_and_use_latest() {
    let server = server().await;
    let lookup_only = SerdeConfig {
        auto_register: false,
        ..SerdeConfig::default()
    };
    let serializer = AvroSerializer::new(server.client.clone(), RIDE_V2, vec![], lookup_only)
        .await
        .expect("serializer");
    let missing = serializer.serialize("s", ride_v2("a", 1)).await;
    assert!(matches!(
        missing,
        Err(SerdeError::Registry(ClientError::Registry {
            code: 40401,
            ..
        }))
    ));
    let registered = AvroSerializer::new(
        server.client.clone(),
        RIDE_V1,
        vec![],
        SerdeConfig::default(),
    )
    .await
    .expect("serializer");
    registered
        .serialize(
            "s",
            Avro::Record(vec![("id".into(), Avro::String("x".into()))]),
        )
        .await
        .expect("registers v1");
    let latest = AvroSerializer::new(
        server.client.clone(),
        RIDE_V2,
        vec![],
        SerdeConfig {
            auto_register: false,
            use_latest_version: true,
            normalize: false,
        },
    )
    .await
    .expect("serializer");
    // Writes with the latest registered version (v1): km is not part of it.
    let framed = latest
        .serialize(
            "s",
            Avro::Record(vec![("id".into(), Avro::String("y".into()))]),
        )
        .await
        .expect("latest");
    assert_eq!(&framed[..5], &[0, 0, 0, 0, 1]);
}

#[tokio::test]
async fn json_schema_validates_both_ways() {
    let server = server().await;
    let schema = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#;
    let serializer = JsonSerializer::new(
        server.client.clone(),
        schema,
        vec![],
        SerdeConfig::default(),
    )
    .await
    .expect("serializer");
    let framed = serializer
        .serialize("j", &json!({"id": "a", "extra": 1}))
        .await
        .expect("valid");
    let deserializer = JsonDeserializer::new(server.client.clone());
    assert_eq!(
        deserializer.deserialize(&framed).await.expect("decode"),
        json!({"id": "a", "extra": 1})
    );
    assert!(matches!(
        serializer.serialize("j", &json!({"extra": 1})).await,
        Err(SerdeError::Invalid(_))
    ));
    // A payload that does not match its writer schema is refused on read too.
    let mut forged = framed[..5].to_vec();
    forged.extend_from_slice(br#"{"id": 5}"#);
    assert!(matches!(
        deserializer.deserialize(&forged).await,
        Err(SerdeError::Invalid(_))
    ));
}

fn proto_pool() -> prost_reflect::DescriptorPool {
    let files = [
        (
            "acme/address.proto",
            "syntax = \"proto3\";\npackage acme;\nmessage Address { string street = 1; }\n",
        ),
        (
            "acme/ride.proto",
            "syntax = \"proto3\";\npackage acme;\nimport \"acme/address.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\
             message Ride { string id = 1; map<string, string> tags = 2; Address from = 3; google.protobuf.Timestamp at = 4;\n\
             message Stop { string name = 1; } repeated Stop stops = 5; }\n\
             message Other { int32 x = 1; }\n",
        ),
    ];
    struct Files(Vec<(&'static str, &'static str)>);
    impl protox::file::FileResolver for Files {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            match self.0.iter().find(|(n, _)| *n == name) {
                Some((n, text)) => protox::file::File::from_source(n, text),
                None => protox::file::GoogleFileResolver::new().open_file(name),
            }
        }
    }
    let mut compiler = protox::Compiler::with_file_resolver(Files(files.to_vec()));
    compiler.open_file("acme/ride.proto").expect("compiles");
    compiler.descriptor_pool()
}

#[tokio::test]
async fn protobuf_round_trip_with_imports_and_nested_types() {
    let server = server().await;
    let pool = proto_pool();
    let ride = pool.get_message_by_name("acme.Ride").expect("Ride");
    let stop = pool.get_message_by_name("acme.Ride.Stop").expect("Stop");
    let other = pool.get_message_by_name("acme.Other").expect("Other");
    assert_eq!(message_indexes(&ride), [0]);
    // Ride's nested types are [TagsEntry (the map), Stop]: map entries count.
    assert_eq!(message_indexes(&stop), [0, 1]);
    assert_eq!(message_indexes(&other), [1]);
    let serializer = ProtobufSerializer::new(
        server.client.clone(),
        ride.parent_file(),
        SerdeConfig::default(),
    );
    let mut message = DynamicMessage::new(ride.clone());
    message.set_field_by_name("id", Proto::String("r1".into()));
    let mut from = DynamicMessage::new(pool.get_message_by_name("acme.Address").expect("Address"));
    from.set_field_by_name("street", Proto::String("Main St".into()));
    message.set_field_by_name("from", Proto::Message(from));
    let framed = serializer
        .serialize("rides-value", &message)
        .await
        .expect("serialize");
    let deserializer = ProtobufDeserializer::new(server.client.clone());
    let decoded = deserializer
        .deserialize(&framed)
        .await
        .expect("deserialize");
    assert_eq!(decoded.descriptor().full_name(), "acme.Ride");
    assert_eq!(
        decoded.get_field_by_name("id").as_deref(),
        Some(&Proto::String("r1".into()))
    );
    // A nested type and a second top-level type, same subject schema.
    let mut nested = DynamicMessage::new(stop);
    nested.set_field_by_name("name", Proto::String("depot".into()));
    let framed = serializer
        .serialize("stops-value", &nested)
        .await
        .expect("nested");
    let decoded = deserializer
        .deserialize(&framed)
        .await
        .expect("nested back");
    assert_eq!(decoded.descriptor().full_name(), "acme.Ride.Stop");
    let framed = serializer
        .serialize("other-value", &DynamicMessage::new(other))
        .await
        .expect("other");
    let decoded = deserializer.deserialize(&framed).await.expect("other back");
    assert_eq!(decoded.descriptor().full_name(), "acme.Other");
    // The import became a subject of its own, referenced by the main schema; the
    // well-known import did not.
    let (_, _, main) = server
        .client
        .version("rides-value", "latest")
        .await
        .expect("main");
    let names: Vec<_> = main.references.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["acme/address.proto"]);
    server
        .client
        .version("acme/address.proto", "1")
        .await
        .expect("dependency registered");
}
