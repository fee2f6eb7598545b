//! Payload encryption: an envelope around any serde's bytes with AES-256-GCM (the
//! seeds' `EncryptedEventSerializer`).
//!
//! ```text
//! record header  strom.encryption.key = <key id>        (which key sealed it)
//! record value   nonce (12 random bytes) ‖ ciphertext ‖ tag (16 bytes)
//! ```
//!
//! The key id is also the AEAD's associated data, so a record whose header was
//! switched to another key id fails to open, as does any flipped bit. Keys come from
//! a keyring — a file or an environment variable holding `id=base64(32 bytes)` lines
//! (or comma-separated entries); the first key is the current one, which seals; every
//! key opens. Rotation without downtime: put the new key first and keep the old ones
//! (readers first, then writers), then [`Envelope::replace_keyring`] or restart; once
//! no record sealed with an old key is left, drop it. A record that does not open
//! (unknown key id, wrong key, tampered bytes) is an error the caller routes to its
//! dead-letter topic with [`EncryptionError`]'s reason, never garbage downstream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;

/// The record header that names the key a value was sealed with.
pub const KEY_ID_HEADER: &str = "strom.encryption.key";
/// Bytes of a nonce.
const NONCE_BYTES: usize = 12;
/// Bytes of the authentication tag.
const TAG_BYTES: usize = 16;
/// How many keys a keyring may hold.
const KEYS_MAX: usize = 1024;

/// Why a keyring does not load or a value does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncryptionError {
    /// The keyring text or file is unusable.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The record names a key the keyring lacks (or has no key header).
    #[error("unknown encryption key `{key_id}`")]
    UnknownKey {
        /// The key id the record names.
        key_id: String,
    },
    /// Authentication failed: wrong key, tampered bytes or a switched key header.
    #[error("payload sealed with key `{key_id}` does not open: wrong key or tampered data")]
    Tampered {
        /// The key id the record names.
        key_id: String,
    },
    /// Shorter than a nonce and a tag.
    #[error("encrypted payload of {len} bytes is too short")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The OS random source failed.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

/// Named AES-256 keys; the first is the current (sealing) key.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: HashMap<String, Key<Aes256Gcm>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// Parses `id=base64key` entries, one per line or comma-separated; `#` comments
    /// and blank lines are skipped. The first entry is the current key.
    pub fn parse(text: &str) -> Result<Keyring, EncryptionError> {
        let bad = |what: String| EncryptionError::Keyring(what);
        let mut current = None;
        let mut keys = HashMap::new();
        for entry in text
            .lines()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let (id, encoded) = entry
                .split_once('=')
                .ok_or_else(|| bad("expected id=base64key entries".into()))?;
            let id = id.trim();
            if id.is_empty() {
                return Err(bad("an empty key id".into()));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| bad(format!("key {id}: not base64: {e}")))?;
            if bytes.len() != 32 {
                return Err(bad(format!(
                    "key {id}: {} bytes, AES-256 needs 32",
                    bytes.len()
                )));
            }
            if keys.len() >= KEYS_MAX {
                return Err(bad(format!("more than {KEYS_MAX} keys")));
            }
            if keys
                .insert(id.to_owned(), *Key::<Aes256Gcm>::from_slice(&bytes))
                .is_some()
            {
                return Err(bad(format!("key {id} appears twice")));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| bad("no keys".into()))?;
        Ok(Keyring { current, keys })
    }

    /// Loads a keyring file.
    pub fn from_file(path: &Path) -> Result<Keyring, EncryptionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EncryptionError::Keyring(format!("{}: {e}", path.display())))?;
        Keyring::parse(&text)
    }

    /// Loads the keyring from environment variable `name`.
    pub fn from_env(name: &str) -> Result<Keyring, EncryptionError> {
        let text = std::env::var(name)
            .map_err(|e| EncryptionError::Keyring(format!("environment variable {name}: {e}")))?;
        Keyring::parse(&text)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// A fresh random key, base64 (for `id=` lines).
    pub fn generate_key() -> Result<String, EncryptionError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| EncryptionError::Random(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(key))
    }
}

/// Seals and opens values with a keyring that can be replaced while running.
#[derive(Debug, Clone)]
pub struct Envelope {
    keyring: Arc<RwLock<Keyring>>,
}

