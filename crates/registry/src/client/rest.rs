//! A REST client for Confluent-compatible registries (strom's or Confluent's), over
//! `reqwest` with rustls: plain or HTTPS (system roots, or a CA file), optional HTTP
//! Basic auth. Errors keep the registry's `error_code`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::types::{SchemaInput, SchemaReference, SchemaType};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the registry is and how to log in.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// HTTP Basic user and password.
    pub basic_auth: Option<(String, String)>,
    /// PEM file with the CA certificates to trust (HTTPS); the system's otherwise.
    pub ca_file: Option<PathBuf>,
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry answered with an error.
    #[error("{message} (HTTP {status}, error code {code})")]
    Registry {
        /// HTTP status.
        status: u16,
        /// Confluent error code (`-1` if the body had none).
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// The request did not get an answer.
    #[error("cannot reach the schema registry: {0}")]
    Transport(String),
    /// The answer was not what the API returns.
    #[error("unexpected answer from the schema registry: {0}")]
    Decode(String),
    /// The configuration is unusable (bad URL, unreadable CA file).
    #[error("schema registry client: {0}")]
    Config(String),
}

/// A registry client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    basic_auth: Option<(String, String)>,
}

/// Percent-encodes a path segment (a subject name).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError::Config(format!("CA file {}: {e}", ca_file.display())))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("CA file {}: {e}", ca_file.display())))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl RegistryClient {
    /// A client for the registry at `config.url`.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        // reqwest is built without a crypto provider of its own: use ring, as the
        // rest of the workspace does. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(ca_file) = &config.ca_file {
            builder = builder.tls_backend_preconfigured(tls_config(ca_file)?);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let base = config.url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ClientError::Config(format!(
                "the registry URL must start with http:// or https://, not `{base}`"
            )));
        }
        Ok(RegistryClient {
            http,
            base,
            basic_auth: config.basic_auth.clone(),
        })
    }

    /// Sends one request (`path` starts with `/`, subjects already encoded) and returns
    /// the JSON answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Decode(format!(
                    "HTTP {status}: {e}: {}",
                    String::from_utf8_lossy(&bytes)
                ))
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Registry {
            status: status.as_u16(),
            code: value["error_code"].as_i64().unwrap_or(-1),
            message: value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
        })
    }

    fn schema_body(input: &SchemaInput) -> Value {
        let mut body = json!({ "schema": input.schema });
        if !input.schema_type.is_avro() {
            body["schemaType"] = json!(input.schema_type.as_str());
        }
        if !input.references.is_empty() {
            body["references"] = json!(input.references);
        }
        body
    }

    /// Registers `input` under `subject`; returns its global id.
    pub async fn register(
        &self,
        subject: &str,
        input: &SchemaInput,
        normalize: bool,
    ) -> Result<i32, ClientError> {
        let answer = self
            .request(
                Method::POST,
                &format!(
                    "/subjects/{}/versions?normalize={normalize}",
                    encode_segment(subject)
                ),
                Some(&Self::schema_body(input)),
            )
            .await?;
        id_of(&answer)
    }

    /// The schema with global id `id`.
    pub async fn schema_by_id(&self, id: i32) -> Result<SchemaInput, ClientError> {
        let answer = self
            .request(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        schema_of(&answer)
    }

    /// The version under `subject` holding `input`, and its id (40403 if none).
    pub async fn lookup(
        &self,
        subject: &str,
        input: &SchemaInput,
        normalize: bool,
    ) -> Result<(i32, i32), ClientError> {
        let answer = self
            .request(
                Method::POST,
                &format!(
                    "/subjects/{}?normalize={normalize}",
                    encode_segment(subject)
                ),
                Some(&Self::schema_body(input)),
            )
            .await?;
        let version = answer["version"]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| ClientError::Decode(format!("no version in {answer}")))?;
        Ok((id_of(&answer)?, version))
    }

    /// A version of a subject (`latest` or a number): its id, version and schema.
    pub async fn version(
        &self,
        subject: &str,
        version: &str,
    ) -> Result<(i32, i32, SchemaInput), ClientError> {
        let answer = self
            .request(
                Method::GET,
                &format!(
                    "/subjects/{}/versions/{}",
                    encode_segment(subject),
                    encode_segment(version)
                ),
                None,
            )
            .await?;
        let version = answer["version"]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| ClientError::Decode(format!("no version in {answer}")))?;
        Ok((id_of(&answer)?, version, schema_of(&answer)?))
    }

    /// Checks `input` against a version of `subject` (`None`: against what a
    /// registration would be checked against). Returns whether it is compatible and
    /// the registry's reasons.
    pub async fn check(
        &self,
        subject: &str,
        version: Option<&str>,
        input: &SchemaInput,
    ) -> Result<(bool, Vec<String>), ClientError> {
        let path = match version {
            Some(v) => format!(
                "/compatibility/subjects/{}/versions/{}?verbose=true",
                encode_segment(subject),
                encode_segment(v)
            ),
            None => format!(
                "/compatibility/subjects/{}/versions?verbose=true",
                encode_segment(subject)
            ),
        };
        let answer = self
            .request(Method::POST, &path, Some(&Self::schema_body(input)))
            .await?;
        let compatible = answer["is_compatible"]
            .as_bool()
            .ok_or_else(|| ClientError::Decode(format!("no is_compatible in {answer}")))?;
        let messages = answer["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok((compatible, messages))
    }
}

fn id_of(answer: &Value) -> Result<i32, ClientError> {
    answer["id"]
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| ClientError::Decode(format!("no id in {answer}")))
}

fn schema_of(answer: &Value) -> Result<SchemaInput, ClientError> {
    let schema = answer["schema"]
        .as_str()
        .ok_or_else(|| ClientError::Decode(format!("no schema in {answer}")))?
        .to_owned();
    let schema_type = match answer["schemaType"].as_str() {
        Some(t) => SchemaType::parse(t).map_err(|e| ClientError::Decode(e.to_string()))?,
        None => SchemaType::Avro,
    };
    let references: Vec<SchemaReference> = match answer.get("references") {
        Some(refs) if !refs.is_null() => serde_json::from_value(refs.clone())
            .map_err(|e| ClientError::Decode(format!("references: {e}")))?,
        _ => Vec::new(),
    };
    Ok(SchemaInput {
        schema,
        schema_type,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(encode_segment("rides-value"), "rides-value");
        assert_eq!(encode_segment("a/b c:%"), "a%2Fb%20c%3A%25");
    }

    #[test]
    fn bad_urls_are_config_errors() {
        let config = ClientConfig {
            url: "localhost:8081".into(),
            ..ClientConfig::default()
        };
        assert!(matches!(
            RegistryClient::new(&config),
            Err(ClientError::Config(_))
        ));
    }
}
