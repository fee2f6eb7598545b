//! Query 6, average selling price by seller: the average winning price of each seller's
//! last 10 closed auctions.
//!
//! ```sql
//! SELECT Q.seller,
//!        AVG(Q.price) OVER (PARTITION BY Q.seller ORDER BY Q.dateTime
//!                           ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
//! FROM (
//!   SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC)
//!     AS rownum
//!   FROM (SELECT A.id, A.seller, B.price, B.dateTime
//!         FROM auction AS A, bid AS B
//!         WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires)
//!   WHERE rownum <= 1
//! ) AS Q;
//! ```
//!
//! Flink cannot run this SQL (its `OVER` window does not consume the retractions the
//! inner `ROW_NUMBER` produces), so there is no Flink result to match. This query does
//! what the SQL's own description says — "the average selling price per seller for
//! their last 10 closed auctions", as Beam's original Query 6 — with the SQL's pieces:
//!
//! - the winning bid of an auction is the [winning bids core](super::winning_bids)'s
//!   (highest price in the lifetime, earliest first on a tie; no reserve check), final
//!   when the auction closes (stream time ≥ `expires` + [`WATERMARK_DELAY_MS`]);
//! - a seller's sales are ordered by the winning bid's time (the SQL's `ORDER BY
//!   Q.dateTime`), then auction id, and the newest 10 are averaged. The SQL's frame
//!   `10 PRECEDING AND CURRENT ROW` would hold 11 rows; the description and Beam say 10.
//!
//! **Output**: key = seller ([`I64Serde`]), value a JSON [`Q6Result`], the average
//! truncated to an integer (as `AVG` of a `BIGINT`).
//!
//! **Emission**: an update per closed auction with a winner: the seller's average over
//! the newest 10 sales known then. The last row per seller is the final answer. A sale
//! older than the 10 kept (an auction closing late) leaves the average as it was, and
//! still emits it.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{I64Serde, JsonSerde, StreamsBuilder, StreamsError};

use super::shared::WATERMARK_DELAY_MS;
use super::winning_bids::{winning_bids, WinnerEmit, WinningBid};
use super::{events, QueryTopics};

/// How many of a seller's newest sales the average covers.
pub const SALES_AVERAGED: usize = 10;

/// A q6 result row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Q6Result {
    /// The seller's person id.
    pub seller: i64,
    /// The average winning price of the seller's newest (up to) 10 closed auctions,
    /// truncated to an integer.
    pub avg_price: i64,
}

/// A closed auction's sale, ordered by winning bid time then auction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Sale {
    bid_time: i64,
    auction: i64,
    price: i64,
}

/// Adds q6 to `builder`: events from `topics.input`, [`Q6Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let events = events(builder, topics);
    winning_bids(
        builder,
        &events,
        "q6",
        WinnerEmit::OnClose,
        WATERMARK_DELAY_MS,
    )
    .map(|_, w: WinningBid| {
        let sale = Sale {
            bid_time: w.bid.date_time,
            auction: w.auction.id,
            price: w.bid.price,
        };
        (w.auction.seller, sale)
    })
    .group_by_key(I64Serde, JsonSerde::<Sale>::new())
    .aggregate(
        "q6-newest-sales",
        Vec::new,
        |_, sale: Sale, mut newest: Vec<Sale>| {
            // Sorted oldest first; the oldest leaves when an 11th arrives.
            let at = newest.partition_point(|s| *s < sale);
            newest.insert(at, sale);
            if newest.len() > SALES_AVERAGED {
                newest.remove(0);
            }
            newest
        },
        JsonSerde::<Vec<Sale>>::new(),
    )
    .to_stream()
    .flat_map(|seller, newest: Option<Vec<Sale>>| {
        newest.filter(|n| !n.is_empty()).map(|n| {
            let sum: i64 = n.iter().map(|s| s.price).sum();
            let row = Q6Result {
                seller,
                avg_price: sum / n.len() as i64,
            };
            (seller, row)
        })
    })
    .to(&topics.output, I64Serde, JsonSerde::<Q6Result>::new());
    Ok(())
}
