//! Schema-registry serdes (feature `registry`): Avro ([`AvroSerde`]), Protobuf
//! ([`ProtobufSerde`]) and JSON Schema ([`JsonSchemaSerde`]) in Confluent's wire format
//! (magic byte, 4-byte schema id, Protobuf message indexes), so records interoperate
//! with Confluent's serializers in any language; and [`EncryptedSerde`], an AES-256-GCM
//! envelope around any serde; [`RegistryJsonSerde`] reads values of any schema as JSON.
//!
//! They are built on `strom_registry::client`: a serializer registers its schema on
//! first use (or looks it up, or takes the subject's latest version, per
//! [`SerdeConfig`]) and caches the id; a deserializer fetches each writer schema once
//! by id and evolves the value to the serde's own (reader) schema. Values are validated
//! on produce: one that does not fit the schema fails in the sink, and the processing
//! error handler decides (fail, skip, dead-letter topic).
//!
//! A payload that does not decode (unknown schema id, bad framing, a wrong or missing
//! encryption key, tampered bytes) is a deserialization error: with
//! [`crate::ErrorHandler::DeadLetter`] the record goes to the dead-letter topic with the
//! reason in its `strom.error` header.
//!
//! Serdes are synchronous; registry requests (cache misses only) run on a small I/O
//! runtime that [`SchemaRegistry`] owns. Use the serdes from stream threads or other
//! synchronous code, not from inside an async task.

mod any_json;
mod avro;
mod encrypted;
mod json;
mod protobuf;

use std::future::Future;
use std::sync::Arc;

pub use any_json::{RegistryFormat, RegistryJsonSerde};
pub use avro::AvroSerde;
pub use encrypted::EncryptedSerde;
pub use json::JsonSchemaSerde;
pub use protobuf::ProtobufSerde;
pub use strom_registry::client::encryption::{Envelope, Keyring, KEY_ID_HEADER};
pub use strom_registry::client::serde::{compile_proto, topic_subject, SerdeConfig};
pub use strom_registry::client::ClientConfig;

use strom_registry::client::serde::SerdeError as ClientSerdeError;
use strom_registry::client::{ClientError, RegistryClient};

use crate::error::{SerdeError, StreamsError};

/// How long a record waits before it is tried again when the registry cannot be
/// reached or answers with a server error.
const UNAVAILABLE_RETRY_MS: i64 = 1_000;

/// The I/O runtime of a [`SchemaRegistry`]: one worker thread drives the HTTP
/// connections while a serde's thread waits for its answer.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Never block in drop (it may run inside an async context).
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A connection to a Confluent-compatible schema registry (strom's or Confluent's),
/// shared by the serdes built on it. Cheap to clone.
#[derive(Clone)]
pub struct SchemaRegistry {
    client: RegistryClient,
    handle: tokio::runtime::Handle,
    /// Keeps the runtime behind `handle` alive.
    _runtime: Arc<IoRuntime>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry").finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// A registry client for `config` (URL, optional HTTP Basic login and CA file).
    pub fn connect(config: &ClientConfig) -> Result<Self, StreamsError> {
        let client =
            RegistryClient::new(config).map_err(|e| StreamsError::Config(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strom-registry-io")
            .enable_all()
            .build()
            .map_err(|e| StreamsError::Config(format!("schema registry runtime: {e}")))?;
        Ok(SchemaRegistry {
            client,
            handle: runtime.handle().clone(),
            _runtime: Arc::new(IoRuntime(Some(runtime))),
        })
    }

    /// A registry at `url` without login (e.g. `http://127.0.0.1:8081`).
    pub fn connect_url(url: &str) -> Result<Self, StreamsError> {
        Self::connect(&ClientConfig {
            url: url.to_owned(),
            ..ClientConfig::default()
        })
    }

    /// The REST client (for admin calls: compatibility checks, versions).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Runs `future` to completion on this thread, its I/O driven by the runtime. A
    /// future that is ready at once (a cache hit) costs no thread switch.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Runs one serializer or deserializer call of `strom_registry::client`; its error
    /// becomes the serde error whose message is the dead-letter reason.
    fn run<V>(
        &self,
        call: impl Future<Output = Result<V, ClientSerdeError>>,
    ) -> Result<V, SerdeError> {
        self.block_on(call).map_err(|e| match e {
            ClientSerdeError::Registry(
                ClientError::Transport(_) | ClientError::Registry { status: 500.., .. },
            ) => SerdeError::Unavailable {
                after_ms: UNAVAILABLE_RETRY_MS,
                reason: e.to_string(),
            },
            e => invalid(e),
        })
    }
}

/// A client serializer or deserializer that could not be built, as a configuration
/// error.
fn config_error(what: &str, subject: &str, e: ClientSerdeError) -> StreamsError {
    StreamsError::Config(format!("{what} serde for {subject}: {e}"))
}

/// A value that does not convert to or from the format's values.
fn invalid(e: impl std::fmt::Display) -> SerdeError {
    SerdeError::Invalid(e.to_string())
}
