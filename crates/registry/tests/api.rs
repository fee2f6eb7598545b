//! The REST API end to end in process: requests through the axum router (tower
//! `oneshot`), state in a [`MemoryStore`] that survives "restarts".

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use strom_registry::api::{router, CONTENT_TYPE};
use strom_registry::record::{Record, RecordKey};
use strom_registry::store::{MemoryStore, Store};
use strom_registry::Registry;
use tower::ServiceExt;

struct Api {
    store: MemoryStore,
    app: Router,
}

impl Api {
    async fn new() -> Api {
        Api::on(MemoryStore::new()).await
    }

    /// A registry rebuilt from `store`: what a restart does.
    async fn on(store: MemoryStore) -> Api {
        let registry = Registry::open(Arc::new(store.clone()))
            .await
            .expect("registry opens");
        Api {
            store,
            app: router(registry),
        }
    }

    async fn restart(self) -> Api {
        Api::on(self.store).await
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/vnd.schemaregistry.v1+json");
        let request = match body {
            Some(body) => request.body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE),
            "{method} {uri}"
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn ok(&self, method: &str, uri: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, uri, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}: {value}");
        value
    }

    /// Asserts an error answer with this Confluent code (and the matching status).
    async fn err(&self, method: &str, uri: &str, body: Option<Value>, code: u64) {
        let (status, value) = self.call(method, uri, body).await;
        assert_eq!(value["error_code"], json!(code), "{method} {uri}: {value}");
        let expected_status = if code >= 10_000 { code / 100 } else { code };
        assert_eq!(
            u64::from(status.as_u16()),
            expected_status,
            "{method} {uri}"
        );
        assert!(value["message"].is_string());
    }

    async fn register(&self, subject: &str, schema: &str) -> i64 {
        let value = self
            .ok(
                "POST",
                &format!("/subjects/{subject}/versions"),
                Some(json!({ "schema": schema })),
            )
            .await;
        value["id"].as_i64().expect("id")
    }
}

fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
}

