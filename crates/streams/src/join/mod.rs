//! Joins: stream–stream (windowed; inner, left, outer), stream–table and table–table
//! (inner, left, outer). Stream–global-table joins live on [`crate::dsl::KStream`].
//!
//! Stream–stream joins keep both sides in join stores (the window store layout of
//! [`crate::window`], one entry per record keyed `(key, timestamp, sequence)`). A record
//! at `t` on the left joins right records in `[t - before, t + after]` (the right side
//! mirrors it) and the result carries the larger timestamp. A record is late when its
//! own window has closed (stream time > `t + after + grace`, right side `t + before +
//! grace`): it goes to the dead-letter topic. Left and outer joins emit a record without
//! a partner only when no partner can arrive any more — when the record leaves the store,
//! `before + after + grace` after its timestamp — never a spurious `(a, null)` followed
//! by `(a, b)`.
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! // The seeds' ride/driver join: requests meet driver positions within a minute.
//! let builder = StreamsBuilder::new();
//! let rides = builder.stream("ride-requests", StringSerde, StringSerde);
//! let drivers = builder.stream("driver-locations", StringSerde, StringSerde);
//! rides
//!     .join(
//!         &drivers,
//!         |ride: &String, driver: &String| format!("{ride}+{driver}"),
//!         JoinWindows::of_time_difference(60_000),
//!         StreamJoined::with("ride-driver", StringSerde, StringSerde, StringSerde),
//!     )
//!     .to("matches", StringSerde, StringSerde);
//! let mut d = TopologyTestDriver::new(&builder.build().unwrap()).unwrap();
//! let (zone, ride, driver) = ("z1".to_string(), "r1".to_string(), "d7".to_string());
//! d.pipe("ride-requests", &StringSerde, &StringSerde, &zone, &ride, 1_000).unwrap();
//! d.pipe("driver-locations", &StringSerde, &StringSerde, &zone, &driver, 30_000).unwrap();
//! let out = d.read_output("matches", &StringSerde, &StringSerde).unwrap();
//! assert_eq!((out[0].value.as_str(), out[0].timestamp_ms), ("r1+d7", 30_000));
//! ```

mod foreign_key;
mod stream;
mod table;

pub use foreign_key::FkJoined;

use std::sync::Arc;

use crate::serdes::Serde;

/// The time window of a stream–stream join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before_ms: i64,
    pub(crate) after_ms: i64,
    pub(crate) grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference_ms` apart join (either order), grace 0.
    pub fn of_time_difference(difference_ms: i64) -> Self {
        let d = difference_ms.max(0);
        JoinWindows {
            before_ms: d,
            after_ms: d,
            grace_ms: 0,
        }
    }

    /// Every pair of records with equal keys joins, however far apart in time: SQL's
    /// regular (unwindowed) join. No record is ever late and nothing expires, so both
    /// sides' stores grow with their inputs — use it where the join's key space or the
    /// application's lifetime is bounded (Flink's regular join keeps the same state).
    pub fn unbounded() -> Self {
        JoinWindows {
            before_ms: i64::MAX,
            after_ms: i64::MAX,
            grace_ms: 0,
        }
    }

    /// How far a right record may precede a left one.
    pub fn before(mut self, ms: i64) -> Self {
        self.before_ms = ms.max(0);
        self
    }

    /// How far a right record may follow a left one.
    pub fn after(mut self, ms: i64) -> Self {
        self.after_ms = ms.max(0);
        self
    }

    /// How long after its window a record may still arrive.
    pub fn grace(mut self, grace_ms: i64) -> Self {
        self.grace_ms = grace_ms.max(0);
        self
    }
}

/// Names and serdes of a stream–stream join's two stores
/// (`<name>-left-join` and `<name>-right-join`).
pub struct StreamJoined<K, V1, V2> {
    pub(crate) name: String,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) left_serde: Arc<dyn Serde<V1>>,
    pub(crate) right_serde: Arc<dyn Serde<V2>>,
}

impl<K: 'static, V1: 'static, V2: 'static> StreamJoined<K, V1, V2> {
    /// A join named `name` with the key and both value serdes.
    pub fn with(
        name: &str,
        key_serde: impl Serde<K>,
        left_serde: impl Serde<V1>,
        right_serde: impl Serde<V2>,
    ) -> Self {
        StreamJoined {
            name: name.to_string(),
            key_serde: Arc::new(key_serde),
            left_serde: Arc::new(left_serde),
            right_serde: Arc::new(right_serde),
        }
    }
}
