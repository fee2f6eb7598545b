//! The byte layout of window, session, join and deduplication state inside one ordinary
//! key-value store (so it shares the overlay, the changelog and restore).
//!
//! Each store holds *families* of entries. A family has
//! - data entries `[2f] ‖ len(key) ‖ key ‖ end ‖ start` → value, ordered by key, then end:
//!   one key's windows (or records) are one range scan;
//! - a time index `[2f+1] ‖ close ‖ len(key) ‖ key ‖ end ‖ start` → empty, ordered by
//!   the time the entry closes: expiry and final emission read only what closed, never
//!   the whole store.
//!
//! Times are encoded big-endian with the sign bit flipped, so byte order is time order.
//! A few named counters live under `[0xFF] ‖ name`.

use std::ops::Bound;

use crate::error::ProcessError;
use crate::task::TaskEnv;

/// One data entry of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: Vec<u8>,
    pub end: i64,
    pub start: i64,
    pub value: Vec<u8>,
}

/// Where a family's entry sits in time: `end`/`start` locate it, `close` is when it
/// expires (grace not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub end: i64,
    pub start: i64,
    pub close: i64,
}

/// Order-preserving encoding of a time.
pub(crate) fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64
}

fn push_key(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
}

/// Splits `len(key) ‖ key ‖ end ‖ start`.
fn split_key_times(b: &[u8]) -> Option<(Vec<u8>, i64, i64)> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let key = b.get(4..4 + len)?.to_vec();
    let times = b.get(4 + len..)?;
    if times.len() != 16 {
        return None;
    }
    Some((key, time_of(&times[..8]), time_of(&times[8..])))
}

fn corrupt(store: &str) -> ProcessError {
    ProcessError::user(format!("corrupt window state entry in store {store}"))
}

/// The watermarks a family's closed entries can be read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// Entries are removed as they are read.
    Expire = b'w' as isize,
    /// Entries are emitted and stay (for queries) until `Expire` reads them.
    Emit = b'e' as isize,
}

/// A family of time-placed entries in a store (borrowing the store's name: making one
/// per record costs nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family<'s> {
    pub store: &'s str,
    pub id: u8,
}

impl<'s> Family<'s> {
    /// Family `id` (0..127; 0xFF starts the counters) of `store`.
    pub fn new(store: &'s str, id: u8) -> Self {
        Family { store, id }
    }

    fn data_prefix(&self) -> u8 {
        self.id * 2
    }

    fn index_prefix(&self) -> u8 {
        self.id * 2 + 1
    }

