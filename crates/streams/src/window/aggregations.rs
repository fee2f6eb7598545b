//! Ready-made aggregations for grouped and windowed streams: count, sum, min, max,
//! average, top-N and collect. Each carries how to start, add a value, merge two partial
//! results (session windows merge), present the result, and serialize the accumulator.
//!
//! ```
//! use strom_streams::prelude::*;
//! use strom_streams::window::aggregations;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("views", StringSerde, I64Serde)
//!     .group_by_key(StringSerde, I64Serde)
//!     .windowed_by(TimeWindows::of_size(300_000))
//!     .aggregate_with("watch-time", aggregations::sum(|seconds: &i64| *seconds as f64))
//!     .to_stream()
//!     .foreach(|_, _| {});
//! builder.build().unwrap();
//! ```

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::SerdeError;
use crate::serdes::{I64Serde, JsonSerde, Serde};

type Shared<F> = Arc<F>;

/// An aggregation: accumulator `A` built from values `V`, presented as `O`.
pub struct Aggregation<V, A, O> {
    pub(crate) init: Shared<dyn Fn() -> A + Send + Sync>,
    pub(crate) add: Shared<dyn Fn(A, V) -> A + Send + Sync>,
    pub(crate) merge: Shared<dyn Fn(A, A) -> A + Send + Sync>,
    pub(crate) finish: Shared<dyn Fn(&A) -> O + Send + Sync>,
    pub(crate) serde: Shared<dyn Serde<A>>,
}

impl<V, A, O> Clone for Aggregation<V, A, O> {
    fn clone(&self) -> Self {
        Aggregation {
            init: self.init.clone(),
            add: self.add.clone(),
            merge: self.merge.clone(),
            finish: self.finish.clone(),
            serde: self.serde.clone(),
        }
    }
}

impl<V, A: 'static, O> Aggregation<V, A, O> {
    /// An aggregation from its parts: `init` starts an accumulator, `add` folds a value
    /// in, `merge` combines two accumulators (session merges), `finish` presents one.
    pub fn new(
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(A, V) -> A + Send + Sync + 'static,
        merge: impl Fn(A, A) -> A + Send + Sync + 'static,
        finish: impl Fn(&A) -> O + Send + Sync + 'static,
        serde: impl Serde<A>,
    ) -> Self {
        Aggregation {
            init: Arc::new(init),
            add: Arc::new(add),
            merge: Arc::new(merge),
            finish: Arc::new(finish),
            serde: Arc::new(serde),
        }
    }
}

impl<V, A, O> Aggregation<V, A, O> {
    /// A new accumulator.
    pub fn init(&self) -> A {
        (self.init)()
    }

    /// Folds a value into an accumulator.
    pub fn add(&self, acc: A, value: V) -> A {
        (self.add)(acc, value)
    }

    /// Combines two accumulators.
    pub fn merge(&self, a: A, b: A) -> A {
        (self.merge)(a, b)
    }

    /// Presents an accumulator.
    pub fn finish(&self, acc: &A) -> O {
        (self.finish)(acc)
    }
}

/// Number of records.
pub fn count<V: 'static>() -> Aggregation<V, i64, i64> {
    Aggregation::new(|| 0, |n, _| n + 1, |a, b| a + b, |n| *n, I64Serde)
}

/// Sum of `f(value)`.
pub fn sum<V: 'static>(f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> Aggregation<V, f64, f64> {
    Aggregation::new(
        || 0.0,
        move |s, v| s + f(&v),
        |a, b| a + b,
        |s| *s,
        F64Serde,
    )
}

/// Smallest `f(value)`.
pub fn min<V: 'static>(
    f: impl Fn(&V) -> f64 + Send + Sync + 'static,
) -> Aggregation<V, Option<f64>, f64> {
    extreme(f, f64::min)
}

/// Largest `f(value)`.
pub fn max<V: 'static>(
    f: impl Fn(&V) -> f64 + Send + Sync + 'static,
) -> Aggregation<V, Option<f64>, f64> {
    extreme(f, f64::max)
}

