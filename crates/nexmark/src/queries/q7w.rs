//! Query 7 as a window join (the Flink peer's `q7w`): the bids with the highest price of
//! their 10 s tumbling window.
//!
//! ```sql
//! SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
//! FROM (SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))) B
//! JOIN (
//!   SELECT MAX(price) AS maxprice, window_start, window_end
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end
//! ) B1
//! ON B.window_start = B1.window_start AND B.window_end = B1.window_end
//!    AND B.price = B1.maxprice;
//! ```
//!
//! Unlike [`q7`](super::q7)'s `BETWEEN`, a bid joins only its own window
//! (`start ≤ dateTime < end`), so no bid appears twice.
//!
//! **Output**: one [`Q7Result`] per bid whose price is its window's maximum (ties all
//! reported), key = auction id ([`I64Serde`]), value JSON.
//!
//! **How**: the join of a window's bids with the window's maximum keeps exactly the bids
//! at the maximum, so it is one tumbling windowed aggregation over all bids (one group,
//! [`WHOLE_STREAM`]) that keeps those ([`max_with_ties`]): no bid is stored beyond the
//! current maximum's. In the same task, bids below their window's running maximum are
//! dropped before the aggregation (they cannot be at the maximum), so most bids cost a
//! look at an 8-byte running maximum. Grace [`WATERMARK_DELAY_MS`].
//!
//! **Emission**: final per window, when it closes (record timestamp `end - 1`), as
//! Flink's window join. Late bids go to the dead-letter topic.

use strom_streams::prelude::{I64Serde, JsonSerde, StreamsBuilder, StreamsError, TimeWindows};

use super::q7::{candidates, Q7Result, WINDOW_MS};
use super::shared::{max_with_ties, WATERMARK_DELAY_MS, WHOLE_STREAM};
use super::{bids, events, QueryTopics};
use crate::model::Bid;

/// Adds q7w to `builder`: events from `topics.input`, [`Q7Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    // Every bid in one task: the window maxima need them all.
    let bids = bids(&events(builder, topics))
        .map(|_, b: Bid| (WHOLE_STREAM, b))
        .repartition("q7w-bids", I64Serde, JsonSerde::<Bid>::new());
    candidates(builder, &bids, "q7w-max-so-far", false)
        .group_by_key(I64Serde, JsonSerde::<Bid>::new())
        .windowed_by(TimeWindows::of_size(WINDOW_MS).grace(WATERMARK_DELAY_MS))
        .aggregate_with("q7w-highest", max_with_ties(|b: &Bid| b.price))
        .to_stream()
        .flat_map(|_, top: Option<Vec<Bid>>| {
            top.unwrap_or_default()
                .into_iter()
                .map(|b| (b.auction, Q7Result::from(b)))
                .collect::<Vec<_>>()
        })
        .to(&topics.output, I64Serde, JsonSerde::<Q7Result>::new());
    Ok(())
}
