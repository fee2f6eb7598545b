//! `tumble_count` (the Flink script's): bids per auction per 10-second tumbling window,
//! `SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bid,
//! DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY auction, window_start,
//! window_end`.
//!
//! The script's watermark trails the largest event time by 4 s, so a window's count is
//! final 4 s of event time after its end: here the same as a grace of 4 s, with one final
//! result per auction and window (emitted when stream time passes `end + 4 s`). Bids are
//! re-keyed by auction and reduced to `()` in one operator before the repartition topic,
//! so only the key and the timestamp travel.
//!
//! Output: key `Windowed<i64>` (auction, window start and end, in [`WindowedSerde`] of
//! [`I64Serde`]), value the count ([`I64Serde`]).

use strom_streams::prelude::{
    I64Serde, StreamsBuilder, StreamsError, TimeWindows, UnitSerde, WindowedSerde,
};

use super::{events, QueryTopics};
use crate::model::Event;

/// The window size: 10 s.
pub const WINDOW_MS: i64 = 10_000;
/// How long after its end a window takes late bids: the Flink script's watermark delay.
pub const GRACE_MS: i64 = 4_000;

/// The store of the counts.
pub const STORE: &str = "tumble-count";

/// Adds `tumble_count` to `builder`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    // One operator from event to (auction, ()): the bid is dropped before the
    // repartition, so only the key and the timestamp travel.
    events(builder, topics)
        .flat_map(|(), event: Event| match event {
            Event::Bid(bid) => Some((bid.auction, ())),
            _ => None,
        })
        .group_by_key(I64Serde, UnitSerde)
        .windowed_by(TimeWindows::of_size(WINDOW_MS).grace(GRACE_MS))
        .count(STORE)
        .to(&topics.output, WindowedSerde(I64Serde), I64Serde);
    Ok(())
}

/// The window of an event time: `[start, start + WINDOW_MS)`.
pub fn window_of(ts: i64) -> (i64, i64) {
    let start = ts - ts.rem_euclid(WINDOW_MS);
    (start, start + WINDOW_MS)
}