fn extreme<V: 'static>(
    f: impl Fn(&V) -> f64 + Send + Sync + 'static,
    pick: fn(f64, f64) -> f64,
) -> Aggregation<V, Option<f64>, f64> {
    let both = move |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    };
    Aggregation::new(
        || None,
        move |a, v| both(a, Some(f(&v))),
        both,
        |a| a.unwrap_or(f64::NAN),
        JsonSerde::<Option<f64>>::new(),
    )
}

/// Mean of `f(value)` (the accumulator keeps sum and count).
pub fn average<V: 'static>(
    f: impl Fn(&V) -> f64 + Send + Sync + 'static,
) -> Aggregation<V, (f64, i64), f64> {
    Aggregation::new(
        || (0.0, 0),
        move |(s, n), v| (s + f(&v), n + 1),
        |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
        |(s, n)| if *n == 0 { f64::NAN } else { s / *n as f64 },
        JsonSerde::<(f64, i64)>::new(),
    )
}

/// The `n` values with the highest `score`, best first (ties keep arrival order).
pub fn top_n<V>(
    n: usize,
    score: impl Fn(&V) -> f64 + Send + Sync + 'static,
) -> Aggregation<V, Vec<V>, Vec<V>>
where
    V: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    let score = Arc::new(score);
    let keep = move |mut all: Vec<V>| {
        // A stable sort keeps arrival order among equal scores.
        all.sort_by(|a, b| score(b).total_cmp(&score(a)));
        all.truncate(n);
        all
    };
    let keep2 = keep.clone();
    Aggregation::new(
        Vec::new,
        move |mut top: Vec<V>, v| {
            top.push(v);
            keep(top)
        },
        move |mut a, b| {
            a.extend(b);
            keep2(a)
        },
        Vec::clone,
        JsonSerde::<Vec<V>>::new(),
    )
}

/// Every value, in arrival order.
pub fn collect<V>() -> Aggregation<V, Vec<V>, Vec<V>>
where
    V: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    Aggregation::new(
        Vec::new,
        |mut all: Vec<V>, v| {
            all.push(v);
            all
        },
        |mut a, b| {
            a.extend(b);
            a
        },
        Vec::clone,
        JsonSerde::<Vec<V>>::new(),
    )
}

/// An `f64` as 8 big-endian bytes (any value, including infinities and NaN).
#[derive(Debug, Clone, Copy, Default)]
pub struct F64Serde;

impl Serde<f64> for F64Serde {
    fn serialize(&self, value: &f64) -> Result<Vec<u8>, SerdeError> {
        Ok(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<f64, SerdeError> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| SerdeError::Length {
            expected: 8,
            got: bytes.len(),
        })?;
        Ok(f64::from_be_bytes(b))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run<V, A, O>(agg: &Aggregation<V, A, O>, values: Vec<V>) -> O {
        let a = values
            .into_iter()
            .fold((agg.init)(), |a, v| (agg.add)(a, v));
        (agg.finish)(&a)
    }

    #[test]
    fn each_aggregation_folds_and_merges() {
        assert_eq!(run(&count::<i32>(), vec![1, 2, 3]), 3);
        assert_eq!(run(&sum(|v: &i32| *v as f64), vec![1, 2, 3]), 6.0);
        assert_eq!(run(&min(|v: &i32| *v as f64), vec![4, 2, 3]), 2.0);
        assert_eq!(run(&max(|v: &i32| *v as f64), vec![4, 2, 9]), 9.0);
        assert_eq!(run(&average(|v: &i32| *v as f64), vec![1, 2, 6]), 3.0);
        assert_eq!(
            run(&top_n(2, |v: &i32| *v as f64), vec![1, 5, 3, 5]),
            vec![5, 5]
        );
        assert_eq!(run(&collect(), vec![3, 1]), vec![3, 1]);
        let avg = average(|v: &i32| *v as f64);
        let merged = (avg.merge)((2.0, 1), (4.0, 3));
        assert_eq!((avg.finish)(&merged), 1.5);
        let top = top_n(2, |v: &i32| *v as f64);
        assert_eq!((top.merge)(vec![9, 1], vec![5]), vec![9, 5]);
        let m = min(|v: &i32| *v as f64);
        let bytes = m.serde.serialize(&Some(1.5)).unwrap();
        assert_eq!(m.serde.deserialize(&bytes).unwrap(), Some(1.5));
    }
}