fn v1() -> String {
    record("Ride", r#"{"name":"id","type":"string"}"#)
}

fn v2() -> String {
    record(
        "Ride",
        r#"{"name":"id","type":"string"},{"name":"km","type":"int","default":0}"#,
    )
}

fn v2_no_default() -> String {
    record(
        "Ride",
        r#"{"name":"id","type":"string"},{"name":"km","type":"int"}"#,
    )
}

#[tokio::test]
async fn register_lookup_and_read_back() {
    let api = Api::new().await;
    let id = api.register("rides-value", &v1()).await;
    assert_eq!(id, 1);
    // Identical schema again: same id, no new version.
    assert_eq!(api.register("rides-value", &v1()).await, 1);
    assert_eq!(
        api.ok("GET", "/subjects/rides-value/versions", None).await,
        json!([1])
    );
    // The same schema under another subject: the same global id.
    assert_eq!(api.register("other", &v1()).await, 1);
    let latest = api
        .ok("GET", "/subjects/rides-value/versions/latest", None)
        .await;
    assert_eq!(latest["id"], json!(1));
    assert_eq!(latest["version"], json!(1));
    assert_eq!(latest["subject"], json!("rides-value"));
    assert_eq!(latest["schema"], json!(v1()));
    assert!(latest.get("schemaType").is_none(), "AVRO is implied");
    assert_eq!(
        api.ok("GET", "/subjects/rides-value/versions/-1", None)
            .await,
        latest
    );
    let by_id = api.ok("GET", "/schemas/ids/1", None).await;
    assert_eq!(by_id["schema"], json!(v1()));
    let raw = api.ok("GET", "/schemas/ids/1/schema", None).await;
    assert_eq!(raw["name"], json!("Ride"));
    let raw = api
        .ok("GET", "/subjects/rides-value/versions/1/schema", None)
        .await;
    assert_eq!(raw["type"], json!("record"));
    assert_eq!(
        api.ok("GET", "/schemas/ids/1/subjects", None).await,
        json!(["other", "rides-value"])
    );
    assert_eq!(
        api.ok("GET", "/schemas/ids/1/versions", None).await,
        json!([{"subject":"other","version":1},{"subject":"rides-value","version":1}])
    );
    let found = api
        .ok(
            "POST",
            "/subjects/rides-value",
            Some(json!({ "schema": v1() })),
        )
        .await;
    assert_eq!(
        (found["id"].clone(), found["version"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        api.ok("GET", "/subjects", None).await,
        json!(["other", "rides-value"])
    );
    assert_eq!(
        api.ok("GET", "/subjects?subjectPrefix=rid", None).await,
        json!(["rides-value"])
    );
    let all = api.ok("GET", "/schemas", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert_eq!(
        api.ok("GET", "/schemas/types", None).await,
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    assert_eq!(api.ok("GET", "/", None).await, json!({}));
}

#[tokio::test]
async fn errors_carry_confluent_codes() {
    let api = Api::new().await;
    api.register("s", &v1()).await;
    api.err("GET", "/subjects/nope/versions", None, 40401).await;
    api.err("GET", "/subjects/nope/versions/1", None, 40401)
        .await;
    api.err("GET", "/subjects/s/versions/9", None, 40402).await;
    api.err("GET", "/schemas/ids/99", None, 40403).await;
    api.err("GET", "/schemas/ids/abc", None, 40403).await;
    api.err(
        "POST",
        "/subjects/s",
        Some(json!({ "schema": v2() })),
        40403,
    )
    .await;
    api.err(
        "POST",
        "/subjects/nope",
        Some(json!({ "schema": v1() })),
        40401,
    )
    .await;
    for bad in ["0", "-2", "x", "2147483648"] {
        api.err("GET", &format!("/subjects/s/versions/{bad}"), None, 42202)
            .await;
    }
    for schema in ["{", r#"{"type":"nope"}"#, ""] {
        api.err(
            "POST",
            "/subjects/s/versions",
            Some(json!({ "schema": schema })),
            42201,
        )
        .await;
    }
    api.err(
        "POST",
        "/subjects/s/versions",
        Some(json!({ "schema": v1(), "schemaType": "XML" })),
        422,
    )
    .await;
    api.err(
        "PUT",
        "/config",
        Some(json!({ "compatibility": "SOMETIMES" })),
        42203,
    )
    .await;
    api.err("PUT", "/mode", Some(json!({ "mode": "SLEEPY" })), 42204)
        .await;
    api.err("GET", "/config/s", None, 40408).await;
    api.err("GET", "/mode/s", None, 40409).await;
    api.err(
        "POST",
        "/subjects/s/versions",
        Some(json!({ "schema": v2_no_default() })),
        409,
    )
    .await;
    // Unknown paths (newer clients probe /associations) are plain 404s.
    api.err("GET", "/associations/resources/abc", None, 404)
        .await;
    api.err("GET", "/no/such/path", None, 404).await;
    api.err("PATCH", "/subjects", None, 405).await;
}

#[tokio::test]
async fn percent_encoded_subjects() {
    let api = Api::new().await;
    api.register("a%2Fb%20c", &v1()).await;
    assert_eq!(api.ok("GET", "/subjects", None).await, json!(["a/b c"]));
    let latest = api
        .ok("GET", "/subjects/a%2Fb%20c/versions/latest", None)
        .await;
    assert_eq!(latest["subject"], json!("a/b c"));
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let api = Api::new().await;
    api.ok("PUT", "/config/s", Some(json!({"compatibility":"NONE"})))
        .await;
    let first = api.register("s", &v1()).await;
    api.register("s", &v2()).await;
    api.register("s", &record("Other", "")).await;
    // Permanent before soft: refused.
    api.err(
        "DELETE",
        "/subjects/s/versions/1?permanent=true",
        None,
        40407,
    )
    .await;
    assert_eq!(
        api.ok("DELETE", "/subjects/s/versions/1", None).await,
        json!(1)
    );
    api.err("DELETE", "/subjects/s/versions/1", None, 40406)
        .await;
    assert_eq!(
        api.ok("GET", "/subjects/s/versions", None).await,
        json!([2, 3])
    );
    assert_eq!(
        api.ok("GET", "/subjects/s/versions?deleted=true", None)
            .await,
        json!([1, 2, 3])
    );
    assert_eq!(
        api.ok("GET", "/subjects/s/versions?deletedOnly=true", None)
            .await,
        json!([1])
    );
    api.err("GET", "/subjects/s/versions/1", None, 40402).await;
    let deleted = api
        .ok("GET", "/subjects/s/versions/1?deleted=true", None)
        .await;
    assert_eq!(deleted["id"], json!(first));
    // Soft-deleted schemas stay readable by id.
    api.ok("GET", &format!("/schemas/ids/{first}"), None).await;
    // Whole subject.
    api.err("DELETE", "/subjects/s?permanent=true", None, 40405)
        .await;
    assert_eq!(api.ok("DELETE", "/subjects/s", None).await, json!([2, 3]));
    api.err("DELETE", "/subjects/s", None, 40404).await;
    api.err("GET", "/subjects/s/versions", None, 40401).await;
    assert_eq!(api.ok("GET", "/subjects", None).await, json!([]));
    assert_eq!(
        api.ok("GET", "/subjects?deleted=true", None).await,
        json!(["s"])
    );
    api.ok("GET", &format!("/schemas/ids/{first}"), None).await;
    assert_eq!(
        api.ok("DELETE", "/subjects/s?permanent=true", None).await,
        json!([1, 2, 3])
    );
    api.err("GET", &format!("/schemas/ids/{first}"), None, 40403)
        .await;
    api.err("GET", "/config/s", None, 40408).await;
    // Ids are not reused; versions start over in the emptied subject.
    let again = api.register("s", &record("New", "")).await;
    assert_eq!(again, 4);
    assert_eq!(
        api.ok("GET", "/subjects/s/versions", None).await,
        json!([1])
    );
    // A permanently deleted schema registered again gets a new id, also after a restart.
    let api = api.restart().await;
    assert_eq!(api.register("t", &v2()).await, 5);
}

#[tokio::test]
async fn compatibility_levels_and_checks() {
    let api = Api::new().await;
    assert_eq!(
        api.ok("GET", "/config", None).await,
        json!({"compatibilityLevel":"BACKWARD"})
    );
    api.register("s", &v1()).await;
    let check = |body: String, verbose: bool| {
        let uri = format!(
            "/compatibility/subjects/s/versions/latest{}",
            if verbose { "?verbose=true" } else { "" }
        );
        (uri, json!({ "schema": body }))
    };
    let (uri, body) = check(v2(), false);
    assert_eq!(
        api.ok("POST", &uri, Some(body)).await,
        json!({"is_compatible": true})
    );
    let (uri, body) = check(v2_no_default(), true);
    let answer = api.ok("POST", &uri, Some(body)).await;
    assert_eq!(answer["is_compatible"], json!(false));
    assert!(!answer["messages"].as_array().expect("messages").is_empty());
    // Every level by name; FORWARD accepts a field without default.
    for level in [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] {
        assert_eq!(
            api.ok("PUT", "/config/s", Some(json!({"compatibility": level})))
                .await,
            json!({"compatibility": level})
        );
        assert_eq!(
            api.ok("GET", "/config/s", None).await,
            json!({"compatibilityLevel": level})
        );
        let compatible = api
            .ok(
                "POST",
                "/compatibility/subjects/s/versions",
                Some(json!({"schema": v2_no_default()})),
            )
            .await["is_compatible"]
            .clone();
        let expected = matches!(level, "NONE" | "FORWARD" | "FORWARD_TRANSITIVE");
        assert_eq!(compatible, json!(expected), "{level}");
    }
    // Lower case accepted; global config; defaultToGlobal.
    api.ok("PUT", "/config", Some(json!({"compatibility": "full"})))
        .await;
    assert_eq!(
        api.ok("GET", "/config", None).await,
        json!({"compatibilityLevel":"FULL"})
    );
    assert_eq!(
        api.ok("DELETE", "/config/s", None).await,
        json!({"compatibilityLevel":"FULL_TRANSITIVE"})
    );
    assert_eq!(
        api.ok("GET", "/config/s?defaultToGlobal=true", None).await,
        json!({"compatibilityLevel":"FULL"})
    );
    assert_eq!(
        api.ok("DELETE", "/config", None).await,
        json!({"compatibilityLevel":"FULL"})
    );
    assert_eq!(
        api.ok("GET", "/config", None).await,
        json!({"compatibilityLevel":"BACKWARD"})
    );
    // A subject with no versions is compatible with anything.
    assert_eq!(
        api.ok(
            "POST",
            "/compatibility/subjects/empty/versions",
            Some(json!({"schema": v1()}))
        )
        .await,
        json!({"is_compatible": true})
    );
}

#[tokio::test]
async fn transitive_levels_check_every_live_version() {
    let api = Api::new().await;
    api.ok("PUT", "/config/s", Some(json!({"compatibility":"NONE"})))
        .await;
    api.register("s", &record("R", r#"{"name":"a","type":"int"}"#))
        .await;
    api.register("s", &record("R", r#"{"name":"a","type":"string"}"#))
        .await;
    let new = record(
        "R",
        r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":1}"#,
    );
    api.ok(
        "PUT",
        "/config/s",
        Some(json!({"compatibility":"BACKWARD"})),
    )
    .await;
    api.ok(
        "POST",
        "/compatibility/subjects/s/versions",
        Some(json!({"schema": new})),
    )
    .await;
    api.ok(
        "PUT",
        "/config/s",
        Some(json!({"compatibility":"BACKWARD_TRANSITIVE"})),
    )
    .await;
    let answer = api
        .ok(
            "POST",
            "/compatibility/subjects/s/versions",
            Some(json!({"schema": new})),
        )
        .await;
    assert_eq!(answer["is_compatible"], json!(false));
    // Soft-deleted versions are not checked.
    api.ok("DELETE", "/subjects/s/versions/1", None).await;
    let answer = api
        .ok(
            "POST",
            "/compatibility/subjects/s/versions",
            Some(json!({"schema": new})),
        )
        .await;
    assert_eq!(answer["is_compatible"], json!(true));
}

#[tokio::test]
async fn modes_guard_writes() {
    let api = Api::new().await;
    assert_eq!(
        api.ok("GET", "/mode", None).await,
        json!({"mode":"READWRITE"})
    );
    api.register("s", &v1()).await;
    api.ok("PUT", "/mode/s", Some(json!({"mode":"READONLY"})))
        .await;
    api.err(
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": v2()})),
        42205,
    )
    .await;
    api.err("DELETE", "/subjects/s/versions/1", None, 42205)
        .await;
    api.register("other", &v2()).await;
    assert_eq!(
        api.ok("DELETE", "/mode/s", None).await,
        json!({"mode":"READONLY"})
    );
    api.register("s", &v2()).await;
    // IMPORT: ids and versions chosen by the client.
    api.ok("PUT", "/mode", Some(json!({"mode":"IMPORT"}))).await;
    let imported = api
        .ok(
            "POST",
            "/subjects/imported/versions",
            Some(json!({"schema": record("Imp", ""), "id": 100, "version": 7})),
        )
        .await;
    assert_eq!(imported, json!({"id": 100, "version": 7}));
    api.ok("DELETE", "/mode", None).await;
    assert_eq!(api.register("next", &record("Next", "")).await, 101);
}

#[tokio::test]
async fn references_resolve_and_block_deletes() {
    let api = Api::new().await;
    let address = r#"{"type":"record","name":"Address","namespace":"acme","fields":[{"name":"street","type":"string"}]}"#;
    api.register("address", address).await;
    let person = r#"{"type":"record","name":"Person","namespace":"acme","fields":[{"name":"home","type":"Address"}]}"#;
    let refs = json!([{"name":"acme.Address","subject":"address","version":1}]);
    let answer = api
        .ok(
            "POST",
            "/subjects/person/versions",
            Some(json!({"schema": person, "references": refs})),
        )
        .await;
    let person_id = answer["id"].clone();
    assert_eq!(
        api.ok("GET", "/subjects/address/versions/1/referencedby", None)
            .await,
        json!([person_id])
    );
    let fetched = api
        .ok("GET", &format!("/schemas/ids/{person_id}"), None)
        .await;
    assert_eq!(fetched["references"], refs);
    api.err("DELETE", "/subjects/address/versions/1", None, 42206)
        .await;
    api.err("DELETE", "/subjects/address", None, 42206).await;
    api.err(
        "POST",
        "/subjects/person2/versions",
        Some(json!({"schema": person})),
        42201,
    )
    .await;
    let missing = json!([{"name":"acme.Address","subject":"nope","version":1}]);
    api.err(
        "POST",
        "/subjects/person2/versions",
        Some(json!({"schema": person, "references": missing})),
        42201,
    )
    .await;
}

#[tokio::test]
async fn json_schema_and_protobuf_subjects() {
    let api = Api::new().await;
    let schema =
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
    let answer = api
        .ok(
            "POST",
            "/subjects/j/versions",
            Some(json!({"schema": schema, "schemaType": "JSON"})),
        )
        .await;
    let fetched = api
        .ok("GET", &format!("/schemas/ids/{}", answer["id"]), None)
        .await;
    assert_eq!(fetched["schemaType"], json!("JSON"));
    let proto = "syntax = \"proto3\";\npackage acme;\nimport \"google/protobuf/timestamp.proto\";\nmessage Ride { string id = 1; google.protobuf.Timestamp at = 2; }\n";
    let answer = api
        .ok(
            "POST",
            "/subjects/p/versions",
            Some(json!({"schema": proto, "schemaType": "PROTOBUF"})),
        )
        .await;
    let id = answer["id"].clone();
    let text = api.ok("GET", &format!("/schemas/ids/{id}"), None).await;
    assert_eq!(text["schema"], json!(proto));
    assert_eq!(text["schemaType"], json!("PROTOBUF"));
    let serialized = api
        .ok("GET", &format!("/schemas/ids/{id}?format=serialized"), None)
        .await;
    let base64 = serialized["schema"].as_str().expect("schema").to_owned();
    assert!(!base64.contains("message"), "a base64 descriptor: {base64}");
    // The descriptor form of the same schema is the same schema (same id).
    let again = api
        .ok(
            "POST",
            "/subjects/p/versions",
            Some(json!({"schema": base64, "schemaType": "PROTOBUF"})),
        )
        .await;
    assert_eq!(again["id"], id);
    // Registered as a descriptor (the Python client's way), read back as text.
    let descriptor_only = "syntax = \"proto3\";\npackage other;\nmessage Only { int64 n = 1; }\n";
    let serialized = api
        .ok(
            "POST",
            "/subjects/q/versions",
            Some(json!({"schema": descriptor_only, "schemaType": "PROTOBUF"})),
        )
        .await;
    let base64 = api
        .ok(
            "GET",
            &format!("/schemas/ids/{}?format=serialized", serialized["id"]),
            None,
        )
        .await["schema"]
        .clone();
    let from_descriptor = api
        .ok(
            "POST",
            "/subjects/r/versions",
            Some(json!({"schema": base64, "schemaType": "PROTOBUF"})),
        )
        .await;
    assert_eq!(
        from_descriptor["id"], serialized["id"],
        "one schema, one id"
    );
    let unseen = "Cgd4LnByb3RvEgF4Ig4KAU0SCQoBYRgBIAEoCQ==";
    let answer = api
        .ok(
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": unseen, "schemaType": "PROTOBUF"})),
        )
        .await;
    let text = api
        .ok("GET", &format!("/schemas/ids/{}", answer["id"]), None)
        .await;
    let text = text["schema"].as_str().expect("text").to_owned();
    assert!(
        text.contains("message M {") && text.contains("string a = 1;"),
        "{text}"
    );
    let raw = api.ok("GET", "/subjects/p/versions/1/schema", None).await;
    assert_eq!(raw, json!(proto));
}

#[tokio::test]
async fn state_survives_a_restart() {
    let api = Api::new().await;
    api.register("a", &v1()).await;
    api.register("a", &v2()).await;
    api.ok("PUT", "/config/a", Some(json!({"compatibility":"FULL"})))
        .await;
    api.ok("PUT", "/mode/b", Some(json!({"mode":"READONLY"})))
        .await;
    api.ok("DELETE", "/subjects/a/versions/1", None).await;
    let api = api.restart().await;
    assert_eq!(
        api.ok("GET", "/subjects/a/versions", None).await,
        json!([2])
    );
    assert_eq!(
        api.ok("GET", "/config/a", None).await,
        json!({"compatibilityLevel":"FULL"})
    );
    assert_eq!(
        api.ok("GET", "/mode/b", None).await,
        json!({"mode":"READONLY"})
    );
    api.ok("GET", "/schemas/ids/1", None).await;
    assert_eq!(api.register("a", &v2()).await, 2);
    assert_eq!(api.register("c", &record("C", "")).await, 3);
}

#[tokio::test]
async fn replays_records_written_by_confluent() {
    // Records as a Confluent registry writes them to _schemas (an export).
    let store = MemoryStore::new();
    let raw = |k: &str, v: Option<&str>| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()));
    store
        .append(vec![
            raw(r#"{"keytype":"NOOP","magic":0}"#, Some("{}")),
            raw(
                r#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#,
                Some(r#"{"subject":"t-value","version":1,"id":21,"schema":"\"string\"","deleted":false}"#),
            ),
            raw(
                r#"{"keytype":"SCHEMA","subject":"t-value","version":2,"magic":1}"#,
                Some(r#"{"subject":"t-value","version":2,"id":22,"schemaType":"JSON","schema":"{\"type\":\"string\"}","deleted":false}"#),
            ),
            raw(
                r#"{"keytype":"CONFIG","subject":"t-value","magic":0}"#,
                Some(r#"{"compatibilityLevel":"NONE"}"#),
            ),
            raw(
                r#"{"keytype":"SCHEMA","subject":"gone","version":1,"magic":1}"#,
                Some(r#"{"subject":"gone","version":1,"id":5,"schema":"\"int\"","deleted":true}"#),
            ),
            raw(r#"{"keytype":"SCHEMA","subject":"gone","version":1,"magic":1}"#, None),
            raw(r#"{"keytype":"SOMETHING_NEW","magic":0}"#, Some("{}")),
            raw("not json", Some("x")),
        ])
        .await
        .expect("append");
    let api = Api::on(store).await;
    assert_eq!(api.ok("GET", "/subjects", None).await, json!(["t-value"]));
    assert_eq!(
        api.ok("GET", "/subjects/t-value/versions/2", None).await["schemaType"],
        json!("JSON")
    );
    assert_eq!(
        api.ok("GET", "/config/t-value", None).await,
        json!({"compatibilityLevel":"NONE"})
    );
    api.err("GET", "/schemas/ids/5", None, 40403).await;
    assert_eq!(api.register("new", &record("N", "")).await, 23);
    // What strom writes decodes as Confluent's format.
    let records = api.store.records();
    let (key, value) = records.last().expect("a record");
    assert_eq!(
        RecordKey::decode(key).expect("key"),
        Some(RecordKey::Schema {
            subject: "new".into(),
            version: 1
        })
    );
    let decoded = Record::decode(key, value.as_deref()).expect("record");
    assert!(matches!(decoded, Some(Record::Schema(v)) if v.id == 23));
}

#[tokio::test]
async fn contexts_and_metadata() {
    let api = Api::new().await;
    assert_eq!(api.ok("GET", "/contexts", None).await, json!(["."]));
    api.register(":.staging:rides", &v1()).await;
    assert_eq!(
        api.ok("GET", "/contexts", None).await,
        json!([".", ".staging"])
    );
}

/// alice may do anything; bob may only read subjects starting with `public`.
struct TestGuard;

impl strom_registry::auth::Guard for TestGuard {
    fn authenticate(&self, user: &str, password: &str) -> bool {
        matches!(
            (user, password),
            ("alice", "a-secret") | ("bob", "b-secret")
        )
    }

    fn authorize(
        &self,
        user: &str,
        _host: &str,
        subject: Option<&str>,
        access: strom_registry::auth::Access,
    ) -> bool {
        user == "alice"
            || (access == strom_registry::auth::Access::Read
                && subject.is_none_or(|s| s.starts_with("public")))
    }
}

#[tokio::test]
async fn basic_auth_and_subject_permissions() {
    use base64::Engine;
    let registry = Registry::open(Arc::new(MemoryStore::new()))
        .await
        .expect("registry opens");
    let app = strom_registry::api::router_with_guard(registry, Some(Arc::new(TestGuard)));
    let call = |method: &str, uri: &str, user: Option<(&str, &str)>, body: Option<Value>| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some((user, password)) = user {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("authorization", format!("Basic {token}"));
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let app = app.clone();
        let request = request.body(body).expect("request");
        async move {
            let response = app.oneshot(request).await.expect("response");
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").is_some();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                challenge,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let alice = Some(("alice", "a-secret"));
    let bob = Some(("bob", "b-secret"));
    let (status, challenge, body) = call("GET", "/subjects", None, None).await;
    assert_eq!((status, challenge), (StatusCode::UNAUTHORIZED, true));
    assert_eq!(body["error_code"], json!(401));
    let (status, _, _) = call("GET", "/subjects", Some(("alice", "wrong")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let schema = json!({ "schema": v1() });
    for subject in ["public-rides", "private"] {
        let (status, _, body) = call(
            "POST",
            &format!("/subjects/{subject}/versions"),
            alice,
            Some(schema.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _, _) = call("GET", "/subjects/public-rides/versions/1", bob, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call("GET", "/subjects/private/versions/1", bob, None).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::FORBIDDEN, json!(40301))
    );
    let (status, _, _) = call("POST", "/subjects/public-rides/versions", bob, Some(schema)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call("GET", "/schemas/ids/1", bob, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rest_client_against_a_bound_port() {
    use strom_registry::client::{ClientConfig, ClientError, RegistryClient};
    use strom_registry::types::{SchemaInput, SchemaType};
    let registry = Registry::open(Arc::new(MemoryStore::new()))
        .await
        .expect("registry opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(strom_registry::api::serve(listener, registry, async {
        let _ = stopped.await;
    }));
    let client = RegistryClient::new(&ClientConfig {
        url: format!("http://{addr}"),
        ..ClientConfig::default()
    })
    .expect("client");
    let input = |schema: String| SchemaInput {
        schema,
        schema_type: SchemaType::Avro,
        references: vec![],
    };
    let id = client
        .register("a/b value", &input(v1()), false)
        .await
        .expect("register");
    assert_eq!(client.schema_by_id(id).await.expect("by id").schema, v1());
    let (latest_id, version, schema) = client.version("a/b value", "latest").await.expect("latest");
    assert_eq!((latest_id, version, schema.schema), (id, 1, v1()));
    let (ok, messages) = client
        .check("a/b value", None, &input(v2_no_default()))
        .await
        .expect("check");
    assert!(!ok && !messages.is_empty());
    match client
        .register("a/b value", &input(v2_no_default()), false)
        .await
    {
        Err(ClientError::Registry {
            status: 409,
            code: 409,
            ..
        }) => {}
        other => panic!("expected a 409, got {other:?}"),
    }
    match client.schema_by_id(999).await {
        Err(ClientError::Registry {
            status: 404,
            code: 40403,
            ..
        }) => {}
        other => panic!("expected a 40403, got {other:?}"),
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}

/// What Kafka's log cleaner leaves of `records`: the last record of every key, in log
/// order; with `drop_tombstones`, tombstones too are gone (after delete.retention.ms).
fn compacted(
    records: &[(Vec<u8>, Option<Vec<u8>>)],
    drop_tombstones: bool,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut last = std::collections::HashMap::new();
    for (i, (key, _)) in records.iter().enumerate() {
        last.insert(key.clone(), i);
    }
    records
        .iter()
        .enumerate()
        .filter(|(i, (key, value))| last[key] == *i && !(drop_tombstones && value.is_none()))
        .map(|(_, r)| r.clone())
        .collect()
}

async fn snapshot(api: &Api) -> Vec<Value> {
    let mut out = vec![
        api.call("GET", "/subjects?deleted=true", None).await.1,
        api.call("GET", "/config", None).await.1,
        api.call("GET", "/mode", None).await.1,
    ];
    let subjects = out[0].as_array().cloned().unwrap_or_default();
    for subject in subjects {
        let s = subject.as_str().unwrap_or_default().to_owned();
        for uri in [
            format!("/subjects/{s}/versions?deleted=true"),
            format!("/subjects/{s}/versions"),
            format!("/config/{s}"),
            format!("/mode/{s}"),
        ] {
            out.push(api.call("GET", &uri, None).await.1);
        }
    }
    for id in 1..12 {
        out.push(api.call("GET", &format!("/schemas/ids/{id}"), None).await.1);
    }
    out
}

#[tokio::test]
async fn compacted_schemas_topic_replays_to_the_same_state() {
    let api = Api::new().await;
    api.ok("PUT", "/config/a", Some(json!({"compatibility":"NONE"})))
        .await;
    api.register("a", &v1()).await;
    api.register("a", &v2()).await;
    api.register("a", &record("X", "")).await;
    api.register("b", &v1()).await;
    api.ok("DELETE", "/subjects/a/versions/2", None).await;
    api.ok("DELETE", "/subjects/a", None).await;
    api.ok("DELETE", "/subjects/a?permanent=true", None).await;
    api.ok("PUT", "/config/a", Some(json!({"compatibility":"FULL"})))
        .await;
    api.register("a", &record("Y", "")).await;
    api.ok("PUT", "/config", Some(json!({"compatibility":"FORWARD"})))
        .await;
    api.ok("PUT", "/mode/b", Some(json!({"mode":"READONLY"})))
        .await;
    api.ok("DELETE", "/mode/b", None).await;
    api.ok("DELETE", "/subjects/b", None).await;
    let address = r#"{"type":"record","name":"Address","fields":[{"name":"s","type":"string"}]}"#;
    api.register("addr", address).await;
    let person = r#"{"type":"record","name":"P","fields":[{"name":"a","type":"Address"}]}"#;
    api.ok(
        "POST",
        "/subjects/person/versions",
        Some(json!({"schema": person, "references": [{"name":"Address","subject":"addr","version":1}]})),
    )
    .await;
    let expected = snapshot(&api).await;
    let records = api.store.records();
    for drop_tombstones in [false, true] {
        let store = MemoryStore::new();
        store
            .append(compacted(&records, drop_tombstones))
            .await
            .expect("append");
        let replayed = Api::on(store).await;
        assert_eq!(
            snapshot(&replayed).await,
            expected,
            "drop_tombstones={drop_tombstones}"
        );
        // The same schemas still get their ids.
        assert_eq!(replayed.register("c", &v1()).await, 1);
        let again = replayed
            .ok(
                "POST",
                "/subjects/person2/versions",
                Some(json!({"schema": person, "references": [{"name":"Address","subject":"addr","version":1}]})),
            )
            .await;
        assert_eq!(again["id"], json!(6));
    }
}
