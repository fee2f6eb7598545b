//! The client side: Confluent's wire format ([`wire`]) and a REST client for any
//! Confluent-compatible registry ([`RegistryClient`]), which `strom schema` uses and
//! the serdes will.

mod rest;
pub mod wire;

pub use rest::{ClientConfig, ClientError, RegistryClient};
