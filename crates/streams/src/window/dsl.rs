//! The windowed DSL: `group_by_key().windowed_by(..)` then an aggregation.
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! // The seeds' 5-minute view counts per content id, final results only.
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("video-views", StringSerde, StringSerde)
//!     .group_by_key(StringSerde, StringSerde)
//!     .windowed_by(TimeWindows::of_size(5 * 60_000).grace(10_000))
//!     .count("views-5m")
//!     .to_stream()
//!     .map(|w: Windowed<String>, n: Option<i64>| (format!("{}@{}", w.key, w.window.start_ms), n.unwrap_or(0)))
//!     .to("view-counts", StringSerde, I64Serde);
//! let mut driver = TopologyTestDriver::new(&builder.build().unwrap()).unwrap();
//! let (c1, view) = ("c1".to_string(), "view".to_string());
//! driver.pipe("video-views", &StringSerde, &StringSerde, &c1, &view, 1_000).unwrap();
//! driver.pipe("video-views", &StringSerde, &StringSerde, &c1, &view, 2_000).unwrap();
//! // Nothing yet: the window [0, 300000) closes at stream time 310000.
//! assert!(driver.read_output("view-counts", &StringSerde, &I64Serde).unwrap().is_empty());
//! driver.pipe("video-views", &StringSerde, &StringSerde, &c1, &view, 310_000).unwrap();
//! let out = driver.read_output("view-counts", &StringSerde, &I64Serde).unwrap();
//! assert_eq!((out[0].key.as_str(), out[0].value), ("c1@0", 2));
//! ```

use std::sync::Arc;

use super::aggregate::{WindowAggregate, WindowSpec};
use super::aggregations::{self, Aggregation};
use super::{Emit, SessionWindows, SlidingWindows, TimeWindows, Windowed};
use crate::dsl::{ArcSerde, KGroupedStream, KTable};
use crate::processor::Data;
use crate::serdes::{Nullable, Serde};

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Tumbling or hopping windows.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        self.windowed(WindowSpec::Time(windows))
    }

    /// Sliding (record-defined) windows.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        self.windowed(WindowSpec::Sliding(windows))
    }

    /// Session windows.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            inner: self.windowed(WindowSpec::Session(windows)),
        }
    }

    fn windowed(&self, spec: WindowSpec) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.clone(),
                key_serde: self.key_serde.clone(),
                value_serde: self.value_serde.clone(),
            },
            spec,
            emit: Emit::default(),
            query_retention_ms: 0,
        }
    }
}

/// A grouped stream over tumbling, hopping or sliding windows, ready to aggregate.
/// Results are a table keyed by [`Windowed`] key.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    spec: WindowSpec,
    emit: Emit,
    query_retention_ms: i64,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// When results are emitted (default: once, when the window closes).
    pub fn emit(mut self, emit: Emit) -> Self {
        self.emit = emit;
        self
    }

    /// Keeps closed windows in the store for `ms` more of stream time, readable by
    /// interactive queries (default 0: a window leaves the store when it closes).
    pub fn retain_for_queries(mut self, ms: i64) -> Self {
        self.query_retention_ms = ms.max(0);
        self
    }

    /// Aggregates with a ready-made or custom [`Aggregation`], in the store `store_name`.
    pub fn aggregate_with<A: Data, O: Data>(
        &self,
        store_name: &str,
        aggregation: Aggregation<V, A, O>,
    ) -> KTable<Windowed<K>, O> {
        let builder = &self.grouped.stream.builder;
        builder.state.borrow_mut().add_store(store_name);
        let (spec, emit, store) = (self.spec, self.emit, store_name.to_string());
        let query_retention_ms = self.query_retention_ms;
        let (key_serde, value_serde) = (
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        let changes = self.grouped.stream.process(
            move || WindowAggregate {
                spec,
                emit,
                store: store.clone(),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                agg: aggregation.clone(),
                query_retention_ms,
            },
            &[store_name],
        );
        KTable {
            changes: changes.keep_partitioning(),
            getter: None,
        }
    }

    /// Records per key and window.
    pub fn count(&self, store_name: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(store_name, aggregations::count())
    }

    /// Folds values per key and window: `fold(aggregate, value)` from `init()`.
    pub fn aggregate<A: Data>(
        &self,
        store_name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(A, V) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        // Time and sliding windows never merge two aggregates.
        let agg = Aggregation::new(init, fold, |a, _| a, A::clone, aggregate_serde);
        self.aggregate_with(store_name, agg)
    }

    /// Combines values per key and window with `reduce(aggregate, value)`.
    pub fn reduce(
        &self,
        store_name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with(
            store_name,
            reducing(reduce, self.grouped.value_serde.clone()),
        )
    }
}

/// `reduce` as an aggregation over `Option<V>` (the first value starts the aggregate).
fn reducing<V: Data>(
    reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    value_serde: Arc<dyn Serde<V>>,
) -> Aggregation<V, Option<V>, V> {
    let reduce = Arc::new(reduce);
    let both = move |a: Option<V>, b: Option<V>| match (a, b) {
        (Some(a), Some(b)) => Some(reduce(a, b)),
        (a, b) => a.or(b),
    };
    let add = both.clone();
    Aggregation::new(
        || None,
        move |a, v| add(a, Some(v)),
        both,
        |a: &Option<V>| a.clone().expect("a window holds at least one value"),
        Nullable(ArcSerde(value_serde)),
    )
}

/// A grouped stream over session windows, ready to aggregate (a merge is required).
pub struct SessionWindowedKStream<K, V> {
    inner: TimeWindowedKStream<K, V>,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// When results are emitted (default: once, when the session closes).
    pub fn emit(mut self, emit: Emit) -> Self {
        self.inner.emit = emit;
        self
    }

    /// Keeps closed sessions readable by interactive queries for `ms` more of stream time.
    pub fn retain_for_queries(mut self, ms: i64) -> Self {
        self.inner = self.inner.retain_for_queries(ms);
        self
    }

    /// Aggregates with a ready-made or custom [`Aggregation`] (its merge joins sessions).
    pub fn aggregate_with<A: Data, O: Data>(
        &self,
        store_name: &str,
        aggregation: Aggregation<V, A, O>,
    ) -> KTable<Windowed<K>, O> {
        self.inner.aggregate_with(store_name, aggregation)
    }

    /// Records per key and session.
    pub fn count(&self, store_name: &str) -> KTable<Windowed<K>, i64> {
        self.inner.count(store_name)
    }

    /// Folds values per session; `merge(a, b)` joins two sessions a record bridges.
    pub fn aggregate<A: Data>(
        &self,
        store_name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(A, V) -> A + Send + Sync + 'static,
        merge: impl Fn(A, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        let agg = Aggregation::new(init, fold, merge, A::clone, aggregate_serde);
        self.inner.aggregate_with(store_name, agg)
    }

    /// Combines values per session with `reduce` (also used to merge sessions).
    pub fn reduce(
        &self,
        store_name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        self.inner.reduce(store_name, reduce)
    }
}
