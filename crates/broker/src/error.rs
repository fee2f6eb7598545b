//! Errors that stop the broker from starting. Errors of single requests never surface
//! here: they become Kafka error codes in responses.

use std::net::SocketAddr;
use std::path::PathBuf;

use strom_log::LogError;

/// Why [`crate::Broker::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Opening or recovering the logs failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// `meta.properties` could not be read or written.
    #[error("broker identity file {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The metadata log holds a record this version cannot apply.
    #[error("metadata log: {0}")]
    Metadata(String),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}
