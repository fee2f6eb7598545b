//! The client side: Confluent's wire format ([`wire`]) and a REST client for any
//! Confluent-compatible registry ([`RegistryClient`]), which `strom schema` uses and
//! the serdes will.

pub mod rest;
pub mod wire;

/// HTTP methods, for [`RegistryClient::request`].
pub use reqwest::Method;
pub use rest::{ClientConfig, ClientError, RegistryClient};
