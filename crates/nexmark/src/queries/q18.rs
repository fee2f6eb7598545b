//! Query 18, find the last bid: each bidder's latest bid on each auction. A
//! deduplication by rank.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, dateTime, extra
//! FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction
//!                                    ORDER BY dateTime DESC) AS rank_number
//!       FROM bid)
//! WHERE rank_number <= 1;
//! ```
//!
//! **Topology.** Bids are re-keyed by (bidder, auction) (topic
//! `<app>-q18-by-bidder-auction-repartition`); a processor keeps each pair's latest bid in the store
//! `q18-last-bids`. The DSL's `reduce` would re-emit the old row when an older bid
//! arrives; this emits only when the row changes.
//!
//! **Output.** Key: JSON [`Q18Key`]; value: the bid itself ([`Q18Result`], all of its
//! columns). An upsert stream: the last value per key is the query's row.
//!
//! **Emission: on update, as Flink.** A bid replaces its pair's row when its time is
//! at or after the row's (a tie goes to the later arrival), and the new row is emitted
//! at once, at the bid's time; an older bid changes nothing and emits nothing. This is
//! Flink's `ROW_NUMBER` over a rowtime `ORDER BY ... DESC` (its keep-last-row
//! deduplication, which also replaces on equal times). State is one bid per pair,
//! forever, as in Flink.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::QueryTopics;
use super::{bids, events};
use crate::model::Bid;

/// The key of a q18 row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q18Key {
    /// The bidder.
    pub bidder: i64,
    /// The auction.
    pub auction: i64,
}

/// A q18 row: the pair's latest bid, every column of it.
pub type Q18Result = Bid;

/// The store of the latest bid per pair.
const STORE: &str = "q18-last-bids";

/// Keeps the latest bid per key.
struct LastBid {
    store: StoreHandle<Q18Key, Bid>,
}

impl Processor<Q18Key, Bid, Q18Key, Bid> for LastBid {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, Q18Key, Bid>,
        r: Record<Q18Key, Bid>,
    ) -> Result<(), ProcessError> {
        {
            let mut store = ctx.store(&self.store)?;
            if let Some(last) = store.get(&r.key)? {
                if r.value.date_time < last.date_time {
                    return Ok(());
                }
            }
            store.put(&r.key, &r.value)?;
        }
        ctx.forward(r);
        Ok(())
    }
}

/// Adds q18 to `builder`: bids of `topics.input` → the last bid per bidder and auction
/// → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let store = StoreHandle::new(STORE, JsonSerde::<Q18Key>::new(), JsonSerde::<Bid>::new());
    builder.add_store(&store);
    bids(&events(builder, topics))
        .select_key(|_, bid: &Bid| Q18Key {
            bidder: bid.bidder,
            auction: bid.auction,
        })
        .repartition(
            "q18-by-bidder-auction",
            JsonSerde::<Q18Key>::new(),
            JsonSerde::<Bid>::new(),
        )
        .process(
            move || LastBid {
                store: store.clone(),
            },
            &[STORE],
        )
        .to(
            &topics.output,
            JsonSerde::<Q18Key>::new(),
            JsonSerde::<Q18Result>::new(),
        );
    Ok(())
}
