//! The network layer: framing and one task per client connection.

pub(crate) mod connection;
pub(crate) mod connection_limits;
pub(crate) mod frame;
pub(crate) mod listener;
pub(crate) mod log_limiter;
