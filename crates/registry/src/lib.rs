//! strom's schema registry: Confluent's REST API, its semantics and its `_schemas`
//! record format, so Confluent's serializers (and every other client of that API)
//! work unchanged.
//!
//! The crate is layered like the broker, core logic free of I/O:
//! - [`types`] and [`record`]: the vocabulary and the `_schemas` key/value records;
//! - `format`: Avro, JSON Schema and Protobuf parsing and compatibility rules;
//! - [`model`]: the state, a pure fold of records, which also computes every change
//!   as records;
//! - [`registry`]: the model behind a lock, made durable through a [`store::Store`];
//! - [`api`]: the REST endpoints with axum, behind an optional [`auth::Guard`] (HTTP
//!   Basic, per-subject permissions) and optional TLS ([`tls`]);
//! - [`client`]: the client side: the wire format (magic byte, schema id, Protobuf
//!   message indexes) and a REST client for any Confluent-compatible registry.
//!
//! The registry never depends on the broker: the binary implements [`store::Store`]
//! over the compacted `_schemas` topic.
//!
//! ```
//! use std::sync::Arc;
//! use strom_registry::model::VersionSpec;
//! use strom_registry::store::MemoryStore;
//! use strom_registry::types::{SchemaInput, SchemaType};
//! use strom_registry::Registry;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let registry = Registry::open(Arc::new(MemoryStore::new())).await?;
//! let input = SchemaInput {
//!     schema: r#"{"type":"record","name":"Ride","fields":[{"name":"id","type":"string"}]}"#.into(),
//!     schema_type: SchemaType::Avro,
//!     references: vec![],
//! };
//! let registered = registry.write(|m| m.register("rides-value", &input, false, (None, None))).await?;
//! assert_eq!((registered.id, registered.version), (1, 1));
//! let (version, entry) = registry.read(|m| m.version("rides-value", VersionSpec::Latest, false))?;
//! assert_eq!((version, entry.id), (1, 1));
//! # Ok::<(), strom_registry::RegistryError>(())
//! # }).unwrap();
//! ```

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub(crate) mod format;
pub mod model;
pub mod record;
pub mod registry;
pub mod store;
pub mod tls;
pub mod types;

pub use error::RegistryError;
pub use registry::Registry;
