//! Query 2, selection: the auction and price of the bids on auctions whose id is a
//! multiple of 123 (the Flink script's `SELECT auction, price FROM bid WHERE
//! MOD(auction, 123) = 0`).
//!
//! Output: null keys, [`Q2Row`] values as JSON.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{JsonSerde, StreamsBuilder, StreamsError, UnitSerde};

use super::{bids, events, QueryTopics};

/// The auctions selected are the multiples of this.
pub const AUCTION_MODULUS: i64 = 123;

/// A selected bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Q2Row {
    /// The auction (a multiple of [`AUCTION_MODULUS`]).
    pub auction: i64,
    /// The bid's price (cents).
    pub price: i64,
}

/// Adds query 2 to `builder`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        .filter_map_values(|bid| {
            (bid.auction % AUCTION_MODULUS == 0).then_some(Q2Row {
                auction: bid.auction,
                price: bid.price,
            })
        })
        .to(&topics.output, UnitSerde, JsonSerde::<Q2Row>::new());
    Ok(())
}
