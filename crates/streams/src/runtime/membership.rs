//! How the stream threads' consumers join the application's group: which group
//! protocol and which assignor.
//!
//! A sub-topology that reads several co-partitioned topics (a stream–stream join, a
//! merge, a stream–table join) needs partition *n* of every one of them on the same
//! member: they are one task. librdkafka has no API for a custom client-side assignor,
//! and of its own, only the eager `range` keeps partition *n* together (every rebalance
//! then stops the whole group); `cooperative-sticky` balances partition counts without
//! regard to topics. The new consumer group protocol (KIP-848, `group.protocol=consumer`)
//! moves the assignor to the broker and is incremental by design; its server-side
//! `range` assignor (Apache Kafka 4.x, and strom) co-partitions topics of equal
//! partition counts that the same members subscribe to. So:
//!
//! | topology | [`GroupProtocol::Auto`] chooses |
//! | --- | --- |
//! | every sub-topology reads one topic | classic protocol, `cooperative-sticky` |
//! | a sub-topology reads several, cluster speaks KIP-848 | `group.protocol=consumer`, `group.remote.assignor=range` |
//! | a sub-topology reads several, it does not | classic protocol, eager `range` |
//!
//! Whether the cluster speaks KIP-848 is read from an ApiVersions request to a
//! bootstrap server (ConsumerGroupHeartbeat v1, the version librdkafka sends). The probe
//! speaks plain TCP: it works for `PLAINTEXT` and `SASL_PLAINTEXT` listeners (Kafka
//! answers ApiVersions before authentication); over TLS it does not try, and
//! [`GroupProtocol::Consumer`] says so explicitly.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rdkafka::config::ClientConfig;

use super::config::{GroupProtocol, StreamsConfig};
use crate::topology::Topology;

/// Kafka's ApiVersions API key.
const API_VERSIONS: i16 = 18;
/// Kafka's ConsumerGroupHeartbeat API key (KIP-848).
const CONSUMER_GROUP_HEARTBEAT: i16 = 68;
/// The ConsumerGroupHeartbeat version librdkafka 2.12 requires.
const CONSUMER_GROUP_HEARTBEAT_VERSION_MIN: i16 = 1;
/// Largest ApiVersions answer the probe reads (Kafka's is about 600 bytes).
const PROBE_RESPONSE_BYTES_MAX: usize = 64 << 10;
/// Longest the probe waits for one broker.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(5);

/// Settings librdkafka refuses with `group.protocol=consumer` (the broker owns them).
const CLASSIC_ONLY: [&str; 4] = [
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

/// The group protocol and assignor the stream threads' consumers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// [`GroupProtocol::Classic`] or [`GroupProtocol::Consumer`] (never `Auto`).
    pub protocol: GroupProtocol,
    /// `partition.assignment.strategy` (classic) or `group.remote.assignor` (consumer).
    pub assignor: &'static str,
}

impl Membership {
    /// Sets the group protocol and assignor on a stream thread's consumer, after the
    /// application's `client_config` was applied: under the new protocol the settings
    /// the broker owns are removed (librdkafka refuses them there).
    pub(crate) fn apply(&self, c: &mut ClientConfig) {
        match self.protocol {
            GroupProtocol::Consumer => {
                for key in CLASSIC_ONLY {
                    if c.get(key).is_some() {
                        tracing::debug!(
                            key,
                            "dropped: the broker owns it under group.protocol=consumer"
                        );
                        c.remove(key);
                    }
                }
                c.set("group.protocol", "consumer")
                    .set("group.remote.assignor", self.assignor);
            }
            GroupProtocol::Classic | GroupProtocol::Auto => {
                if c.get("partition.assignment.strategy").is_none() {
                    c.set("partition.assignment.strategy", self.assignor);
                }
            }
        }
    }
}

/// Whether a sub-topology reads several topics (which must be co-partitioned).
pub(crate) fn needs_co_partitioning(topology: &Topology) -> bool {
    topology
        .inner
        .subtopologies
        .iter()
        .any(|s| s.sources.len() > 1)
}

/// Chooses the protocol and assignor (see the module docs); `group.protocol` in
/// `client_config` overrides [`StreamsConfig::group_protocol`].
pub(crate) fn choose(topology: &Topology, config: &StreamsConfig) -> Membership {
    let co_partitioned = needs_co_partitioning(topology);
    let requested = match config
        .client_config
        .get("group.protocol")
        .map(|p| p.to_ascii_lowercase())
        .as_deref()
    {
        Some("consumer") => GroupProtocol::Consumer,
        Some("classic") => GroupProtocol::Classic,
        _ => config.group_protocol,
    };
    let protocol = match requested {
        GroupProtocol::Auto if !co_partitioned => GroupProtocol::Classic,
        GroupProtocol::Auto => match cluster_speaks_kip848(config) {
            Some(true) => GroupProtocol::Consumer,
            Some(false) => {
                tracing::info!(
                    "the cluster has no ConsumerGroupHeartbeat (KIP-848): co-partitioned inputs use the classic protocol's eager `range` assignor"
                );
                GroupProtocol::Classic
            }
            None => {
                tracing::info!(
                    "could not ask the cluster for KIP-848 support (TLS, or no bootstrap server answered): co-partitioned inputs use the classic protocol's eager `range` assignor; set group_protocol = Consumer to use the new protocol"
                );
                GroupProtocol::Classic
            }
        },
        explicit => explicit,
    };
    let assignor = match (protocol, co_partitioned) {
        (GroupProtocol::Consumer, true) => "range",
        (GroupProtocol::Consumer, false) => "uniform",
        (_, true) => "range",
        (_, false) => "cooperative-sticky",
    };
    Membership { protocol, assignor }
}

