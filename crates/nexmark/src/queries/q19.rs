//! Query 19, auction top-10 price: the ten highest bids of each auction. A top-N.
//!
//! ```sql
//! SELECT * FROM
//!   (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
//!    FROM bid)
//! WHERE rank_number <= 10;
//! ```
//!
//! **Topology.** Bids are re-keyed by auction (topic `<app>-q19-by-auction-repartition`); a
//! processor keeps each auction's top ten, best first, in the store `q19-top-bids`.
//!
//! **Output.** Key: JSON [`Q19Key`] (auction and rank); value: JSON [`Q19Result`], the
//! bid at that rank. An upsert stream keyed by rank: the last value per key is the
//! query's row.
//!
//! **Emission: on update, as Flink.** A bid that enters the top ten at rank `r` emits
//! the new rows of ranks `r ..= min(10, size)` — it and each bid it pushed down a rank —
//! at the bid's time; a bid that does not enter emits nothing. Flink's top-N with the
//! row number in its output sends the same changes (as retraction/insert pairs). Ties
//! are ordered by arrival, as in Flink's buffer: a bid ranks below every earlier bid of
//! equal price, so one equal to the tenth does not enter. State is ten bids per
//! auction, forever, as in Flink.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::QueryTopics;
use super::{bids, events};
use crate::model::Bid;

/// How many bids per auction are kept.
pub const TOP_N: usize = 10;

/// The key of a q19 row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q19Key {
    /// The auction.
    pub auction: i64,
    /// The rank, 1 (highest price) to 10.
    pub rank_number: i64,
}

/// A q19 row: a bid and its rank in its auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Q19Result {
    /// The bid (its columns flattened into this object).
    #[serde(flatten)]
    pub bid: Bid,
    /// The rank, 1 (highest price) to 10.
    pub rank_number: i64,
}

/// The store of each auction's top bids.
const STORE: &str = "q19-top-bids";

/// Where `price` enters `top` (best first, ties by arrival): after every bid of equal or
/// higher price. `top.len()` or more: it does not enter.
pub fn entry_rank(top: &[Bid], price: i64) -> usize {
    top.partition_point(|b| b.price >= price)
}

/// Keeps the top bids per auction and emits the ranks that changed.
struct TopBids {
    store: StoreHandle<i64, Vec<Bid>>,
}

impl Processor<i64, Bid, Q19Key, Q19Result> for TopBids {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, Q19Key, Q19Result>,
        r: Record<i64, Bid>,
    ) -> Result<(), ProcessError> {
        let top = {
            let mut store = ctx.store(&self.store)?;
            let mut top = store.get(&r.key)?.unwrap_or_default();
            let at = entry_rank(&top, r.value.price);
            if at >= TOP_N {
                return Ok(());
            }
            top.insert(at, r.value);
            top.truncate(TOP_N);
            store.put(&r.key, &top)?;
            (at, top)
        };
        let (at, top) = top;
        for (i, bid) in top.into_iter().enumerate().skip(at) {
            let rank_number = i as i64 + 1;
            let key = Q19Key {
                auction: r.key,
                rank_number,
            };
            let row = Q19Result { bid, rank_number };
            ctx.forward(Record {
                key,
                value: row,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers.clone(),
            });
        }
        Ok(())
    }
}

/// Adds q19 to `builder`: bids of `topics.input` → the top ten per auction →
/// `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let store = StoreHandle::new(STORE, I64Serde, JsonSerde::<Vec<Bid>>::new());
    builder.add_store(&store);
    bids(&events(builder, topics))
        .select_key(|_, bid: &Bid| bid.auction)
        .repartition("q19-by-auction", I64Serde, JsonSerde::<Bid>::new())
        .process(
            move || TopBids {
                store: store.clone(),
            },
            &[STORE],
        )
        .to(
            &topics.output,
            JsonSerde::<Q19Key>::new(),
            JsonSerde::<Q19Result>::new(),
        );
    Ok(())
}
