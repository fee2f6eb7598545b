//! The in-memory backend: `BTreeMap`s, kept per task for the life of the backend (so a
//! task that is closed and reopened on the same instance finds its state, as with fjall).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{KvPairs, StateBackend, StoreWrites, TaskMeta, TaskState};
use crate::error::StoreError;
use crate::record::TaskId;

#[derive(Debug, Default)]
struct MemTask {
    stores: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    meta: TaskMeta,
}

/// State kept in memory; lost when the process ends (restore rebuilds it).
#[derive(Debug, Default, Clone)]
pub struct MemoryBackend {
    tasks: Arc<Mutex<HashMap<TaskId, Arc<Mutex<MemTask>>>>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateBackend for MemoryBackend {
    fn open_task(&self, task: TaskId, stores: &[String]) -> Result<Box<dyn TaskState>, StoreError> {
        let state = lock(&self.tasks)
            .entry(task)
            .or_insert_with(|| {
                Arc::new(Mutex::new(MemTask {
                    stores: BTreeMap::new(),
                    meta: TaskMeta {
                        stream_time_ms: -1,
                        ..TaskMeta::default()
                    },
                }))
            })
            .clone();
        {
            let mut t = lock(&state);
            for s in stores {
                t.stores.entry(s.clone()).or_default();
            }
        }
        Ok(Box::new(MemTaskState(state)))
    }
}

struct MemTaskState(Arc<Mutex<MemTask>>);

impl TaskState for MemTaskState {
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.0)
            .stores
            .get(store)
            .and_then(|s| s.get(key).cloned()))
    }

    fn get_with(
        &self,
        store: &str,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>),
    ) -> Result<(), StoreError> {
        let t = lock(&self.0);
        f(t.stores
            .get(store)
            .and_then(|s| s.get(key))
            .map(Vec::as_slice));
        Ok(())
    }

    fn range(
        &self,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, StoreError> {
        let t = lock(&self.0);
        let Some(s) = t.stores.get(store) else {
            return Ok(Vec::new());
        };
        if !bounds_nonempty(from, to) {
            return Ok(Vec::new());
        }
        Ok(s.range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(
        &mut self,
        writes: &BTreeMap<String, StoreWrites>,
        meta: &TaskMeta,
    ) -> Result<(), StoreError> {
        let mut t = lock(&self.0);
        for (store, w) in writes {
            let s = t.stores.entry(store.clone()).or_default();
            for (k, v) in w {
                match v {
                    Some(v) => {
                        s.insert(k.clone(), v.clone());
                    }
                    None => {
                        s.remove(k);
                    }
                }
            }
        }
        t.meta = meta.clone();
        Ok(())
    }

    fn meta(&self) -> Result<TaskMeta, StoreError> {
        Ok(lock(&self.0).meta.clone())
    }

    fn approximate_len(&self, store: &str) -> u64 {
        lock(&self.0)
            .stores
            .get(store)
            .map_or(0, |s| s.len() as u64)
    }

    fn wipe(&mut self) -> Result<(), StoreError> {
        let mut t = lock(&self.0);
        for s in t.stores.values_mut() {
            s.clear();
        }
        t.meta = TaskMeta {
            stream_time_ms: -1,
            ..TaskMeta::default()
        };
        Ok(())
    }
}

/// False when a range is empty in a way `BTreeMap::range` would panic on (start > end,
/// or start == end with an excluded bound).
pub(crate) fn bounds_nonempty(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        _ => true,
    }
}
