//! Everything the registry decodes comes from outside — `_schemas` records (any Kafka
//! client may write to the topic), framed payloads, keyrings — and must never panic,
//! whatever the bytes.

use std::sync::Arc;

use proptest::prelude::*;
use strom_registry::client::wire;
use strom_registry::record::Record;
use strom_registry::store::{MemoryStore, Store};
use strom_registry::Registry;

/// Keys and values that are often almost right: valid JSON objects with the fields
/// Confluent's records have, wrong types and values mixed in.
fn near_record() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    let keytype = prop_oneof![
        Just("SCHEMA"),
        Just("CONFIG"),
        Just("MODE"),
        Just("DELETE_SUBJECT"),
        Just("CLEAR_SUBJECT"),
        Just("NOOP"),
        Just("OTHER")
    ];
    let subject = prop_oneof![Just("s".to_owned()), Just("t".to_owned()), "[a-z]{0,3}"];
    let number = prop_oneof![Just(-1i64), 0i64..4, Just(i64::from(i32::MAX) + 1)];
    let schema = prop_oneof![
        Just(r#""string""#.to_owned()),
        Just(r#"{"type":"record","name":"R","fields":[]}"#.to_owned()),
        Just("not json".to_owned()),
        Just(r#"{"type":"object"}"#.to_owned()),
        Just("syntax = \"proto3\"; message M {}".to_owned()),
    ];
    let schema_type = prop_oneof![Just("AVRO"), Just("JSON"), Just("PROTOBUF"), Just("XML")];
    let level = prop_oneof![Just("BACKWARD"), Just("NONE"), Just("bogus")];
    (
        keytype,
        subject,
        number.clone(),
        number,
        schema,
        schema_type,
        level,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(keytype, subject, version, id, schema, schema_type, level, deleted, tombstone)| {
                let key = serde_json::json!({
                    "keytype": keytype, "subject": subject, "version": version, "magic": 1
                });
                let value = serde_json::json!({
                    "subject": subject, "version": version, "id": id, "schemaType": schema_type,
                    "schema": schema, "deleted": deleted, "compatibilityLevel": level,
                    "mode": level, "references": [{"name": "x", "subject": "s", "version": 1}]
                });
                (
                    key.to_string().into_bytes(),
                    (!tombstone).then(|| value.to_string().into_bytes()),
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..64),
                                value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let _ = Record::decode(&key, value.as_deref());
        let _ = wire::decode(&key);
        let _ = wire::decode_message_indexes(&key);
        let _ = strom_registry::client::encryption::Keyring::parse(&String::from_utf8_lossy(&key));
    }

    #[test]
    fn near_records_replay_without_panicking(records in proptest::collection::vec(near_record(), 0..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let store = MemoryStore::new();
            store.append(records).await.expect("append");
            let registry = Registry::open(Arc::new(store)).await.expect("opens");
            // The state answers queries whatever it was built from.
            registry.read(|m| {
                for subject in m.subjects("", true, false) {
                    let _ = m.versions(&subject, true, false);
                }
                m.contexts()
            });
        });
    }
}
