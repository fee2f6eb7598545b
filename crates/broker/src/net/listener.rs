//! Listeners: each binds one address with one security protocol and tells the
//! clients that connect to it which address to use (Metadata, FindCoordinator,
//! DescribeCluster answer with the listener's own advertised address).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::error::StartError;
use crate::security::config::{ListenerConfig, SecurityProtocol};

/// A bound listener, as connections see it.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Its configured name.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// The address it is bound to.
    pub bound: SocketAddr,
    /// Host clients connected here are told to use.
    pub advertised_host: String,
    /// Port clients connected here are told to use.
    pub advertised_port: i32,
}

/// Binds `config`'s address.
pub(crate) async fn bind(
    config: &ListenerConfig,
) -> Result<(TcpListener, Arc<Listener>), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: config.address,
        source,
    };
    let socket = TcpListener::bind(config.address)
        .await
        .map_err(bind_error)?;
    let bound = socket.local_addr().map_err(bind_error)?;
    let (advertised_host, advertised_port) = match &config.advertised_address {
        None => (bound.ip().to_string(), i32::from(bound.port())),
        Some(text) => parse_host_port(text).map_err(|why| {
            StartError::Config(format!(
                "listener `{}`: advertised address `{text}` {why}",
                config.name
            ))
        })?,
    };
    let listener = Listener {
        name: config.name.clone(),
        protocol: config.security_protocol,
        bound,
        advertised_host,
        advertised_port,
    };
    Ok((socket, Arc::new(listener)))
}

/// `HOST:PORT` (IPv6 hosts in brackets) as a host and a port.
fn parse_host_port(text: &str) -> Result<(String, i32), &'static str> {
    let (host, port) = text.rsplit_once(':').ok_or("must be HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| "has an invalid port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("has no host");
    }
    Ok((host.to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("kafka.example:9093"),
            Ok(("kafka.example".into(), 9093))
        );
        assert_eq!(parse_host_port("[::1]:9092"), Ok(("::1".into(), 9092)));
        assert!(parse_host_port("nope").is_err());
        assert!(parse_host_port(":9092").is_err());
        assert!(parse_host_port("host:99999").is_err());
    }
}
