//! The cleaner's bounded map from key digest to the latest offset of that key.
//!
//! A fixed number of slots (`memory / 24` bytes: a 16-byte digest and an 8-byte
//! offset), open addressing with linear probing, filled to at most 90 % so probes
//! stay short. When it is full the cleaning covers only the offsets it got to, and
//! the next cleaning continues from there (several passes when the keys of the dirty
//! section do not fit). Memory is zero-allocated per cleaning, so only the slots a
//! cleaning touches cost resident memory.
//!
//! Keys are identified by 128 bits of SHA-256, like Kafka's MD5 digests: two keys
//! sharing a digest would make the older one disappear, and a cryptographic digest
//! means producers cannot arrange that.

use sha2::{Digest, Sha256};

/// Bytes per slot: digest (16) + offset (8).
pub const SLOT_BYTES: usize = 24;
/// Share of the slots that may be used.
const LOAD_FACTOR: f64 = 0.9;

/// Digest of a record key.
pub(crate) type KeyDigest = [u8; 16];

/// Digest of `key`. Never all zeros (that marks an empty slot).
pub(crate) fn digest(key: &[u8]) -> KeyDigest {
    let full = Sha256::digest(key);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    if out == [0u8; 16] {
        out[0] = 1;
    }
    out
}

/// Key digest → latest offset, with a fixed capacity.
pub(crate) struct OffsetMap {
    digests: Vec<KeyDigest>,
    offsets: Vec<u64>,
    used: usize,
    capacity: usize,
}

impl OffsetMap {
    /// A map using about `memory_bytes` (at least 64 slots).
    pub(crate) fn with_memory(memory_bytes: usize) -> Self {
        let slots = (memory_bytes / SLOT_BYTES).max(64);
        OffsetMap {
            // `vec![0; n]` of zeroable types is calloc: untouched pages stay free.
            digests: vec![[0u8; 16]; slots],
            offsets: vec![0u64; slots],
            used: 0,
            capacity: ((slots as f64) * LOAD_FACTOR) as usize,
        }
    }

    /// Number of keys held.
    pub(crate) fn len(&self) -> usize {
        self.used
    }

    fn slot(&self, digest: &KeyDigest) -> usize {
        let mut start = [0u8; 8];
        start.copy_from_slice(&digest[..8]);
        (u64::from_le_bytes(start) % self.digests.len() as u64) as usize
    }

    /// Records `offset` as the latest of `digest`. False when the key is new and the
    /// map is full (nothing changed).
    pub(crate) fn put(&mut self, digest: &KeyDigest, offset: u64) -> bool {
        let slots = self.digests.len();
        let mut i = self.slot(digest);
        loop {
            if self.digests[i] == *digest {
                self.offsets[i] = offset;
                return true;
            }
            if self.digests[i] == [0u8; 16] {
                if self.used >= self.capacity {
                    return false;
                }
                self.digests[i] = *digest;
                self.offsets[i] = offset;
                self.used += 1;
                return true;
            }
            i = (i + 1) % slots;
        }
    }

    /// The latest offset recorded for `digest`.
    pub(crate) fn get(&self, digest: &KeyDigest) -> Option<u64> {
        let slots = self.digests.len();
        let mut i = self.slot(digest);
        loop {
            if self.digests[i] == *digest {
                return Some(self.offsets[i]);
            }
            if self.digests[i] == [0u8; 16] {
                return None;
            }
            i = (i + 1) % slots;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offsets_are_kept_until_the_map_is_full() {
        let mut map = OffsetMap::with_memory(100 * SLOT_BYTES);
        for round in 0..3u64 {
            for key in 0..50u64 {
                assert!(map.put(&digest(&key.to_be_bytes()), round * 100 + key));
            }
        }
        assert_eq!(map.len(), 50);
        assert_eq!(map.get(&digest(&7u64.to_be_bytes())), Some(207));
        assert_eq!(map.get(&digest(b"absent")), None);
        // 90 of 100 slots may be used: 40 more keys fit, the 41st does not.
        for key in 50..90u64 {
            assert!(map.put(&digest(&key.to_be_bytes()), key));
        }
        assert!(!map.put(&digest(&90u64.to_be_bytes()), 90));
        assert_eq!(map.get(&digest(&90u64.to_be_bytes())), None);
        // A known key can still be updated when full.
        assert!(map.put(&digest(&1u64.to_be_bytes()), 999));
        assert_eq!(map.get(&digest(&1u64.to_be_bytes())), Some(999));
    }
}
