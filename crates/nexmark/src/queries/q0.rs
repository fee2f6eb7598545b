//! Query 0, pass-through: every bid, unchanged — the cost of reading, decoding and
//! writing events and nothing else (Nexmark's baseline; the Flink script's
//! `SELECT auction, bidder, price, dateTime, extra FROM bid`).
//!
//! Output: null keys, [`Bid`] values as JSON ([`JsonSerde<Bid>`]).

use strom_streams::prelude::{JsonSerde, StreamsBuilder, StreamsError, UnitSerde};

use super::{bids, events, QueryTopics};
use crate::model::Bid;

/// Adds query 0 to `builder`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics)).to(&topics.output, UnitSerde, JsonSerde::<Bid>::new());
    Ok(())
}
