//! Query 20, expand bid with auction: bids with their auction's details, for auctions of
//! category 10. A regular (unwindowed) join with a filter.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, B.dateTime, B.extra,
//!        itemName, description, initialBid, reserve, A.dateTime, expires, seller,
//!        category, A.extra
//! FROM bid AS B INNER JOIN auction AS A ON B.auction = A.id
//! WHERE A.category = 10;
//! ```
//!
//! **Topology.** All DSL: bids keyed by auction and category-10 auctions keyed by id
//! (the filter pushed below the join, as Flink's planner does), then a stream–stream
//! inner join with [`JoinWindows::unbounded`] — SQL's regular join, every pair whatever
//! the times — through the topics `<app>-q20-left-repartition` and
//! `<app>-q20-right-repartition` and the stores `q20-left-join` / `q20-right-join`.
//!
//! **Output.** Null key, a JSON [`Q20Result`] per (bid, auction) pair, append-only; the
//! record timestamp is the later of the two times. A bid that arrives before its
//! auction is joined when the auction arrives, as in Flink.
//!
//! **State and differences from Flink.** Both sides are kept forever, as in Flink's
//! regular join: every bid (its auction may still come) and every category-10 auction.
//! Flink's output is the same append-only stream of pairs.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::QueryTopics;
use super::{auctions, bids, events};
use crate::model::{Auction, Bid};

/// The category whose auctions are joined.
pub const CATEGORY: i64 = 10;

/// A bid with its auction's columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q20Result {
    /// The auction's id.
    pub auction: i64,
    /// The bidder.
    pub bidder: i64,
    /// The bid (cents).
    pub price: i64,
    /// The bid's channel.
    pub channel: String,
    /// The bid's URL.
    pub url: String,
    /// The bid's time (ms since the epoch).
    pub bid_date_time: i64,
    /// The bid's padding.
    pub bid_extra: String,
    /// The auction's item name.
    pub item_name: String,
    /// The auction's description.
    pub description: String,
    /// The auction's opening price.
    pub initial_bid: i64,
    /// The auction's reserve price.
    pub reserve: i64,
    /// When the auction opened (ms since the epoch).
    pub auction_date_time: i64,
    /// When the auction closes (ms since the epoch).
    pub expires: i64,
    /// The seller.
    pub seller: i64,
    /// The category (always [`CATEGORY`]).
    pub category: i64,
    /// The auction's padding.
    pub auction_extra: String,
}

/// The result row of a bid and its auction.
pub fn expand(bid: &Bid, auction: &Auction) -> Q20Result {
    Q20Result {
        auction: bid.auction,
        bidder: bid.bidder,
        price: bid.price,
        channel: bid.channel.clone(),
        url: bid.url.clone(),
        bid_date_time: bid.date_time,
        bid_extra: bid.extra.clone(),
        item_name: auction.item_name.clone(),
        description: auction.description.clone(),
        initial_bid: auction.initial_bid,
        reserve: auction.reserve,
        auction_date_time: auction.date_time,
        expires: auction.expires,
        seller: auction.seller,
        category: auction.category,
        auction_extra: auction.extra.clone(),
    }
}

/// Adds q20 to `builder`: bids and auctions of `topics.input` → bids of category-10
/// auctions with their auction → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let events = events(builder, topics);
    let bids = bids(&events).select_key(|_, bid: &Bid| bid.auction);
    let auctions = auctions(&events)
        .filter(|_, auction: &Auction| auction.category == CATEGORY)
        .select_key(|_, auction: &Auction| auction.id);
    bids.join(
        &auctions,
        expand,
        JoinWindows::unbounded(),
        StreamJoined::with(
            "q20",
            I64Serde,
            JsonSerde::<Bid>::new(),
            JsonSerde::<Auction>::new(),
        ),
    )
    .map(|_, row| ((), row))
    .to(&topics.output, UnitSerde, JsonSerde::<Q20Result>::new());
    Ok(())
}
