//! [`Registry`]: the model behind a lock, made durable through a [`Store`].
//!
//! Writers are serialized by one async mutex: a write computes its records from the
//! model, appends them to the store (waiting for durability), then applies them. Reads
//! take the model's read lock only, so they never wait for a write's fsync.

use std::sync::{Arc, RwLock};

use crate::error::{RegistryError, Result};
use crate::model::{Change, Model};
use crate::record::Record;
use crate::store::Store;

/// A running registry: state rebuilt from a store, changes written to it.
pub struct Registry {
    model: RwLock<Model>,
    writer: tokio::sync::Mutex<()>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Replays the store into a fresh model. Records that do not decode are skipped
    /// with a warning (a newer Confluent may write record types this one ignores).
    pub async fn open(store: Arc<dyn Store>) -> Result<Arc<Registry>> {
        let records = store
            .replay()
            .await
            .map_err(|e| RegistryError::Store(e.to_string()))?;
        let mut decoded = Vec::with_capacity(records.len());
        for (key, value) in &records {
            match Record::decode(key, value.as_deref()) {
                Ok(Some(record)) => decoded.push(record),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping a _schemas record"),
            }
        }
        let model = Model::rebuild(&decoded);
        tracing::info!(
            records = records.len(),
            applied = decoded.len(),
            "schema registry state rebuilt"
        );
        Ok(Arc::new(Registry {
            model: RwLock::new(model),
            writer: tokio::sync::Mutex::new(()),
            store,
        }))
    }

    /// Runs a read-only query on the model.
    pub fn read<T>(&self, query: impl FnOnce(&Model) -> T) -> T {
        // A poisoned lock means a panic while applying records; the model is still
        // the last consistent fold, so reading it is safe.
        let model = self.model.read().unwrap_or_else(|e| e.into_inner());
        query(&model)
    }

    /// Computes a change, makes its records durable, applies them, returns the answer.
    pub async fn write<T>(&self, change: impl FnOnce(&Model) -> Result<Change<T>>) -> Result<T> {
        let _writer = self.writer.lock().await;
        let (records, answer) = self.read(change)?;
        if records.is_empty() {
            return Ok(answer);
        }
        let raw = records.iter().map(Record::encode).collect();
        self.store
            .append(raw)
            .await
            .map_err(|e| RegistryError::Store(e.to_string()))?;
        let mut model = self.model.write().unwrap_or_else(|e| e.into_inner());
        for record in &records {
            model.apply(record);
        }
        model.debug_check();
        Ok(answer)
    }
}
