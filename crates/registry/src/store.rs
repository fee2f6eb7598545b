//! Where the registry's records live. The binary implements [`Store`] over the
//! compacted `_schemas` topic; tests use [`MemoryStore`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A record's key and value bytes; a `None` value is a tombstone.
pub type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// A boxed future, so that [`Store`] can be used as a trait object.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("schema store: {0}")]
pub struct StoreError(pub String);

/// The registry's durable log of records.
pub trait Store: Send + Sync {
    /// Appends records, in order, as one atomic batch, and resolves once they are
    /// durable (a later [`Store::replay`] returns them).
    fn append(&self, records: Vec<RawRecord>) -> StoreFuture<'_, ()>;

    /// Every record appended so far, oldest first (after compaction, at least the
    /// latest record of every key, in order).
    fn replay(&self) -> StoreFuture<'_, Vec<RawRecord>>;
}

/// A store in memory. Clones share the records, so a test can "restart" a registry on
/// the same store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<Vec<RawRecord>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record appended so far.
    pub fn records(&self) -> Vec<RawRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Store for MemoryStore {
    fn append(&self, records: Vec<RawRecord>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.records
                .lock()
                .map_err(|_| StoreError("memory store poisoned".into()))?
                .extend(records);
            Ok(())
        })
    }

    fn replay(&self) -> StoreFuture<'_, Vec<RawRecord>> {
        Box::pin(async move { Ok(self.records()) })
    }
}