impl Envelope {
    /// An envelope over `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Envelope {
            keyring: Arc::new(RwLock::new(keyring)),
        }
    }

    /// Swaps in a new keyring (rotation); values in flight finish with the old one.
    pub fn replace_keyring(&self, keyring: Keyring) {
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = keyring;
    }

    fn keyring(&self) -> Keyring {
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seals `plaintext` with the current key; returns the key id (the header value)
    /// and the value bytes.
    pub fn seal(&self, plaintext: &[u8]) -> Result<(String, Vec<u8>), EncryptionError> {
        let keyring = self.keyring();
        let key_id = keyring.current.clone();
        let key = keyring
            .keys
            .get(&key_id)
            .ok_or_else(|| EncryptionError::UnknownKey {
                key_id: key_id.clone(),
            })?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| EncryptionError::Random(e.to_string()))?;
        let sealed = Aes256Gcm::new(key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| EncryptionError::Tampered {
                key_id: key_id.clone(),
            })?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok((key_id, out))
    }

    /// Opens a value sealed with key `key_id` (the record's header; `None` if the
    /// record has none).
    pub fn open(&self, key_id: Option<&str>, sealed: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let key_id = key_id.ok_or_else(|| EncryptionError::UnknownKey {
            key_id: String::new(),
        })?;
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(EncryptionError::TooShort { len: sealed.len() });
        }
        let keyring = self.keyring();
        let key = keyring
            .keys
            .get(key_id)
            .ok_or_else(|| EncryptionError::UnknownKey {
                key_id: key_id.to_owned(),
            })?;
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        Aes256Gcm::new(key)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| EncryptionError::Tampered {
                key_id: key_id.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let envelope = Envelope::new(Keyring::parse(&format!("k1={}", key(1))).expect("keyring"));
        let (id, a) = envelope.seal(b"ride r1").expect("seal");
        let (_, b) = envelope.seal(b"ride r1").expect("seal");
        assert_eq!(id, "k1");
        assert_ne!(a, b, "a random nonce per value");
        assert_eq!(a.len(), NONCE_BYTES + 7 + TAG_BYTES);
        assert_eq!(envelope.open(Some("k1"), &a).expect("open"), b"ride r1");
    }

    #[test]
    fn rotation_keeps_old_keys_opening() {
        let envelope = Envelope::new(Keyring::parse(&format!("k1={}", key(1))).expect("keyring"));
        let (old_id, old) = envelope.seal(b"before").expect("seal");
        envelope.replace_keyring(
            Keyring::parse(&format!("k2={}\nk1={}\n", key(2), key(1))).expect("rotated"),
        );
        let (new_id, new) = envelope.seal(b"after").expect("seal");
        assert_eq!((old_id.as_str(), new_id.as_str()), ("k1", "k2"));
        assert_eq!(envelope.open(Some("k1"), &old).expect("old"), b"before");
        assert_eq!(envelope.open(Some("k2"), &new).expect("new"), b"after");
        // Once k1 is dropped, its records are reported, not garbled.
        envelope.replace_keyring(Keyring::parse(&format!("k2={}", key(2))).expect("k2 only"));
        assert_eq!(
            envelope.open(Some("k1"), &old),
            Err(EncryptionError::UnknownKey {
                key_id: "k1".into()
            })
        );
    }

    #[test]
    fn wrong_key_missing_header_and_tampering_are_detected() {
        let envelope = Envelope::new(
            Keyring::parse(&format!("k1={},k2={}", key(1), key(2))).expect("keyring"),
        );
        let (_, sealed) = envelope.seal(b"secret").expect("seal");
        // Another key under the same id.
        let impostor = Envelope::new(Keyring::parse(&format!("k1={}", key(9))).expect("keyring"));
        assert_eq!(
            impostor.open(Some("k1"), &sealed),
            Err(EncryptionError::Tampered {
                key_id: "k1".into()
            })
        );
        // The header switched to another key id (bound as associated data).
        assert_eq!(
            envelope.open(Some("k2"), &sealed),
            Err(EncryptionError::Tampered {
                key_id: "k2".into()
            })
        );
        assert!(matches!(
            envelope.open(None, &sealed),
            Err(EncryptionError::UnknownKey { .. })
        ));
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            assert!(
                envelope.open(Some("k1"), &flipped).is_err(),
                "bit flip at {i}"
            );
        }
        assert!(matches!(
            envelope.open(Some("k1"), &sealed[..10]),
            Err(EncryptionError::TooShort { len: 10 })
        ));
    }

    #[test]
    fn keyrings_parse_strictly() {
        let generated = Keyring::generate_key().expect("random key");
        let ring = Keyring::parse(&format!("# comment\n\nnew={generated}\nold={}\n", key(3)))
            .expect("parses");
        assert_eq!(ring.current_id(), "new");
        assert!(
            !format!("{ring:?}").contains(&generated),
            "Debug never shows keys"
        );
        for bad in [
            "",
            "k1",
            "k1=not base64!",
            "k1=AAAA",
            &format!("k1={},k1={}", key(1), key(2)),
            &format!("={}", key(1)),
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad}");
        }
    }
}
