//! Query 4, average price for a category: the average of the winning bid prices of
//! every auction, per category.
//!
//! ```sql
//! SELECT Q.category, AVG(Q.final)
//! FROM (
//!   SELECT MAX(B.price) AS final, A.category
//!   FROM auction A, bid B
//!   WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//!   GROUP BY A.id, A.category
//! ) Q
//! GROUP BY Q.category;
//! ```
//!
//! **Output**: an updating table, key = category ([`I64Serde`]), value a JSON
//! [`Q4Result`]: the average of `final` over the category's auctions that have a bid in
//! their lifetime, as an integer (Flink's `AVG` of a `BIGINT` is a `BIGINT`: the sum
//! divided by the count, truncated), and that count.
//!
//! **Emission**: on update, as Flink's: a new row for the category each time one of its
//! auctions' `MAX(B.price)` rises (the auction's first bid, or a higher one). The last
//! row per category is the SQL's answer.
//!
//! **How**: the [winning bids core](super::winning_bids) emits each rise with the price it
//! replaces; the category aggregate (through a repartition by category) subtracts the old
//! price and adds the new — the retraction Flink's planner sends between its two
//! aggregations. Bids arriving after their auction closed (stream time ≥ `expires` +
//! [`WATERMARK_DELAY_MS`]) do not count; Flink's join would still raise the maximum.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{I64Serde, JsonSerde, StreamsBuilder, StreamsError};

use super::shared::WATERMARK_DELAY_MS;
use super::winning_bids::{winning_bids, WinnerEmit, WinningBid};
use super::{events, QueryTopics};

/// A q4 result row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Q4Result {
    /// The category.
    pub category: i64,
    /// `AVG(final)`: the average winning price of its auctions, truncated to an integer.
    pub avg_final: i64,
    /// How many auctions the average is over.
    pub auctions: i64,
}

/// An auction's `MAX(price)` moving from `old` (none before its first bid) to `new`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FinalChange {
    old: Option<i64>,
    new: i64,
}

/// A category's running sum of auction maxima and their number.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CategorySum {
    sum: i64,
    auctions: i64,
}

/// Adds q4 to `builder`: events from `topics.input`, [`Q4Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let events = events(builder, topics);
    winning_bids(
        builder,
        &events,
        "q4",
        WinnerEmit::OnUpdate,
        WATERMARK_DELAY_MS,
    )
    // An earlier bid at the same price changes the winner, not the maximum.
    .filter(|_, w: &WinningBid| w.replaced_price != Some(w.bid.price))
    .map(|_, w: WinningBid| {
        let change = FinalChange {
            old: w.replaced_price,
            new: w.bid.price,
        };
        (w.auction.category, change)
    })
    .group_by_key(I64Serde, JsonSerde::<FinalChange>::new())
    .aggregate(
        "q4-categories",
        CategorySum::default,
        |_, change: FinalChange, mut acc: CategorySum| {
            acc.sum += change.new - change.old.unwrap_or(0);
            acc.auctions += i64::from(change.old.is_none());
            acc
        },
        JsonSerde::<CategorySum>::new(),
    )
    .to_stream()
    .flat_map(|category, acc: Option<CategorySum>| {
        acc.filter(|a| a.auctions > 0).map(|a| {
            let row = Q4Result {
                category,
                avg_final: a.sum / a.auctions,
                auctions: a.auctions,
            };
            (category, row)
        })
    })
    .to(&topics.output, I64Serde, JsonSerde::<Q4Result>::new());
    Ok(())
}
