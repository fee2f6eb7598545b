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
mod cleaner_status;
mod cluster;
mod config;
mod coord;
mod embedded;
mod error;
mod handlers;
mod internal_topic;
mod metrics;
mod net;
mod protocol;
mod security;

pub use broker::{Broker, BrokerHandle, BrokerStats};
pub use config::BrokerConfig;
pub use embedded::{tls_acceptor, EmbeddedOperation, EmbeddedSecurity};
pub use error::StartError;
pub use internal_topic::{InternalRecord, InternalTopic, InternalTopicError};
pub use security::config::{
    AuthorizerConfig, ClientAuth, ListenerConfig, SaslConfig, SecurityConfig, SecurityProtocol,
    TlsConfig, UserConfig,
};
pub use strom_log::{
    CleanerConfig, CleanupPolicy, CompressionType, FlushPolicy, LogConfig, OPEN_FILES_MIN,
};

/// Helpers for tests that log in over the wire; not part of the supported API.
#[doc(hidden)]
pub mod testing {
    pub use crate::security::scram::client::ScramClient;
}

/// Entry points for the fuzz targets in `fuzz/`; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes one request frame (the bytes after the size prefix) exactly as a
    /// connection does: header, API and version check, body. Returns whether it is a
    /// request strom would serve. Must never panic or abort, whatever the input.
    pub fn decode_frame(frame: &[u8]) -> bool {
        let mut frame = bytes::Bytes::copy_from_slice(frame);
        crate::protocol::decode_header(&mut frame)
            .and_then(|header| crate::protocol::decode_request(&header, frame))
            .is_ok()
    }
}
