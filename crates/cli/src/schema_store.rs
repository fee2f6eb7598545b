//! The schema registry's store over the compacted `_schemas` topic, through the
//! broker's in-process internal-topic API (no network hop, same durability as
//! Produce with acks=all).

use std::sync::Arc;

use strom_broker::InternalTopic;
use strom_registry::store::{RawRecord, Store, StoreError, StoreFuture};

/// The topic holding the registry's records, as in a Confluent deployment.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// [`Store`] over an internal topic.
pub struct TopicStore {
    topic: Arc<InternalTopic>,
}

impl TopicStore {
    /// A store over `topic`.
    pub fn new(topic: InternalTopic) -> Self {
        TopicStore {
            topic: Arc::new(topic),
        }
    }
}

impl Store for TopicStore {
    fn append(&self, records: Vec<RawRecord>) -> StoreFuture<'_, ()> {
        let topic = Arc::clone(&self.topic);
        Box::pin(async move {
            let records: Vec<_> = records.into_iter().map(|(k, v)| (Some(k), v)).collect();
            tokio::task::spawn_blocking(move || topic.append(&records))
                .await
                .map_err(|e| StoreError(format!("append task failed: {e}")))?
                .map(|_| ())
                .map_err(|e| StoreError(e.to_string()))
        })
    }

    fn replay(&self) -> StoreFuture<'_, Vec<RawRecord>> {
        let topic = Arc::clone(&self.topic);
        Box::pin(async move {
            let records = tokio::task::spawn_blocking(move || topic.read_all())
                .await
                .map_err(|e| StoreError(format!("replay task failed: {e}")))?
                .map_err(|e| StoreError(e.to_string()))?;
            // Records without a key are not the registry's; skip them.
            Ok(records
                .into_iter()
                .filter_map(|(k, v)| k.map(|k| (k, v)))
                .collect())
        })
    }
}
