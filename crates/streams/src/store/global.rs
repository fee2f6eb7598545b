//! Global stores: the whole content of a topic (every partition) on every instance,
//! read-only for processors. Fed by the runtime's global thread (or the test driver)
//! straight from the topic, which is their changelog: they need no co-partitioning and
//! no changelog of their own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::KvPairs;

/// One global store: its entries and a counter of the updates applied to it.
#[derive(Default)]
struct Global {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    version: AtomicU64,
}

type Map = Arc<Global>;

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
        if let Some(g) = self.stores.get(store) {
            let mut m = g.map.write().unwrap_or_else(|e| e.into_inner());
            g.version.fetch_add(1, Ordering::Release);
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
        let g = self.stores.get(store)?;
        let m = g.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(key).cloned()
    }

    pub fn all(&self, store: &str) -> KvPairs {
        self.stores
            .get(store)
            .map(|g| {
                let m = g.map.read().unwrap_or_else(|e| e.into_inner());
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            })
            .unwrap_or_default()
    }

    /// Changes whenever an update is applied to `store` (0 before the first).
    pub fn version(&self, store: &str) -> u64 {
        self.stores
            .get(store)
            .map_or(0, |g| g.version.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_moves_with_every_update() {
        let g = GlobalStores::new(["t"]);
        assert_eq!(g.version("t"), 0);
        g.apply("t", b"k".to_vec(), Some(b"v".to_vec()));
        let after_put = g.version("t");
        assert!(after_put > 0);
        g.apply("t", b"k".to_vec(), None);
        assert!(g.version("t") > after_put);
        assert_eq!(g.version("unknown"), 0);
        assert!(g.all("t").is_empty());
    }
}
