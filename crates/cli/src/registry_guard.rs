//! The schema registry's [`Guard`] over the broker's security: HTTP Basic credentials
//! are checked against the broker's SCRAM users, permissions against its ACLs, the
//! way Confluent's topic-ACL mode maps them:
//!
//! - a subject `T-key` or `T-value` is the topic `T`; any other subject is the topic
//!   of the same name;
//! - reading a subject needs READ on its topic, changing it needs WRITE;
//! - reading what names no subject (a schema by id, the global config) needs only a
//!   login; changing the global config or mode needs ALTER on the cluster.
//!
//! A password check costs a PBKDF2 derivation (thousands of hash rounds), so verified
//! credentials are remembered for a while, by a hash of the password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use strom_broker::{EmbeddedOperation, EmbeddedSecurity};
use strom_registry::auth::{Access, Guard};

/// How long a verified password is trusted without checking it again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// How many verified credentials are remembered at most.
const VERIFIED_MAX: usize = 1024;

/// [`Guard`] backed by the broker's users and ACLs.
pub struct BrokerGuard {
    security: EmbeddedSecurity,
    verified: Mutex<HashMap<(String, [u8; 32]), Instant>>,
}

impl BrokerGuard {
    /// A guard over the broker's security.
    pub fn new(security: EmbeddedSecurity) -> Self {
        BrokerGuard {
            security,
            verified: Mutex::new(HashMap::new()),
        }
    }
}

/// The topic a subject's permissions are taken from.
fn topic_of(subject: &str) -> &str {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .unwrap_or(subject)
}

impl Guard for BrokerGuard {
    fn authenticate(&self, user: &str, password: &str) -> bool {
        let key = (user.to_owned(), Sha256::digest(password.as_bytes()).into());
        let now = Instant::now();
        {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < VERIFIED_TTL)
            {
                return true;
            }
        }
        if !self.security.verify_password(user, password) {
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, at| now.duration_since(*at) < VERIFIED_TTL);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(key, now);
        true
    }

    fn authorize(&self, user: &str, host: &str, subject: Option<&str>, access: Access) -> bool {
        match (subject, access) {
            (Some(subject), Access::Read) => self.security.authorize_topic(
                user,
                host,
                topic_of(subject),
                EmbeddedOperation::Read,
            ),
            (Some(subject), Access::Write) => self.security.authorize_topic(
                user,
                host,
                topic_of(subject),
                EmbeddedOperation::Write,
            ),
            (None, Access::Read) => true,
            (None, Access::Write) => {
                self.security
                    .authorize_cluster(user, host, EmbeddedOperation::Alter)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_map_to_topics() {
        assert_eq!(topic_of("rides-value"), "rides");
        assert_eq!(topic_of("rides-key"), "rides");
        assert_eq!(topic_of("com.acme.Ride"), "com.acme.Ride");
    }
}
