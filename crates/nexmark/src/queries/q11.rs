//! Query 11, user sessions: how many bids did a user make in each session they were
//! active? Session windows.
//!
//! ```sql
//! SELECT B.bidder, count(*) AS bid_count,
//!        SESSION_START(B.dateTime, INTERVAL '10' SECOND) AS starttime,
//!        SESSION_END(B.dateTime, INTERVAL '10' SECOND) AS endtime
//! FROM bid B
//! GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND);
//! ```
//!
//! **Topology.** Bids are re-keyed by bidder (through a repartition topic) and counted in
//! session windows with a 10 s inactivity gap: two bids of a bidder at most 10 s apart
//! are in one session, and a bid that arrives out of order between two sessions merges
//! them.
//!
//! **Output.** Null key, a JSON [`Q11Result`] value per session: `starttime` is its first
//! bid's time, `endtime` its last bid's time + 10 s (Flink's `SESSION_END`, exclusive).
//!
//! **Emission.** Final results only, one per session, once stream time passes
//! `endtime + 4 s` (the grace, [`WATERMARK_DELAY_MS`]); record timestamp `endtime − gap`
//! (the session's last bid). Flink's group window also emits once, when the watermark
//! (event time − 4 s) passes the session's end.
//!
//! **Differences from Flink.** A bid more than 4 s behind stream time is late (dead-letter
//! topic) even when its own session would still be open; Flink accepts a bid until the
//! watermark passes that bid's `time + gap`. Both agree whenever the input is at most 4 s
//! out of order, as the generator's is.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::common::WATERMARK_DELAY_MS;
use super::QueryTopics;
use super::{bids, events};

/// The inactivity gap that ends a session.
pub const SESSION_GAP_MS: i64 = 10_000;

/// One bidder's session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q11Result {
    /// The bidder.
    pub bidder: i64,
    /// Bids in the session.
    pub bid_count: i64,
    /// The session's first bid (ms since the epoch).
    pub starttime: i64,
    /// The session's last bid + the gap (ms since the epoch; exclusive, as `SESSION_END`).
    pub endtime: i64,
}

/// Adds q11 to `builder`: bids of `topics.input` → sessions per bidder → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        // Only the count matters: the repartition topic carries the bidder and no value.
        .map(|_, bid| (bid.bidder, ()))
        .group_by_key(I64Serde, UnitSerde)
        .windowed_by_session(
            SessionWindows::with_inactivity_gap(SESSION_GAP_MS).grace(WATERMARK_DELAY_MS),
        )
        .count("q11-sessions")
        .to_stream()
        .flat_map(|session: Windowed<i64>, count: Option<i64>| {
            // Final results carry no retractions (those exist only under `OnUpdate`).
            count.map(|bid_count| {
                let result = Q11Result {
                    bidder: session.key,
                    bid_count,
                    starttime: session.window.start_ms,
                    // The window is [first, last + 1).
                    endtime: session.window.end_ms - 1 + SESSION_GAP_MS,
                };
                ((), result)
            })
        })
        .to(&topics.output, UnitSerde, JsonSerde::<Q11Result>::new());
    Ok(())
}
