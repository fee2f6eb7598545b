//! The per-task overlay: uncommitted writes of every store of a task. Reads see
//! overlay ∪ base; range scans merge both (an overlay entry wins, a `None` hides the base
//! key). The overlay also folds repeated updates of a key within a commit interval, so
//! the changelog gets one record per key per commit.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{KvPairs, StoreWrites, TaskState};
use crate::error::StoreError;

/// Uncommitted writes of a task, per store.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    stores: BTreeMap<String, StoreWrites>,
    bytes: usize,
    /// While a record is processed: the previous overlay entry of every key it wrote,
    /// so that a failed record can be undone.
    journal: Option<Vec<Undo>>,
}

type Undo = (String, Vec<u8>, Option<Option<Vec<u8>>>, usize);

impl Overlay {
    /// Records a put (`Some`) or a delete (`None`).
    pub fn write(&mut self, store: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        let bytes_before = self.bytes;
        self.bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        let previous = match self.stores.get_mut(store) {
            Some(s) => s.insert(key.clone(), value),
            None => self
                .stores
                .entry(store.to_string())
                .or_default()
                .insert(key.clone(), value),
        };
        if let Some(journal) = self.journal.as_mut() {
            journal.push((store.to_string(), key, previous, bytes_before));
        }
    }

    /// Starts journaling the writes of one record.
    pub fn begin_record(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the record's writes.
    pub fn end_record(&mut self) {
        self.journal = None;
    }

    /// A point inside the current record's journal to undo back to (a processor whose
    /// failure goes to a retry topic undoes only its own writes, not those of the
    /// operators before it).
    pub fn savepoint(&self) -> usize {
        self.journal.as_ref().map_or(0, Vec::len)
    }

    /// Undoes the writes made since `savepoint` (keeps journaling the record).
    pub fn undo_to(&mut self, savepoint: usize) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let undone = journal.split_off(savepoint.min(journal.len()));
        self.undo(undone);
    }

    fn undo(&mut self, journal: Vec<Undo>) {
        for (store, key, previous, bytes_before) in journal.into_iter().rev() {
            if let Some(s) = self.stores.get_mut(&store) {
                match previous {
                    Some(p) => {
                        s.insert(key, p);
                    }
                    None => {
                        s.remove(&key);
                    }
                }
            }
            self.bytes = bytes_before;
        }
    }

    /// Undoes the writes made since [`Overlay::begin_record`].
    pub fn undo_record(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        self.undo(journal);
    }

    /// Reads a key: the overlay's entry if any, else the base's.
    pub fn get(
        &self,
        base: &dyn TaskState,
        store: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.stores.get(store).and_then(|s| s.get(key)) {
            return Ok(v.clone());
        }
        base.get(store, key)
    }

    /// A range scan of overlay ∪ base, in key order.
    pub fn range(
        &self,
        base: &dyn TaskState,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, StoreError> {
        let base_rows = base.range(store, from, to)?;
        let Some(over) = self.stores.get(store) else {
            return Ok(base_rows);
        };
        if !super::memory::bounds_nonempty(from, to) {
            return Ok(Vec::new());
        }
        let mut over_iter = over.range::<[u8], _>((from, to)).peekable();
        let mut out = Vec::with_capacity(base_rows.len());
        let mut base_iter = base_rows.into_iter().peekable();
        loop {
            let take_over = match (base_iter.peek(), over_iter.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((ok, _))) => {
                    if ok.as_slice() <= bk.as_slice() {
                        if ok.as_slice() == bk.as_slice() {
                            base_iter.next();
                        }
                        true
                    } else {
                        false
                    }
                }
            };
            if take_over {
                if let Some((k, Some(v))) = over_iter.next() {
                    out.push((k.clone(), v.clone()));
                }
            } else if let Some(row) = base_iter.next() {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Approximate bytes written since the last commit (a commit trigger).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.stores.values().all(BTreeMap::is_empty)
    }

    /// The writes, per store (deduplicated: the last write of each key).
    pub fn writes(&self) -> &BTreeMap<String, StoreWrites> {
        &self.stores
    }

    /// Drops every write (after an apply, or an abort).
    pub fn clear(&mut self) {
        self.stores.clear();
        self.bytes = 0;
        self.journal = None;
    }
}