/// Asks the bootstrap servers in turn whether they speak KIP-848; `None` when none
/// could be asked.
fn cluster_speaks_kip848(config: &StreamsConfig) -> Option<bool> {
    let security = config
        .client_config
        .get("security.protocol")
        .map(|p| p.to_ascii_lowercase())
        .unwrap_or_else(|| "plaintext".into());
    if security != "plaintext" && security != "sasl_plaintext" {
        return None;
    }
    let timeout = config.request_timeout.min(PROBE_TIMEOUT_MAX);
    for server in config.bootstrap_servers.split(',') {
        match probe(server.trim(), timeout) {
            Ok(versions) => {
                let heartbeat = versions
                    .iter()
                    .find(|(key, _, _)| *key == CONSUMER_GROUP_HEARTBEAT);
                return Some(
                    heartbeat
                        .is_some_and(|(_, _, max)| *max >= CONSUMER_GROUP_HEARTBEAT_VERSION_MIN),
                );
            }
            Err(error) => {
                tracing::debug!(server, %error, "ApiVersions probe failed");
            }
        }
    }
    None
}

/// `host:port` of a bootstrap entry (`[proto://]host[:port]`, port 9092 by default).
fn address(server: &str) -> String {
    let bare = server.rsplit("://").next().unwrap_or(server);
    if bare.starts_with('[') || bare.matches(':').count() == 1 {
        bare.to_string()
    } else {
        format!("{bare}:9092")
    }
}

/// One ApiVersions v0 round trip: the (api key, min version, max version) the broker
/// lists.
fn probe(server: &str, timeout: Duration) -> std::io::Result<Vec<(i16, i16, i16)>> {
    use std::io::{Error, ErrorKind};
    let addr = address(server)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    const CLIENT_ID: &[u8] = b"strom-streams";
    const CORRELATION_ID: i32 = 1;
    // Request header v1 (key, version, correlation id, client id); v0 has no body.
    let mut request = Vec::with_capacity(4 + 10 + CLIENT_ID.len());
    request.extend_from_slice(&((10 + CLIENT_ID.len()) as i32).to_be_bytes());
    request.extend_from_slice(&API_VERSIONS.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    request.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    request.extend_from_slice(CLIENT_ID);
    conn.write_all(&request)?;
    let mut size = [0u8; 4];
    conn.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > PROBE_RESPONSE_BYTES_MAX {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("ApiVersions answer of {size} bytes"),
        ));
    }
    let mut body = vec![0u8; size as usize];
    conn.read_exact(&mut body)?;
    parse_api_versions(&body, CORRELATION_ID)
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "malformed ApiVersions answer"))
}

/// Decodes an ApiVersions v0 response body (after the size): `None` when it is
/// malformed, for another request, or an error.
fn parse_api_versions(body: &[u8], correlation_id: i32) -> Option<Vec<(i16, i16, i16)>> {
    let i16_at = |at: usize| Some(i16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?));
    let i32_at = |at: usize| Some(i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?));
    if i32_at(0)? != correlation_id || i16_at(4)? != 0 {
        return None;
    }
    let count = usize::try_from(i32_at(6)?).ok()?;
    if 10 + count * 6 > body.len() {
        return None;
    }
    (0..count)
        .map(|i| {
            let at = 10 + i * 6;
            Some((i16_at(at)?, i16_at(at + 2)?, i16_at(at + 4)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(correlation_id: i32, error: i16, apis: &[(i16, i16, i16)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&correlation_id.to_be_bytes());
        b.extend_from_slice(&error.to_be_bytes());
        b.extend_from_slice(&(apis.len() as i32).to_be_bytes());
        for (k, min, max) in apis {
            for v in [k, min, max] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    #[test]
    fn api_versions_answers_decode_and_bad_ones_are_refused() {
        let apis = [(18, 0, 4), (68, 0, 1)];
        assert_eq!(
            parse_api_versions(&answer(1, 0, &apis), 1),
            Some(apis.to_vec())
        );
        assert_eq!(
            parse_api_versions(&answer(2, 0, &apis), 1),
            None,
            "other request"
        );
        assert_eq!(
            parse_api_versions(&answer(1, 35, &apis), 1),
            None,
            "an error"
        );
        let cut = answer(1, 0, &apis);
        assert_eq!(
            parse_api_versions(&cut[..cut.len() - 1], 1),
            None,
            "truncated"
        );
        let mut huge = answer(1, 0, &[]);
        huge[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(parse_api_versions(&huge, 1), None, "count beyond the body");
    }

    #[test]
    fn bootstrap_entries_get_a_default_port_and_lose_their_scheme() {
        assert_eq!(address("broker:9093"), "broker:9093");
        assert_eq!(address("broker"), "broker:9092");
        assert_eq!(address("PLAINTEXT://broker:19092"), "broker:19092");
        assert_eq!(address("[::1]:9092"), "[::1]:9092");
    }

    #[test]
    fn the_new_protocol_drops_the_settings_the_broker_owns() {
        let m = Membership {
            protocol: GroupProtocol::Consumer,
            assignor: "range",
        };
        let mut c = ClientConfig::new();
        c.set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        m.apply(&mut c);
        assert_eq!(c.get("session.timeout.ms"), None);
        assert_eq!(c.get("heartbeat.interval.ms"), None);
        assert_eq!(c.get("group.protocol"), Some("consumer"));
        assert_eq!(c.get("group.remote.assignor"), Some("range"));
        let classic = Membership {
            protocol: GroupProtocol::Classic,
            assignor: "cooperative-sticky",
        };
        let mut c = ClientConfig::new();
        classic.apply(&mut c);
        assert_eq!(
            c.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
    }
}
