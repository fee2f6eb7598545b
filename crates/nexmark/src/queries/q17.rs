//! Query 17, auction statistics report: how many bids does an auction get per day, and
//! at what prices? An unbounded group aggregation.
//!
//! ```sql
//! SELECT auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd') AS `day`,
//!        count(*) AS total_bids,
//!        count(*) FILTER (WHERE price < 10000) AS rank1_bids,
//!        count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
//!        count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
//!        min(price) AS min_price, max(price) AS max_price,
//!        avg(price) AS avg_price, sum(price) AS sum_price
//! FROM bid
//! GROUP BY auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd');
//! ```
//!
//! **Topology.** All DSL: bids are re-keyed by auction (repartition) and aggregated in
//! one-day tumbling windows (UTC days, aligned to the epoch) with a 4 s grace
//! ([`WATERMARK_DELAY_MS`]), emitting on update.
//!
//! **Output.** Key: JSON [`Q17Key`]; value: JSON [`Q17Result`]. `avg_price` is
//! `sum_price / total_bids` truncated, as Flink's `AVG` of a `BIGINT` is a `BIGINT`.
//!
//! **Emission: on update, as Flink** — every bid emits its auction-day's new row
//! (`Emit::OnUpdate`), at the bid's time; the last row per key is the `GROUP BY` result.
//! The day window closes 4 s after the day ends: its state is deleted and later bids for
//! it are late (dead-letter topic), where Flink keeps every group forever.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::bid_stats::price_rank;
use super::common::{day_of, format_day, DAY_MS, WATERMARK_DELAY_MS};
use super::QueryTopics;
use super::{bids, events};

/// The key of a q17 row: its auction and day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q17Key {
    /// The auction.
    pub auction: i64,
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
}

/// An auction's bids of one day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q17Result {
    /// The auction.
    pub auction: i64,
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
    /// Bids.
    pub total_bids: i64,
    /// Bids below 10,000.
    pub rank1_bids: i64,
    /// Bids from 10,000 to below 1,000,000.
    pub rank2_bids: i64,
    /// Bids from 1,000,000 on.
    pub rank3_bids: i64,
    /// The lowest price.
    pub min_price: i64,
    /// The highest price.
    pub max_price: i64,
    /// The mean price, truncated to an integer.
    pub avg_price: i64,
    /// The sum of the prices.
    pub sum_price: i64,
}

/// The aggregate of an auction's day, as stored in the window store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct AuctionDay {
    bids: [i64; 4],
    min_price: i64,
    max_price: i64,
    sum_price: i64,
}

impl Default for AuctionDay {
    fn default() -> Self {
        AuctionDay {
            bids: [0; 4],
            min_price: i64::MAX,
            max_price: i64::MIN,
            sum_price: 0,
        }
    }
}

impl AuctionDay {
    fn add(mut self, price: i64) -> Self {
        self.bids[0] += 1;
        self.bids[price_rank(price)] += 1;
        self.min_price = self.min_price.min(price);
        self.max_price = self.max_price.max(price);
        self.sum_price = self.sum_price.wrapping_add(price);
        self
    }

    fn result(&self, auction: i64, day: String) -> Q17Result {
        Q17Result {
            auction,
            day,
            total_bids: self.bids[0],
            rank1_bids: self.bids[1],
            rank2_bids: self.bids[2],
            rank3_bids: self.bids[3],
            min_price: self.min_price,
            max_price: self.max_price,
            avg_price: self.sum_price / self.bids[0].max(1),
            sum_price: self.sum_price,
        }
    }
}

/// Adds q17 to `builder`: bids of `topics.input` → statistics per auction and day →
/// `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        .map(|_, bid| (bid.auction, bid.price))
        .group_by_key(I64Serde, I64Serde)
        .windowed_by(TimeWindows::of_size(DAY_MS).grace(WATERMARK_DELAY_MS))
        .emit(Emit::OnUpdate)
        .aggregate(
            "q17-auction-days",
            AuctionDay::default,
            AuctionDay::add,
            JsonSerde::<AuctionDay>::new(),
        )
        .to_stream()
        .flat_map(|w: Windowed<i64>, stats: Option<AuctionDay>| {
            // Tumbling windows never retract: every update carries an aggregate.
            stats.map(|stats| {
                let day = format_day(day_of(w.window.start_ms));
                let result = stats.result(w.key, day.clone());
                let key = Q17Key {
                    auction: w.key,
                    day,
                };
                (key, result)
            })
        })
        .to(
            &topics.output,
            JsonSerde::<Q17Key>::new(),
            JsonSerde::<Q17Result>::new(),
        );
    Ok(())
}
