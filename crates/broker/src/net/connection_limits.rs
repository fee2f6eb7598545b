//! Bounds on open connections: all listeners together (Kafka's `max.connections`)
//! and per client IP address (`max.connections.per.ip`). A connection over either
//! bound is closed as soon as it is accepted; the ones already open are untouched.
//!
//! Invariant: `open` equals the number of live [`ConnectionPermit`]s, and
//! `per_ip[ip]` the number of those from `ip` (entries at zero are removed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// `max.connections` connections are open.
    #[error("max.connections ({max}) connections are open")]
    Total {
        /// The bound.
        max: usize,
    },
    /// `max.connections.per.ip` connections from this address are open.
    #[error("max.connections.per.ip ({max}) connections from {ip} are open")]
    PerIp {
        /// The client's address.
        ip: IpAddr,
        /// The bound.
        max: usize,
    },
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The connection bounds and what is open; shared by every listener.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    total_max: usize,
    per_ip_max: usize,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Bounds of `total_max` connections, `per_ip_max` from one address.
    pub fn new(total_max: usize, per_ip_max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            total_max,
            per_ip_max,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut counts = self.counts();
        if counts.open >= self.total_max {
            return Err(Refusal::Total {
                max: self.total_max,
            });
        }
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= self.per_ip_max {
            return Err(Refusal::PerIp {
                ip,
                max: self.per_ip_max,
            });
        }
        *from_ip += 1;
        counts.open += 1;
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.counts().open
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.open -= 1;
        if let Some(from_ip) = counts.per_ip.get_mut(&self.ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        debug_assert_eq!(counts.open, counts.per_ip.values().sum::<usize>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn the_per_ip_bound_refuses_one_address_and_not_others() {
        let limits = ConnectionLimits::new(10, 2);
        let a1 = limits.admit(ip(1)).expect("first");
        let _a2 = limits.admit(ip(1)).expect("second");
        assert_eq!(
            limits.admit(ip(1)).err(),
            Some(Refusal::PerIp { ip: ip(1), max: 2 })
        );
        let _b = limits.admit(ip(2)).expect("another address");
        drop(a1);
        let _a3 = limits.admit(ip(1)).expect("a freed place");
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn the_total_bound_refuses_everyone_until_a_connection_closes() {
        let limits = ConnectionLimits::new(2, 10);
        let a = limits.admit(ip(1)).expect("first");
        let _b = limits.admit(ip(2)).expect("second");
        assert_eq!(limits.admit(ip(3)).err(), Some(Refusal::Total { max: 2 }));
        drop(a);
        assert!(limits.admit(ip(3)).is_ok());
    }
}
