//! Global stores: the whole content of a topic (every partition) on every instance,
//! read-only for processors. Fed by the runtime's global thread (or the test driver)
//! straight from the topic, which is their changelog: they need no co-partitioning and
//! no changelog of their own.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::KvPairs;

type Map = Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>;

/// The global stores of an instance, by store name.
#[derive(Clone, Default)]
pub(crate) struct GlobalStores {
    stores: Arc<BTreeMap<String, Map>>,
}

impl GlobalStores {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        GlobalStores {
            stores: Arc::new(
                names
                    .into_iter()
                    .map(|n| (n.to_string(), Map::default()))
                    .collect(),
            ),
        }
    }

    /// Applies an update from the topic (`None` deletes).
    pub fn apply(&self, store: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(m) = self.stores.get(store) {
            let mut m = m.write().unwrap_or_else(|e| e.into_inner());
            match value {
                Some(v) => {
                    m.insert(key, v);
                }
                None => {
                    m.remove(&key);
                }
            }
        }
    }

    pub fn contains(&self, store: &str) -> bool {
        self.stores.contains_key(store)
    }

    pub fn get(&self, store: &str, key: &[u8]) -> Option<Vec<u8>> {
        let m = self.stores.get(store)?;
        let m = m.read().unwrap_or_else(|e| e.into_inner());
        m.get(key).cloned()
    }

    pub fn all(&self, store: &str) -> KvPairs {
        self.stores
            .get(store)
            .map(|m| {
                let m = m.read().unwrap_or_else(|e| e.into_inner());
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            })
            .unwrap_or_default()
    }
}
