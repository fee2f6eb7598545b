//! Query 12, processing-time windows: how many bids does a user make within a fixed
//! processing-time limit?
//!
//! ```sql
//! CREATE VIEW B AS SELECT *, PROCTIME() AS p_time FROM bid;
//! SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime
//! FROM TABLE(TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
//! GROUP BY bidder, window_start, window_end;
//! ```
//!
//! **Topology.** The source stamps every event with the wall clock when it is processed
//! (`StreamsBuilder::stream_processing_time`); bids are re-keyed by bidder (a repartition
//! topic, which keeps those stamps) and counted in 10 s tumbling windows of that time.
//!
//! **Output.** Null key, a JSON [`Q12Result`] value per bidder and window.
//!
//! **Emission.** Final results, once per bidder and window, when the window closes. A
//! window closes when the task's stream time — here the latest processing-time stamp —
//! reaches its end: with the next bid, or, when the application opts into wall-clock
//! stream time (`StreamsConfig::stream_time_wall_clock_lag`, the driver's
//! `stream_time_wall_clock_lag_ms`), as the wall clock passes `end + lag` without input.
//! Flink fires processing-time windows on a wall-clock timer, which is what a lag of 0
//! gives; through a repartition topic a lag of about the commit interval keeps bids
//! still in flight from being late.
//!
//! **Differences from Flink.** The stamp is taken where the event is read, before the
//! repartition; Flink takes `PROCTIME()` in the window operator after its shuffle. As in
//! Flink, results depend on timing and are outside the replay guarantee.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::QueryTopics;
use crate::model::{Event, EventSerde};

/// The window size in ms of processing time.
pub const WINDOW_MS: i64 = 10_000;

/// One bidder's bids in one processing-time window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q12Result {
    /// The bidder.
    pub bidder: i64,
    /// Bids processed in the window.
    pub bid_count: i64,
    /// The window's start (wall-clock ms since the epoch).
    pub starttime: i64,
    /// The window's end (exclusive).
    pub endtime: i64,
}

/// Adds q12 to `builder`: bids of `topics.input` in processing time → counts per bidder
/// and 10 s window → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    builder
        .stream_processing_time(&topics.input, UnitSerde, EventSerde::new())
        .flat_map(|_, event: Event| event.as_bid().map(|bid| (bid.bidder, ())))
        .group_by_key(I64Serde, UnitSerde)
        .windowed_by(TimeWindows::of_size(WINDOW_MS))
        .count("q12-windows")
        .to_stream()
        .flat_map(|w: Windowed<i64>, count: Option<i64>| {
            count.map(|bid_count| {
                let result = Q12Result {
                    bidder: w.key,
                    bid_count,
                    starttime: w.window.start_ms,
                    endtime: w.window.end_ms,
                };
                ((), result)
            })
        })
        .to(&topics.output, UnitSerde, JsonSerde::<Q12Result>::new());
    Ok(())
}
