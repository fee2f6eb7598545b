//! The persistent backend on `fjall`: one database per instance state directory, a
//! keyspace per store × task, and a `__meta` keyspace per task written in the same
//! `WriteBatch` as the data it describes. A task is dropped with `delete_keyspace`, never
//! `clear()` (see DESIGN.md).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{KvPairs, StateBackend, StoreWrites, TaskMeta, TaskState};
use crate::error::StoreError;
use crate::record::TaskId;

const META_KEY: &[u8] = b"meta";

fn fj(e: fjall::Error) -> StoreError {
    StoreError::Fjall(e.to_string())
}

/// Keyspace names allow alphanumerics and `_-.#$`; anything else is escaped as `$xx`.
fn keyspace_name(kind: &str, store: &str, task: TaskId) -> String {
    let mut out = String::with_capacity(store.len() + 16);
    out.push_str(kind);
    out.push('.');
    for c in store.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("${b:02x}"));
            }
        }
    }
    out.push_str(&format!("#{}_{}", task.subtopology, task.partition));
    out
}

/// State in a fjall database under the instance's state directory.
#[derive(Clone)]
pub struct FjallBackend {
    db: Database,
}

impl FjallBackend {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path)?;
        let db = Database::builder(path).open().map_err(fj)?;
        Ok(FjallBackend { db })
    }
}

impl StateBackend for FjallBackend {
    fn open_task(&self, task: TaskId, stores: &[String]) -> Result<Box<dyn TaskState>, StoreError> {
        let meta = self
            .db
            .keyspace(
                &keyspace_name("__meta", "", task),
                KeyspaceCreateOptions::default,
            )
            .map_err(fj)?;
        let mut keyspaces = BTreeMap::new();
        for s in stores {
            let ks = self
                .db
                .keyspace(&keyspace_name("s", s, task), KeyspaceCreateOptions::default)
                .map_err(fj)?;
            keyspaces.insert(s.clone(), ks);
        }
        Ok(Box::new(FjallTask {
            db: self.db.clone(),
            task,
            meta,
            stores: keyspaces,
        }))
    }

    fn persist(&self) -> Result<(), StoreError> {
        self.db.persist(PersistMode::SyncData).map_err(fj)
    }
}

struct FjallTask {
    db: Database,
    task: TaskId,
    meta: Keyspace,
    stores: BTreeMap<String, Keyspace>,
}

impl FjallTask {
    fn keyspace(&self, store: &str) -> Result<&Keyspace, StoreError> {
        self.stores
            .get(store)
            .ok_or_else(|| StoreError::CorruptMeta {
                store: store.to_string(),
                reason: "store not opened for this task".into(),
            })
    }
}

impl TaskState for FjallTask {
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .keyspace(store)?
            .get(key)
            .map_err(fj)?
            .map(|v| v.to_vec()))
    }

    fn range(
        &self,
        store: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KvPairs, StoreError> {
        if !super::memory::bounds_nonempty(from, to) {
            return Ok(Vec::new());
        }
        let ks = self.keyspace(store)?;
        let mut out = Vec::new();
        for guard in ks.range::<&[u8], _>((from, to)) {
            let (k, v) = guard.into_inner().map_err(fj)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn apply(
        &mut self,
        writes: &BTreeMap<String, StoreWrites>,
        meta: &TaskMeta,
    ) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for (store, w) in writes {
            let ks = self.keyspace(store)?;
            for (k, v) in w {
                match v {
                    Some(v) => batch.insert(ks, k.as_slice(), v.as_slice()),
                    None => batch.remove(ks, k.as_slice()),
                }
            }
        }
        batch.insert(&self.meta, META_KEY, meta.encode());
        batch.commit().map_err(fj)
    }

    fn meta(&self) -> Result<TaskMeta, StoreError> {
        match self.meta.get(META_KEY).map_err(fj)? {
            None => Ok(TaskMeta {
                stream_time_ms: -1,
                ..TaskMeta::default()
            }),
            Some(bytes) => TaskMeta::decode(&bytes).map_err(|reason| StoreError::CorruptMeta {
                store: format!("__meta of task {}", self.task),
                reason,
            }),
        }
    }

    fn approximate_len(&self, store: &str) -> u64 {
        self.stores
            .get(store)
            .map_or(0, |k| k.approximate_len() as u64)
    }

    fn wipe(&mut self) -> Result<(), StoreError> {
        let names: Vec<String> = self.stores.keys().cloned().collect();
        for name in names {
            if let Some(ks) = self.stores.remove(&name) {
                self.db.delete_keyspace(ks).map_err(fj)?;
            }
            // A new keyspace id under the same name: the deleted one is gone once its
            // last handle drops.
            let ks = self
                .db
                .keyspace(
                    &keyspace_name("s", &name, self.task),
                    KeyspaceCreateOptions::default,
                )
                .map_err(fj)?;
            self.stores.insert(name, ks);
        }
        self.meta.remove(META_KEY).map_err(fj)?;
        Ok(())
    }
}
