//! Confluent's REST API over [`Registry`], with axum.
//!
//! Every response is `application/vnd.schemaregistry.v1+json`; every error is
//! `{"error_code": N, "message": …}` with the HTTP status taken from the code. Request
//! bodies are read as bytes and parsed here, so any of the content types Confluent
//! clients send (`application/vnd.schemaregistry.v1+json`, `application/json`, or
//! none) is accepted. Subjects in paths are percent-decoded by the router.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Guard;
use crate::error::RegistryError;
use crate::format::protobuf::ProtoSchema;
use crate::format::Parsed;
use crate::model::{Model, VersionSpec};
use crate::registry::Registry;
use crate::types::{CompatibilityLevel, Mode, SchemaInput, SchemaReference, SchemaType};

/// The media type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Response, RegistryError>;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "schema registry request failed");
        }
        let body = json!({ "error_code": self.code(), "message": self.to_string() });
        (status, ok_json(body)).into_response()
    }
}

fn ok_json(body: Value) -> Response {
    let mut response = body.to_string().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The router with every endpoint, open to anyone; serve it with [`serve`] or embed it.
pub fn router(registry: Arc<Registry>) -> Router {
    router_with_guard(registry, None)
}

/// The router, behind `guard` (HTTP Basic and per-subject permissions) if given.
pub fn router_with_guard(registry: Arc<Registry>, guard: Option<Arc<dyn Guard>>) -> Router {
    let router = endpoints(registry);
    match guard {
        Some(guard) => router.layer(axum::middleware::from_fn_with_state(
            guard,
            crate::auth::require,
        )),
        None => router,
    }
}

fn endpoints(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { ok_json(json!({})) }))
        .route("/schemas/types", get(schema_types))
        .route("/schemas", get(list_schemas))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_one),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(get_global_mode)
                .put(put_global_mode)
                .delete(delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .route("/contexts", get(contexts))
        .route("/v1/metadata/id", get(metadata_id))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(registry)
}

/// Serves the API, open to anyone over plain HTTP, on `listener` until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router(registry), None, shutdown).await
}

/// Starts a registry over an in-memory store on a free loopback port, served by a task
/// of the current tokio runtime until `shutdown` resolves; returns its address. For
/// tests, benchmarks and examples of registry clients.
pub async fn serve_in_memory(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let registry = Registry::open(Arc::new(crate::store::MemoryStore::new()))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, registry, shutdown));
    Ok(addr)
}

/// Serves `router` on `listener`, over TLS if `tls` is given, until `shutdown`
/// resolves.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            let service = router.into_make_service_with_connect_info::<crate::auth::Peer>();
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            let service = router.into_make_service_with_connect_info::<crate::auth::Peer>();
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn not_found() -> Response {
    // `/associations/...` lands here too: newer Python clients ask for associations
    // first and take a 404 as "none".
    (
        StatusCode::NOT_FOUND,
        ok_json(json!({ "error_code": 404, "message": "HTTP 404 Not Found" })),
    )
        .into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        ok_json(json!({ "error_code": 405, "message": format!("HTTP 405 Method {method} Not Allowed") })),
    )
        .into_response()
}

// ---- request bodies -------------------------------------------------------------

#[derive(Deserialize)]
struct SchemaBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
    id: Option<i32>,
    version: Option<i32>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(body)
        .map_err(|e| RegistryError::UnprocessableEntity(format!("Unrecognized request body: {e}")))
}

fn schema_input(body: &Bytes) -> Result<(SchemaInput, Option<i32>, Option<i32>), RegistryError> {
    let body: SchemaBody = parse_body(body)?;
    let schema = body
        .schema
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| RegistryError::InvalidSchema {
            reason: "Empty schema".to_owned(),
        })?;
    let schema_type = match body.schema_type.as_deref() {
        None | Some("") => SchemaType::Avro,
        Some(t) => SchemaType::parse(t)?,
    };
    Ok((
        SchemaInput {
            schema,
            schema_type,
            references: body.references.unwrap_or_default(),
        },
        body.id,
        body.version,
    ))
}

// ---- responses ------------------------------------------------------------------

/// The schema text in the requested format: Protobuf answers `format=serialized` with
/// the base64 descriptor and otherwise with `.proto` text (rendered if it was
/// registered as a descriptor), as Confluent does; other types as stored.
fn formatted(model: &Model, id: i32, format: Option<&str>) -> Result<String, RegistryError> {
    let stored = model.schema_by_id(id)?;
    if stored.schema_type == SchemaType::Protobuf {
        let wants_descriptor = format == Some("serialized");
        if wants_descriptor || ProtoSchema::is_descriptor(&stored.schema) {
            if let Parsed::Protobuf(proto) = model.parse_stored(id)? {
                return Ok(if wants_descriptor {
                    proto.serialized()
                } else {
                    proto.text()
                });
            }
        }
    }
    Ok(stored.schema.clone())
}

