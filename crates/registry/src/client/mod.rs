//! The client side: Confluent's wire format ([`wire`]), a REST client for any
//! Confluent-compatible registry ([`RegistryClient`], which `strom schema` uses), and
//! Avro / JSON Schema / Protobuf serdes on top of both ([`serde`]), and an AES-256-GCM
//! envelope for payload encryption ([`encryption`]).

pub mod encryption;
pub mod rest;
pub mod serde;
pub mod wire;

/// HTTP methods, for [`RegistryClient::request`].
pub use reqwest::Method;
pub use rest::{ClientConfig, ClientError, RegistryClient};
