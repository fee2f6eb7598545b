//! Query 5, hot items: the auctions with the most bids in each 10 s window, every 2 s.
//!
//! The Flink peer's form (`bench-peers/flink/nexmark_flink.py`, as Nexmark's `q5.sql`):
//!
//! ```sql
//! SELECT AuctionBids.auction, AuctionBids.num
//! FROM (
//!   SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!   GROUP BY auction, window_start, window_end
//! ) AS AuctionBids
//! JOIN (
//!   SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
//!   FROM (
//!     SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
//!     FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!     GROUP BY auction, window_start, window_end
//!   ) AS CountBids
//!   GROUP BY CountBids.starttime, CountBids.endtime
//! ) AS MaxBids
//! ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
//!    AND AuctionBids.num >= MaxBids.maxn;
//! ```
//!
//! **Output**: for every hopping window `[start, start + 10 s)` (a new one every 2 s,
//! aligned to the epoch) with bids, one [`Q5Result`] per auction whose bid count equals
//! the window's maximum — ties all reported, as `num >= maxn` does. Key = auction id
//! ([`I64Serde`]), value JSON with the window's bounds (the SQL selects only `auction`
//! and `num`; the bounds say which window a row answers).
//!
//! **Emission**: final per window. Two windowed aggregations, as Flink's plan:
//! 1. bids by auction (repartitioned), hopping windows with grace
//!    [`WATERMARK_DELAY_MS`]: one count per auction and window when the window closes,
//!    timestamped `end - 1`;
//! 2. those counts in one group ([`WHOLE_STREAM`], repartitioned), in 2 s tumbling
//!    windows over their timestamps — each holds exactly one hopping window's counts —
//!    keeping the counts equal to the maximum ([`max_with_ties`]), emitted when that
//!    window closes.
//!
//! Step 2 closes a window once a count of a later window has arrived. Counts reach it
//! from every task of step 1; [`COUNTS_GRACE_MS`] is how far behind one task may be
//! (a count later than that is late, and goes to the dead-letter topic). With one task in
//! step 1 (one partition) counts arrive window by window and nothing is late.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{
    I64Serde, JsonSerde, StreamsBuilder, StreamsError, TimeWindows, UnitSerde, Windowed,
};

use super::shared::{max_with_ties, WATERMARK_DELAY_MS, WHOLE_STREAM};
use super::{bids, events, QueryTopics};
use crate::model::Bid;

/// The hopping window's size.
pub const WINDOW_MS: i64 = 10_000;
/// How often a new window starts.
pub const SLIDE_MS: i64 = 2_000;
/// How long step 2 waits for counts of a window from slower tasks of step 1.
pub const COUNTS_GRACE_MS: i64 = 2 * SLIDE_MS;

/// A q5 result row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q5Result {
    /// The auction.
    pub auction: i64,
    /// Its bids in the window: the window's maximum.
    pub num: i64,
    /// The window's start (ms, included).
    pub starttime: i64,
    /// The window's end (ms, excluded).
    pub endtime: i64,
}

/// One auction's bid count in one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuctionCount {
    auction: i64,
    num: i64,
}

/// Adds q5 to `builder`: events from `topics.input`, [`Q5Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        .map(|_, b: Bid| (b.auction, ()))
        .group_by_key(I64Serde, UnitSerde)
        .windowed_by(
            TimeWindows::of_size(WINDOW_MS)
                .advance_by(SLIDE_MS)
                .grace(WATERMARK_DELAY_MS),
        )
        .count("q5-bids-per-auction")
        .to_stream()
        .flat_map(|w: Windowed<i64>, num: Option<i64>| {
            num.map(|num| {
                let count = AuctionCount {
                    auction: w.key,
                    num,
                };
                (WHOLE_STREAM, count)
            })
        })
        .group_by_key(I64Serde, JsonSerde::<AuctionCount>::new())
        // Counts of the hopping window [s, s + WINDOW_MS) carry timestamp
        // s + WINDOW_MS - 1: the tumbling window [s + WINDOW_MS - SLIDE_MS, s + WINDOW_MS)
        // holds them alone.
        .windowed_by(TimeWindows::of_size(SLIDE_MS).grace(COUNTS_GRACE_MS))
        .aggregate_with("q5-hottest", max_with_ties(|c: &AuctionCount| c.num))
        .to_stream()
        .flat_map(|w: Windowed<i64>, hottest: Option<Vec<AuctionCount>>| {
            // The tumbling window [end - SLIDE, end) holds the hopping window ending at end.
            let start = w.window.end_ms - WINDOW_MS;
            hottest
                .unwrap_or_default()
                .into_iter()
                .map(move |c| {
                    let row = Q5Result {
                        auction: c.auction,
                        num: c.num,
                        starttime: start,
                        endtime: start + WINDOW_MS,
                    };
                    (c.auction, row)
                })
                .collect::<Vec<_>>()
        })
        .to(&topics.output, I64Serde, JsonSerde::<Q5Result>::new());
    Ok(())
}
