//! Query 15, bidding statistics report: how many distinct users bid at each price
//! level, per day? Distinct aggregates with filters.
//!
//! ```sql
//! SELECT DATE_FORMAT(dateTime, 'yyyy-MM-dd') AS `day`,
//!        count(*) AS total_bids,
//!        count(*) FILTER (WHERE price < 10000) AS rank1_bids,
//!        count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
//!        count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
//!        count(DISTINCT bidder) AS total_bidders,
//!        count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
//!        ... rank2_bidders, rank3_bidders, and the same four for auction
//! FROM bid
//! GROUP BY DATE_FORMAT(dateTime, 'yyyy-MM-dd');
//! ```
//!
//! **Topology.** Bids are re-keyed by UTC day (topic `<app>-q15-by-day-repartition`) and
//! counted by the distinct-count processor of [`super::bid_stats`], which keeps the
//! day's bidders and auctions as store entries.
//!
//! **Output.** Key: JSON [`Q15Key`] (`{"day":"2024-01-01"}`); value: JSON [`Q15Result`].
//!
//! **Emission: on update, as Flink.** Flink's unwindowed `GROUP BY` is an updating table;
//! here every bid emits its day's new row, at the bid's time — an upsert stream whose
//! last row per key is the `GROUP BY` result. Unlike Flink, which keeps every day's
//! state forever (Nexmark runs without state TTL), a day is a window with a 4 s grace
//! ([`WATERMARK_DELAY_MS`](super::common::WATERMARK_DELAY_MS)): once stream time passes
//! the day's end + 4 s its row is final, its state is deleted, and a bid for it is late
//! (dead-letter topic). On input at most 4 s out of order, as the generator's, the rows
//! are the same as Flink's.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::bid_stats::{daily_stats, BidCounts, DayStats, GroupDay};
use super::common::format_day;
use super::QueryTopics;
use super::{bids, events};

/// The key of a q15 row: its day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q15Key {
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
}

/// A day's bidding statistics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q15Result {
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
    /// The counts (flattened into this object).
    #[serde(flatten)]
    pub counts: BidCounts,
}

/// Adds q15 to `builder`: bids of `topics.input` → statistics per day → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    daily_stats(builder, &bids(&events(builder, topics)), "q15", |_| {
        String::new()
    })
    .map(|key: GroupDay, stats: DayStats| {
        let day = format_day(key.day);
        let result = Q15Result {
            day: day.clone(),
            counts: stats.counts,
        };
        (Q15Key { day }, result)
    })
    .to(
        &topics.output,
        JsonSerde::<Q15Key>::new(),
        JsonSerde::<Q15Result>::new(),
    );
    Ok(())
}
