//! Query 9, winning bids: each auction with its winning bid.
//!
//! ```sql
//! SELECT id, itemName, description, initialBid, reserve, dateTime, expires, seller,
//!        category, extra, auction, bidder, price, bid_dateTime, bid_extra
//! FROM (
//!   SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime,
//!          B.extra AS bid_extra,
//!          ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC)
//!            AS rownum
//!   FROM auction A, bid B
//!   WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//! )
//! WHERE rownum <= 1;
//! ```
//!
//! **Output**: one [`Q9Result`] per auction that received at least one bid in its
//! lifetime (`[date_time, expires]`, both ends included), key = auction id
//! ([`I64Serde`]), value JSON. The winner is the
//! highest price, then the earliest bid, then the first to arrive.
//!
//! **Emission**: final — once per auction, when it closes (stream time ≥ `expires` +
//! [`WATERMARK_DELAY_MS`]), with the record timestamp
//! `expires`. Flink's `ROW_NUMBER` top-1 instead emits an updating result (a retraction
//! and a new row each time a better bid arrives); both end with the same rows.
//!
//! **Differences from Flink**: the SQL (unlike Beam's original Nexmark) does not check
//! the reserve price, and neither does this query — the row carries `reserve` for a
//! reader who wants to. Bids arriving after their auction closed do not count (Flink's
//! join would still update the row); see [`super::winning_bids`].

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{I64Serde, JsonSerde, StreamsBuilder, StreamsError};

use super::shared::WATERMARK_DELAY_MS;
use super::winning_bids::{winning_bids, WinnerEmit, WinningBid};
use super::{events, QueryTopics};

/// A q9 result: the auction's columns, then its winning bid's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q9Result {
    /// Auction id.
    pub id: i64,
    /// The item's name.
    pub item_name: String,
    /// The item's description.
    pub description: String,
    /// The opening price.
    pub initial_bid: i64,
    /// The seller's reserve price (not checked: see the module docs).
    pub reserve: i64,
    /// When the auction opened.
    pub date_time: i64,
    /// When it closed.
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// The item's category.
    pub category: i64,
    /// The auction's padding.
    pub extra: String,
    /// The winning bid's auction (= `id`).
    pub auction: i64,
    /// The winner's person id.
    pub bidder: i64,
    /// The winning price.
    pub price: i64,
    /// When the winning bid was made.
    pub bid_date_time: i64,
    /// The winning bid's padding.
    pub bid_extra: String,
}

impl From<WinningBid> for Q9Result {
    fn from(w: WinningBid) -> Self {
        let (a, b) = (w.auction, w.bid);
        Q9Result {
            id: a.id,
            item_name: a.item_name,
            description: a.description,
            initial_bid: a.initial_bid,
            reserve: a.reserve,
            date_time: a.date_time,
            expires: a.expires,
            seller: a.seller,
            category: a.category,
            extra: a.extra,
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            bid_date_time: b.date_time,
            bid_extra: b.extra,
        }
    }
}

/// Adds q9 to `builder`: events from `topics.input`, [`Q9Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let events = events(builder, topics);
    winning_bids(
        builder,
        &events,
        "q9",
        WinnerEmit::OnClose,
        WATERMARK_DELAY_MS,
    )
    .map(|auction, w: WinningBid| (auction, Q9Result::from(w)))
    .to(&topics.output, I64Serde, JsonSerde::<Q9Result>::new());
    Ok(())
}
