//! State stores.
//!
//! A store is a sorted map of bytes to bytes. Backends ([`memory::MemoryBackend`],
//! [`fjall_backend::FjallBackend`]) hold the *base*: state that matches a committed prefix
//! of the store's changelog. Writes made while processing go to an [`overlay::Overlay`]
//! owned by the task; reads see overlay ∪ base. Only after the Kafka transaction commits
//! does the runtime apply every overlay of a task, together with the changelog offsets
//! and stream time ([`TaskMeta`]), to the backend in one atomic batch.
//!
//! Invariants:
//! - the base of every store of a task is the result of replaying its changelog
//!   partition up to `TaskMeta::changelog_next[store]` (exclusive);
//! - `TaskState::apply` is atomic: data and meta land together or not at all.

pub mod fjall_backend;
pub(crate) mod global;
pub mod memory;
pub mod overlay;

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::StoreError;
use crate::record::TaskId;

/// Key-value pairs returned by a range scan, in key order.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What a backend records about a task beside its data, in the same atomic batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskMeta {
    /// Per store: the next changelog offset to replay (everything before it is applied).
    pub changelog_next: BTreeMap<String, i64>,
    /// The task's stream time (max record timestamp seen), or -1.
    pub stream_time_ms: i64,
}

impl TaskMeta {
    const VERSION: u8 = 1;

    /// Encodes the meta as bytes (format version first).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        out.extend_from_slice(&self.stream_time_ms.to_be_bytes());
        out.extend_from_slice(&(self.changelog_next.len() as u32).to_be_bytes());
        for (store, offset) in &self.changelog_next {
            out.extend_from_slice(&(store.len() as u32).to_be_bytes());
            out.extend_from_slice(store.as_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out
    }

    /// Decodes what [`TaskMeta::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if bytes.len() < n {
                return Err(format!("truncated: need {n} bytes, have {}", bytes.len()));
            }
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            Ok(head)
        }
        let mut b = bytes;
        let version = take(&mut b, 1)?[0];
        if version != Self::VERSION {
            return Err(format!("unknown format version {version}"));
        }
        let i64_of = |s: &[u8]| i64::from_be_bytes(s.try_into().unwrap_or([0; 8]));
        let u32_of = |s: &[u8]| u32::from_be_bytes(s.try_into().unwrap_or([0; 4]));
        let stream_time_ms = i64_of(take(&mut b, 8)?);
        let count = u32_of(take(&mut b, 4)?);
        let mut changelog_next = BTreeMap::new();
        for _ in 0..count {
            let len = u32_of(take(&mut b, 4)?) as usize;
            let store =
                String::from_utf8(take(&mut b, len)?.to_vec()).map_err(|e| e.to_string())?;
            changelog_next.insert(store, i64_of(take(&mut b, 8)?));
        }
        if !b.is_empty() {
            return Err(format!("{} trailing bytes", b.len()));
        }
        Ok(TaskMeta {
            changelog_next,
            stream_time_ms,
        })
    }
}

/// The writes of one store in one commit: key → new value (`None` deletes).
pub type StoreWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A backend: where tasks keep their stores.
pub trait StateBackend: Send + Sync {
    /// Opens (or creates) the stores of a task. Data left by an earlier run is kept.
    fn open_task(&self, task: TaskId, stores: &[String]) -> Result<Box<dyn TaskState>, StoreError>;
    /// Makes recent applies durable (the changelog is the truth, so this only shortens
    /// the next restore).
    fn persist(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The stores of one task inside a backend.
pub trait TaskState: Send {
    /// Reads one key of a store from the base.
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` with one key's value in the base (a backend that can lend it skips the
    /// copy [`TaskState::get`] makes).
    fn get_with(
        &self,
        store: &str,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>),
    ) -> Result<(), StoreError> {
        f(self.get(store, key)?.as_deref());
        Ok(())
    }
    /// Reads a key range of a store from the base, in key order.
    fn range(
        &self,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, StoreError>;
    /// Applies the writes of several stores and the task meta atomically.
    fn apply(
        &mut self,
        writes: &BTreeMap<String, StoreWrites>,
        meta: &TaskMeta,
    ) -> Result<(), StoreError>;
    /// The meta of the last apply (default meta when none happened).
    fn meta(&self) -> Result<TaskMeta, StoreError>;
    /// Number of keys in a store (approximate for persistent backends).
    fn approximate_len(&self, store: &str) -> u64;
    /// Deletes every store of the task (format change or changelog truncated past us).
    fn wipe(&mut self) -> Result<(), StoreError>;
}
