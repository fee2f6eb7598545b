//! The encryption envelope as a serde: any serde's bytes sealed with AES-256-GCM, the
//! key id in a record header.

use strom_registry::client::encryption::{Envelope, KEY_ID_HEADER};

use crate::error::SerdeError;
use crate::record::Headers;
use crate::serdes::Serde;

/// Wraps serde `S`: the payload `S` writes is sealed with the keyring's current key,
/// whose id goes in the [`KEY_ID_HEADER`] header (and is bound to the ciphertext);
/// reading opens it with the key the header names. Rotation without downtime: give
/// the readers a keyring with the new key (still sealing with the old one), then the
/// writers one with the new key first; replace a running serde's keyring through
/// [`EncryptedSerde::envelope`]. A record that does not open — no header, a key the
/// keyring lacks, a wrong key, tampered bytes — is a deserialization error naming the
/// reason (the dead-letter topic's `strom.error` header), never garbage downstream.
///
/// Null payloads (tombstones) stay null. The key id travels in a header, so use this
/// serde at sources and sinks; stores have no headers.
pub struct EncryptedSerde<S> {
    inner: S,
    envelope: Envelope,
}

impl<S> EncryptedSerde<S> {
    /// `inner`'s payloads sealed with `envelope`'s keys.
    pub fn new(inner: S, envelope: Envelope) -> Self {
        EncryptedSerde { inner, envelope }
    }

    /// The envelope (a shared handle): [`Envelope::replace_keyring`] rotates the keys
    /// of every serde built on it.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}

/// What reading or writing without headers says.
const NEEDS_HEADERS: &str = "an encrypted payload carries its key id in a record header: use EncryptedSerde where records have headers (sources and sinks)";

impl<T, S: Serde<T>> Serde<T> for EncryptedSerde<S> {
    fn serialize(&self, _value: &T) -> Result<Vec<u8>, SerdeError> {
        Err(SerdeError::Invalid(NEEDS_HEADERS.into()))
    }

    fn deserialize(&self, _bytes: &[u8]) -> Result<T, SerdeError> {
        Err(SerdeError::Invalid(NEEDS_HEADERS.into()))
    }

    fn serialize_with_headers(
        &self,
        value: &T,
        headers: &mut Headers,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(plain) = self.inner.serialize_with_headers(value, headers)? else {
            return Ok(None);
        };
        let (key_id, sealed) = self
            .envelope
            .seal(&plain)
            .map_err(|e| SerdeError::Invalid(e.to_string()))?;
        headers.retain(|(name, _)| name != KEY_ID_HEADER);
        headers.push((KEY_ID_HEADER.to_owned(), Some(key_id.into_bytes())));
        Ok(Some(sealed))
    }

    fn deserialize_with_headers(
        &self,
        bytes: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<T, SerdeError> {
        let Some(sealed) = bytes else {
            return self.inner.deserialize_with_headers(None, headers);
        };
        let key_id = headers
            .iter()
            .rev()
            .find(|(name, _)| name == KEY_ID_HEADER)
            .and_then(|(_, value)| value.as_deref())
            .map(|v| std::str::from_utf8(v).map_err(|_| "a key id that is not UTF-8"))
            .transpose()
            .map_err(|e| SerdeError::Invalid(e.into()))?
            .ok_or_else(|| {
                SerdeError::Invalid(format!(
                    "no {KEY_ID_HEADER} header: the payload is not encrypted or lost its key id"
                ))
            })?;
        let plain = self
            .envelope
            .open(Some(key_id), sealed)
            .map_err(|e| SerdeError::Invalid(e.to_string()))?;
        self.inner.deserialize_with_headers(Some(&plain), headers)
    }
}
