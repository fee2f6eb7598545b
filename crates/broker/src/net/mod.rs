//! The network layer: framing and one task per client connection.

pub(crate) mod connection;
pub(crate) mod frame;
pub(crate) mod listener;