fn schema_json(
    model: &Model,
    id: i32,
    format: Option<&str>,
    subject_version: Option<(&str, i32)>,
) -> Result<Value, RegistryError> {
    let stored = model.schema_by_id(id)?;
    let mut out = serde_json::Map::new();
    if let Some((subject, version)) = subject_version {
        out.insert("subject".into(), json!(subject));
        out.insert("version".into(), json!(version));
    }
    out.insert("id".into(), json!(id));
    if !stored.schema_type.is_avro() {
        out.insert("schemaType".into(), json!(stored.schema_type.as_str()));
    }
    if !stored.references.is_empty() {
        out.insert("references".into(), json!(stored.references));
    }
    out.insert("schema".into(), json!(formatted(model, id, format)?));
    Ok(Value::Object(out))
}

fn parse_id(text: &str) -> Result<i32, RegistryError> {
    text.parse().map_err(|_| RegistryError::SchemaNotFound {
        what: text.to_owned(),
    })
}

// ---- handlers -------------------------------------------------------------------

async fn schema_types() -> Response {
    ok_json(json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn list_schemas(State(r): State<Arc<Registry>>, Query(p): Params) -> ApiResult {
    let prefix = p.get("subjectPrefix").cloned().unwrap_or_default();
    r.read(|m| {
        let mut out = Vec::new();
        for (subject, version, stored) in
            m.schemas(&prefix, flag(&p, "deleted"), flag(&p, "latestOnly"))
        {
            out.push(schema_json(m, stored.id, None, Some((&subject, version)))?);
        }
        Ok(ok_json(Value::Array(out)))
    })
}

async fn schema_by_id(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    r.read(|m| {
        let mut value = schema_json(m, id, p.get("format").map(String::as_str), None)?;
        if let Some(object) = value.as_object_mut() {
            object.remove("id");
        }
        Ok(ok_json(value))
    })
}

async fn schema_text_by_id(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    r.read(|m| raw_schema(m, id, p.get("format").map(String::as_str)))
}

/// `…/schema` endpoints return the schema itself: JSON for Avro and JSON Schema, a
/// JSON string for Protobuf text.
fn raw_schema(m: &Model, id: i32, format: Option<&str>) -> ApiResult {
    let text = formatted(m, id, format)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(value) if m.schema_by_id(id)?.schema_type != SchemaType::Protobuf => Ok(ok_json(value)),
        _ => Ok(ok_json(Value::String(text))),
    }
}

async fn id_subjects(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    r.read(|m| {
        let mut subjects: Vec<String> = m
            .id_versions(id, flag(&p, "deleted"))?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        subjects.dedup();
        Ok(ok_json(json!(subjects)))
    })
}

async fn id_versions(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    r.read(|m| {
        let versions: Vec<Value> = m
            .id_versions(id, flag(&p, "deleted"))?
            .into_iter()
            .map(|(subject, version)| json!({ "subject": subject, "version": version }))
            .collect();
        Ok(ok_json(Value::Array(versions)))
    })
}

async fn list_subjects(State(r): State<Arc<Registry>>, Query(p): Params) -> ApiResult {
    let prefix = p.get("subjectPrefix").cloned().unwrap_or_default();
    let subjects = r.read(|m| m.subjects(&prefix, flag(&p, "deleted"), flag(&p, "deletedOnly")));
    Ok(ok_json(json!(subjects)))
}

async fn lookup(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let (input, _, _) = schema_input(&body)?;
    r.read(|m| {
        let (version, stored) = m.lookup(&subject, &input, flag(&p, "deleted"))?;
        Ok(ok_json(schema_json(
            m,
            stored.id,
            None,
            Some((&subject, version)),
        )?))
    })
}

async fn delete_subject(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let permanent = flag(&p, "permanent");
    let versions = r.write(|m| m.delete_subject(&subject, permanent)).await?;
    Ok(ok_json(json!(versions)))
}

async fn list_versions(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let versions =
        r.read(|m| m.versions(&subject, flag(&p, "deleted"), flag(&p, "deletedOnly")))?;
    Ok(ok_json(json!(versions)))
}

async fn register(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let (input, id, version) = schema_input(&body)?;
    let normalize = flag(&p, "normalize");
    let registered = r
        .write(|m| m.register(&subject, &input, normalize, (id, version)))
        .await?;
    Ok(ok_json(
        json!({ "id": registered.id, "version": registered.version }),
    ))
}

async fn get_version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    r.read(|m| {
        let (version, entry) = m.version(&subject, spec, flag(&p, "deleted"))?;
        Ok(ok_json(schema_json(
            m,
            entry.id,
            p.get("format").map(String::as_str),
            Some((&subject, version)),
        )?))
    })
}

async fn get_version_schema(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    r.read(|m| {
        let (_, entry) = m.version(&subject, spec, flag(&p, "deleted"))?;
        raw_schema(m, entry.id, p.get("format").map(String::as_str))
    })
}

async fn delete_version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let permanent = flag(&p, "permanent");
    let version = r
        .write(|m| m.delete_version(&subject, spec, permanent))
        .await?;
    Ok(ok_json(json!(version)))
}

