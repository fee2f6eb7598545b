//! The cleaner's bounded map from key digest to the latest offset of that key.
//!
//! A fixed number of slots (`memory / 24` bytes: a 16-byte digest and an 8-byte
//! offset), open addressing with linear probing, filled to at most 90 % so probes
//! stay short. When it is full the cleaning covers only the offsets it got to, and
//! the next cleaning continues from there (several passes when the keys of the dirty
//! section do not fit). The map is sized for the records of the dirty section (an
//! upper bound of its keys) within that memory, and zero-allocated per cleaning, so
//! only the slots a cleaning touches cost resident memory.
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

/// Key digest → latest offset, with a fixed capacity. A slot is
/// `[digest high, digest low, offset]`, so a probe touches one cache line.
pub(crate) struct OffsetMap {
    slots: Vec<[u64; 3]>,
    used: usize,
    capacity: usize,
}

fn halves(digest: &KeyDigest) -> (u64, u64) {
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&digest[..8]);
    low.copy_from_slice(&digest[8..]);
    (u64::from_le_bytes(high), u64::from_le_bytes(low))
}

impl OffsetMap {
    /// A map for at most `keys_max` keys using at most about `memory_bytes` (at
    /// least 64 slots): no bigger than the dirty section can fill.
    pub(crate) fn with_memory(memory_bytes: usize, keys_max: usize) -> Self {
        let needed = ((keys_max as f64 / LOAD_FACTOR) as usize).saturating_add(1);
        let slots = (memory_bytes / SLOT_BYTES).min(needed).max(64);
        OffsetMap {
            // `vec![[0; 3]; n]` is calloc: untouched pages cost no memory.
            slots: vec![[0u64; 3]; slots],
            used: 0,
            capacity: ((slots as f64) * LOAD_FACTOR) as usize,
        }
    }

    /// Number of keys held.
    pub(crate) fn len(&self) -> usize {
        self.used
    }

    /// The slot holding `digest`, or the empty slot where it would go.
    fn find(&self, (high, low): (u64, u64)) -> usize {
        let slots = self.slots.len();
        let mut i = (high % slots as u64) as usize;
        loop {
            let slot = &self.slots[i];
            if (slot[0] == high && slot[1] == low) || (slot[0] == 0 && slot[1] == 0) {
                return i;
            }
            i = (i + 1) % slots;
        }
    }

    /// Records `offset` as the latest of `digest`. False when the key is new and the
    /// map is full (nothing changed).
    pub(crate) fn put(&mut self, digest: &KeyDigest, offset: u64) -> bool {
        let (high, low) = halves(digest);
        let i = self.find((high, low));
        let slot = &mut self.slots[i];
        if slot[0] == 0 && slot[1] == 0 {
            if self.used >= self.capacity {
                return false;
            }
            self.used += 1;
        }
        *slot = [high, low, offset];
        true
    }

    /// The latest offset recorded for `digest`.
    pub(crate) fn get(&self, digest: &KeyDigest) -> Option<u64> {
        let (high, low) = halves(digest);
        let slot = &self.slots[self.find((high, low))];
        (slot[0] == high && slot[1] == low).then_some(slot[2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offsets_are_kept_until_the_map_is_full() {
        let mut map = OffsetMap::with_memory(100 * SLOT_BYTES, usize::MAX);
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