    fn data_key(&self, key: &[u8], end: i64, start: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + key.len());
        out.push(self.data_prefix());
        push_key(&mut out, key);
        out.extend_from_slice(&time_bytes(end));
        out.extend_from_slice(&time_bytes(start));
        out
    }

    fn index_key(&self, key: &[u8], slot: Slot) -> Vec<u8> {
        let mut out = Vec::with_capacity(29 + key.len());
        out.push(self.index_prefix());
        out.extend_from_slice(&time_bytes(slot.close));
        push_key(&mut out, key);
        out.extend_from_slice(&time_bytes(slot.end));
        out.extend_from_slice(&time_bytes(slot.start));
        out
    }

    /// The first and last possible data key of `key`: every entry of the key lies in
    /// between (inclusive).
    pub fn data_range(&self, key: &[u8]) -> (Vec<u8>, Vec<u8>) {
        (
            self.data_key(key, i64::MIN, i64::MIN),
            self.data_key(key, i64::MAX, i64::MAX),
        )
    }

    /// Splits a data key into (key, end, start).
    pub fn split_data_key(k: &[u8]) -> Option<(Vec<u8>, i64, i64)> {
        split_key_times(k.get(1..)?)
    }

    /// The value at (key, end, start).
    pub fn get(
        &self,
        env: &TaskEnv,
        key: &[u8],
        end: i64,
        start: i64,
    ) -> Result<Option<Vec<u8>>, ProcessError> {
        env.store_get(self.store, &self.data_key(key, end, start))
    }

    /// Calls `f` with the value at (key, end, start), without copying it.
    pub fn get_with<R>(
        &self,
        env: &TaskEnv,
        key: &[u8],
        end: i64,
        start: i64,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, ProcessError> {
        env.store_get_with(self.store, &self.data_key(key, end, start), f)
    }

    /// Writes an entry and its index entry.
    pub fn put(
        &self,
        env: &mut TaskEnv,
        key: &[u8],
        slot: Slot,
        value: Vec<u8>,
    ) -> Result<(), ProcessError> {
        env.store_write(
            self.store,
            self.data_key(key, slot.end, slot.start),
            Some(value),
        )?;
        env.store_write(self.store, self.index_key(key, slot), Some(Vec::new()))
    }

    /// Updates the value of an entry whose index entry already exists.
    pub fn update(
        &self,
        env: &mut TaskEnv,
        key: &[u8],
        end: i64,
        start: i64,
        value: Vec<u8>,
    ) -> Result<(), ProcessError> {
        env.store_write(self.store, self.data_key(key, end, start), Some(value))
    }

    /// Deletes an entry written with [`Family::update`] only (no index entry).
    pub fn forget(
        &self,
        env: &mut TaskEnv,
        key: &[u8],
        end: i64,
        start: i64,
    ) -> Result<(), ProcessError> {
        env.store_write(self.store, self.data_key(key, end, start), None)
    }

    /// Deletes an entry and its index entry.
    pub fn remove(&self, env: &mut TaskEnv, key: &[u8], slot: Slot) -> Result<(), ProcessError> {
        env.store_write(self.store, self.data_key(key, slot.end, slot.start), None)?;
        env.store_write(self.store, self.index_key(key, slot), None)
    }

    /// The entries of `key` whose end lies in `[end_from, end_to]`, by end then start.
    pub fn fetch(
        &self,
        env: &TaskEnv,
        key: &[u8],
        end_from: i64,
        end_to: i64,
    ) -> Result<Vec<Entry>, ProcessError> {
        if end_from > end_to {
            return Ok(Vec::new());
        }
        let from = self.data_key(key, end_from, i64::MIN);
        let to = self.data_key(key, end_to, i64::MAX);
        let rows = env.store_range(
            self.store,
            Bound::Included(from.as_slice()),
            Bound::Included(to.as_slice()),
        )?;
        rows.into_iter()
            .map(|(k, value)| {
                let (key, end, start) =
                    split_key_times(&k[1..]).ok_or_else(|| corrupt(self.store))?;
                Ok(Entry {
                    key,
                    end,
                    start,
                    value,
                })
            })
            .collect()
    }

    /// The entries whose close time is at most `close_to` and that no earlier call
    /// returned, by close time, key, end, start (the index order): what expires or is
    /// emitted now. The caller removes them. A watermark kept in the store (through the
    /// overlay, so an abort rolls it back) bounds the scan from below, so each call reads
    /// only what closed since the last one — never the entries already removed.
    ///
    /// Entries must be put with a close time above every `close_to` passed so far (an
    /// open entry closes in the future).
    ///
    /// `cursor` names the watermark: two cursors over one family (emission at close,
    /// removal later) move independently.
    pub fn take_closed(
        &self,
        env: &mut TaskEnv,
        cursor: Cursor,
        close_to: i64,
    ) -> Result<Vec<(Vec<u8>, Slot)>, ProcessError> {
        let mark_key = [0xFF, cursor as u8, self.id];
        let mark = match env.store_get(self.store, &mark_key)? {
            Some(b) => Some(i64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| corrupt(self.store))?,
            )),
            None => None,
        };
        if mark.is_some_and(|m| m >= close_to) {
            return Ok(Vec::new());
        }
        let bound = |t: Option<i64>| -> Vec<u8> {
            let mut b = vec![self.index_prefix()];
            match t {
                Some(t) => b.extend_from_slice(&time_bytes(t)),
                None => b[0] += 1,
            }
            b
        };
        let from = match mark.and_then(|m| m.checked_add(1)) {
            Some(next) => bound(Some(next)),
            None => vec![self.index_prefix()],
        };
        let to = bound(close_to.checked_add(1));
        let rows = env.store_range(
            self.store,
            Bound::Included(from.as_slice()),
            Bound::Excluded(to.as_slice()),
        )?;
        env.store_write(
            self.store,
            mark_key.to_vec(),
            Some(close_to.to_be_bytes().to_vec()),
        )?;
        rows.into_iter()
            .map(|(k, _)| {
                let close = time_of(k.get(1..9).ok_or_else(|| corrupt(self.store))?);
                let (key, end, start) =
                    split_key_times(&k[9..]).ok_or_else(|| corrupt(self.store))?;
                Ok((key, Slot { end, start, close }))
            })
            .collect()
    }
}

/// A named 64-bit counter in a store (e.g. a sequence number), written through the
/// overlay like any entry so an abort rolls it back.
pub(crate) fn next_sequence(env: &mut TaskEnv, store: &str) -> Result<i64, ProcessError> {
    let key = [0xFF, b's', b'e', b'q'];
    let current = match env.store_get(store, &key)? {
        Some(b) => i64::from_be_bytes(b.as_slice().try_into().map_err(|_| corrupt(store))?),
        None => 0,
    };
    env.store_write(
        store,
        key.to_vec(),
        Some((current + 1).to_be_bytes().to_vec()),
    )?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_orders_like_time() {
        let times = [i64::MIN, -10, -1, 0, 1, 10, i64::MAX];
        for w in times.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]));
            assert_eq!(time_of(&time_bytes(w[0])), w[0]);
        }
    }

    #[test]
    fn keys_split_back() {
        let f = Family::new("s", 3);
        let k = f.data_key(b"abc", 7, -2);
        assert_eq!(k[0], 6);
        assert_eq!(split_key_times(&k[1..]), Some((b"abc".to_vec(), 7, -2)));
        assert_eq!(split_key_times(&k[1..k.len() - 1]), None);
    }
}
