//! strom's Kafka wire-protocol broker, as a library.
//!
//! [`Broker::start`] recovers a data directory, listens for Kafka clients (and HTTP
//! health probes) and returns a [`BrokerHandle`] with the bound addresses and a
//! graceful [`BrokerHandle::shutdown`]. The `strom serve` command is a thin wrapper;
//! tests embed the broker the same way.
//!
//! Layers, top to bottom: `net` (framing, one task per connection, in-order
//! responses) → `handlers` (one module per API family) → `cluster` (topics, configs,
//! the metadata log) → `strom_log` (partition logs).

mod broker;
mod cluster;
mod config;
mod error;
mod handlers;
mod net;
mod protocol;

pub use broker::{Broker, BrokerHandle, BrokerStats};
pub use config::BrokerConfig;
pub use error::StartError;
pub use strom_log::{FlushPolicy, LogConfig};
