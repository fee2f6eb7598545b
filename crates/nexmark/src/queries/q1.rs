//! Query 1, currency conversion: every bid with its price in euros, `0.908 · price`
//! (the Flink script's `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
//! FROM bid`, typed `DECIMAL(23, 3)`).
//!
//! The price is kept exact as an integer: [`Q1Bid::price_millicents`] is the euro
//! price in thousandths of a cent, `price · 908`, which is Flink's `DECIMAL(23, 3)` value
//! (in cents) times 1000. Prices are at most 10^8 cents, so it fits an `i64` with room
//! to spare.
//!
//! Output: null keys, [`Q1Bid`] values as JSON.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{JsonSerde, StreamsBuilder, StreamsError, UnitSerde};

use super::{bids, events, QueryTopics};
use crate::model::Bid;

/// Dollars to euros, in thousandths: 0.908.
pub const EUROS_PER_DOLLAR_MILLI: i64 = 908;

/// A bid with its price converted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Q1Bid {
    /// The auction.
    pub auction: i64,
    /// The bidder.
    pub bidder: i64,
    /// The price in euros, in thousandths of a cent (`price · 908`): exact.
    pub price_millicents: i64,
    /// Event time (ms since the epoch).
    pub date_time: i64,
    /// The bid's padding.
    pub extra: String,
}

/// The conversion of one bid.
pub fn convert(bid: Bid) -> Q1Bid {
    Q1Bid {
        auction: bid.auction,
        bidder: bid.bidder,
        price_millicents: bid.price * EUROS_PER_DOLLAR_MILLI,
        date_time: bid.date_time,
        extra: bid.extra,
    }
}

/// Adds query 1 to `builder`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        .filter_map_values(|bid| Some(convert(bid)))
        .to(&topics.output, UnitSerde, JsonSerde::<Q1Bid>::new());
    Ok(())
}
