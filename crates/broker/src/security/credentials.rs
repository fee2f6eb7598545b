//! The users' SCRAM credentials, as the metadata log describes them: one credential
//! per user and mechanism, salted and iterated (RFC 5802), never a password.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::scram::{ScramCredential, ScramMechanism};
use super::SecurityEvent;

/// Every user's credentials.
#[derive(Default)]
pub(crate) struct Credentials {
    users: RwLock<BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>>,
}

impl Credentials {
    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.read().get(user)?.get(&mechanism).cloned()
    }

    /// Each user (all, or those named) with the mechanisms and iteration counts of
    /// their credentials; users without credentials are left out.
    pub fn describe(&self) -> BTreeMap<String, Vec<(ScramMechanism, i32)>> {
        self.read()
            .iter()
            .map(|(user, credentials)| {
                let infos = credentials
                    .values()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect();
                (user.clone(), infos)
            })
            .collect()
    }

    /// Applies a change from the metadata log (other changes are ignored).
    pub fn apply(&self, event: &SecurityEvent) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        match event {
            SecurityEvent::ScramCredentialSet { user, credential } => {
                users
                    .entry(user.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
            }
            SecurityEvent::ScramCredentialDeleted { user, mechanism } => {
                if let Some(credentials) = users.get_mut(user) {
                    credentials.remove(mechanism);
                    if credentials.is_empty() {
                        users.remove(user);
                    }
                }
            }
            SecurityEvent::AclsCreated { .. } | SecurityEvent::AclsDeleted { .. } => {}
        }
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>>
    {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }
}
