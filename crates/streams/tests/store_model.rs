//! Property tests: overlay ∪ base reads and merged range scans against a `BTreeMap`
//! model, on both backends, across commits (apply) and aborts (overlay dropped).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use strom_streams::record::TaskId;
use strom_streams::store::fjall_backend::FjallBackend;
use strom_streams::store::memory::MemoryBackend;
use strom_streams::store::overlay::Overlay;
use strom_streams::store::{StateBackend, TaskMeta};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Commit,
    Abort,
    Get(u8),
    Range(Bound<u8>, Bound<u8>),
}

fn bound() -> impl Strategy<Value = Bound<u8>> {
    prop_oneof![
        (0u8..12).prop_map(Bound::Included),
        (0u8..12).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..10).prop_map(Op::Delete),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
        2 => (0u8..12).prop_map(Op::Get),
        3 => (bound(), bound()).prop_map(|(a, b)| Op::Range(a, b)),
    ]
}

fn key(k: u8) -> Vec<u8> {
    // Two-byte keys so that prefixes and ordering are exercised.
    vec![b'k', k]
}

fn b(bound: &Bound<u8>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(k) => Bound::Included(key(*k)),
        Bound::Excluded(k) => Bound::Excluded(key(*k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn model_range(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    from: &Bound<Vec<u8>>,
    to: &Bound<Vec<u8>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| {
            let lower = match from {
                Bound::Included(f) => *k >= f,
                Bound::Excluded(f) => *k > f,
                Bound::Unbounded => true,
            };
            let upper = match to {
                Bound::Included(t) => *k <= t,
                Bound::Excluded(t) => *k < t,
                Bound::Unbounded => true,
            };
            lower && upper
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run(backend: &dyn StateBackend, ops: &[Op]) {
    let task = TaskId {
        subtopology: 0,
        partition: 0,
    };
    let stores = vec!["s".to_string(), "other".to_string()];
    let mut base = backend.open_task(task, &stores).unwrap();
    let mut overlay = Overlay::default();
    let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut current = committed.clone();
    let mut commits = 0i64;
    for op in ops {
        match op {
            Op::Put(k, v) => {
                overlay.write("s", key(*k), Some(vec![*v]));
                // A write to another store must never leak into "s".
                overlay.write("other", key(*k), Some(vec![0xff]));
                current.insert(key(*k), vec![*v]);
            }
            Op::Delete(k) => {
                overlay.write("s", key(*k), None);
                current.remove(&key(*k));
            }
            Op::Commit => {
                commits += 1;
                let meta = TaskMeta {
                    changelog_next: [("s".to_string(), commits)].into_iter().collect(),
                    stream_time_ms: commits,
                };
                base.apply(overlay.writes(), &meta).unwrap();
                overlay.clear();
                committed = current.clone();
                assert_eq!(base.meta().unwrap(), meta);
            }
            Op::Abort => {
                overlay.clear();
                current = committed.clone();
            }
            Op::Get(k) => {
                assert_eq!(
                    overlay.get(base.as_ref(), "s", &key(*k)).unwrap(),
                    current.get(&key(*k)).cloned()
                );
            }
            Op::Range(from, to) => {
                let (from, to) = (b(from), b(to));
                let got = overlay
                    .range(base.as_ref(), "s", as_ref(&from), as_ref(&to))
                    .unwrap();
                assert_eq!(
                    got,
                    model_range(&current, &from, &to),
                    "range {from:?}..{to:?}"
                );
                // The base alone is the committed state.
                let got = base.range("s", as_ref(&from), as_ref(&to)).unwrap();
                assert_eq!(got, model_range(&committed, &from, &to));
            }
        }
    }
    // Reopening the task sees exactly the committed state (a crash drops the overlay).
    drop(base);
    let reopened = backend.open_task(task, &stores).unwrap();
    let all = reopened
        .range("s", Bound::Unbounded, Bound::Unbounded)
        .unwrap();
    assert_eq!(
        all,
        model_range(&committed, &Bound::Unbounded, &Bound::Unbounded)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn overlay_over_memory_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(&MemoryBackend::new(), &ops);
    }

    #[test]
    fn overlay_over_fjall_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let backend = FjallBackend::open(dir.path()).unwrap();
        run(&backend, &ops);
    }
}

#[test]
fn fjall_state_survives_reopening_the_database_and_wipe_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let task = TaskId {
        subtopology: 1,
        partition: 3,
    };
    let stores = vec!["counts store/with odd:chars".to_string()];
    let meta = TaskMeta {
        changelog_next: [(stores[0].clone(), 7)].into_iter().collect(),
        stream_time_ms: 99,
    };
    {
        let backend = FjallBackend::open(dir.path()).unwrap();
        let mut t = backend.open_task(task, &stores).unwrap();
        let mut o = Overlay::default();
        o.write(&stores[0], b"a".to_vec(), Some(b"1".to_vec()));
        t.apply(o.writes(), &meta).unwrap();
        backend.persist().unwrap();
    }
    let backend = FjallBackend::open(dir.path()).unwrap();
    let mut t = backend.open_task(task, &stores).unwrap();
    assert_eq!(t.meta().unwrap(), meta);
    assert_eq!(t.get(&stores[0], b"a").unwrap(), Some(b"1".to_vec()));
    t.wipe().unwrap();
    assert_eq!(t.get(&stores[0], b"a").unwrap(), None);
    assert_eq!(t.meta().unwrap().changelog_next.len(), 0);
}