async fn referenced_by(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let ids = r.read(|m| m.referenced_by(&subject, spec))?;
    Ok(ok_json(json!(ids)))
}

fn compatibility_response(
    r: &Registry,
    subject: &str,
    spec: Option<VersionSpec>,
    p: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let (input, _, _) = schema_input(body)?;
    let result = r.read(|m| {
        // Checking against a subject with no versions passes, as in Confluent.
        if spec.is_none() && m.versions(subject, false, false).is_err() {
            return m
                .check_compatibility(subject, Some(VersionSpec::Latest), &input)
                .or_else(|e| match e {
                    RegistryError::SubjectNotFound { .. } => {
                        Ok(crate::model::CompatibilityResult {
                            is_compatible: true,
                            messages: Vec::new(),
                        })
                    }
                    other => Err(other),
                });
        }
        m.check_compatibility(subject, spec, &input)
    })?;
    let mut body = json!({ "is_compatible": result.is_compatible });
    if flag(p, "verbose") {
        body["messages"] = json!(result.messages);
    }
    Ok(ok_json(body))
}

async fn check_all(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    compatibility_response(&r, &subject, None, &p, &body)
}

async fn check_one(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    compatibility_response(&r, &subject, Some(spec), &p, &body)
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn config_level(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let body: ConfigBody = parse_body(body)?;
    let text = body
        .compatibility
        .or(body.compatibility_level)
        .ok_or(RegistryError::InvalidCompatibilityLevel)?;
    CompatibilityLevel::parse(&text)
}

async fn get_global_config(State(r): State<Arc<Registry>>) -> Response {
    let level = r.read(|m| m.compatibility(None));
    ok_json(json!({ "compatibilityLevel": level.as_str() }))
}

async fn put_global_config(State(r): State<Arc<Registry>>, body: Bytes) -> ApiResult {
    let level = config_level(&body)?;
    let level = r.write(|m| m.set_config(None, level)).await?;
    Ok(ok_json(json!({ "compatibility": level.as_str() })))
}

async fn delete_global_config(State(r): State<Arc<Registry>>) -> ApiResult {
    let previous = r.write(|m| m.delete_config(None)).await?;
    Ok(ok_json(json!({ "compatibilityLevel": previous.as_str() })))
}

async fn get_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let level = r.read(|m| {
        if flag(&p, "defaultToGlobal") {
            Ok(m.compatibility(Some(&subject)))
        } else {
            m.subject_compatibility(&subject)
                .ok_or(RegistryError::SubjectConfigNotFound {
                    subject: subject.clone(),
                })
        }
    })?;
    Ok(ok_json(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = config_level(&body)?;
    let level = r.write(|m| m.set_config(Some(&subject), level)).await?;
    Ok(ok_json(json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = r.write(|m| m.delete_config(Some(&subject))).await?;
    Ok(ok_json(json!({ "compatibilityLevel": previous.as_str() })))
}

#[derive(Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

fn mode_of(body: &Bytes) -> Result<Mode, RegistryError> {
    let body: ModeBody = parse_body(body)?;
    Mode::parse(body.mode.as_deref().ok_or(RegistryError::InvalidMode)?)
}

async fn get_global_mode(State(r): State<Arc<Registry>>) -> Response {
    let mode = r.read(|m| m.mode(None));
    ok_json(json!({ "mode": mode.as_str() }))
}

async fn put_global_mode(State(r): State<Arc<Registry>>, body: Bytes) -> ApiResult {
    let mode = mode_of(&body)?;
    let mode = r.write(|m| m.set_mode(None, mode)).await?;
    Ok(ok_json(json!({ "mode": mode.as_str() })))
}

async fn delete_global_mode(State(r): State<Arc<Registry>>) -> ApiResult {
    let previous = r.write(|m| m.delete_mode(None)).await?;
    Ok(ok_json(json!({ "mode": previous.as_str() })))
}

async fn get_subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let mode = r.read(|m| {
        if flag(&p, "defaultToGlobal") {
            Ok(m.mode(Some(&subject)))
        } else {
            m.subject_mode(&subject)
                .ok_or(RegistryError::SubjectModeNotFound {
                    subject: subject.clone(),
                })
        }
    })?;
    Ok(ok_json(json!({ "mode": mode.as_str() })))
}

async fn put_subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mode = mode_of(&body)?;
    let mode = r.write(|m| m.set_mode(Some(&subject), mode)).await?;
    Ok(ok_json(json!({ "mode": mode.as_str() })))
}

async fn delete_subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = r.write(|m| m.delete_mode(Some(&subject))).await?;
    Ok(ok_json(json!({ "mode": previous.as_str() })))
}

async fn contexts(State(r): State<Arc<Registry>>) -> Response {
    ok_json(json!(r.read(|m| m.contexts())))
}

async fn metadata_id() -> Response {
    ok_json(json!({ "scope": { "path": [], "clusters": {} } }))
}
