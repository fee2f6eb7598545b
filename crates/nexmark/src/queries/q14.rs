//! Query 14, calculation: convert the bid time into a type and keep bids in a price
//! band. Arithmetic, a `CASE`, and a user-defined function.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price AS price,
//!        CASE WHEN HOUR(dateTime) >= 8 AND HOUR(dateTime) <= 18 THEN 'dayTime'
//!             WHEN HOUR(dateTime) <= 6 OR HOUR(dateTime) >= 20 THEN 'nightTime'
//!             ELSE 'otherTime' END AS bidTimeType,
//!        dateTime, extra, count_char(extra, 'c') AS c_counts
//! FROM bid
//! WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
//! ```
//!
//! **Topology.** One stateless step: filter and map each bid.
//!
//! **Output.** Null key, a JSON [`Q14Result`] per bid in the band (append-only, in input
//! order, each at its bid's time).
//!
//! **Arithmetic.** Flink computes `0.908 * price` as `DECIMAL(23, 3)`, exactly. Here the
//! band test is exact too, in integers (`908 · price` thousandths against 10⁹ and
//! 5·10¹⁰), and the `price` column is the `f64` nearest to the exact decimal
//! (`908 · price / 1000`, one correctly rounded division). `HOUR` is taken in UTC, as for
//! Flink's `TIMESTAMP(3)` made from epoch milliseconds. `count_char` counts the bytes
//! equal to `c` (Nexmark's UDF); in UTF-8 that is the number of `c` characters.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::common::hour_of;
use super::QueryTopics;
use super::{bids, events};
use crate::model::Bid;

/// A bid in the price band, with its time type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Q14Result {
    /// The auction.
    pub auction: i64,
    /// The bidder.
    pub bidder: i64,
    /// `0.908 · price` (see the module docs for its precision).
    pub price: f64,
    /// `dayTime` (08:00–18:59 UTC), `nightTime` (20:00–06:59) or `otherTime`.
    pub bid_time_type: String,
    /// The bid's time (ms since the epoch).
    pub date_time: i64,
    /// The bid's padding.
    pub extra: String,
    /// Occurrences of `c` in `extra`.
    pub c_counts: i64,
}

/// Exclusive bounds of `0.908 · price`, in thousandths (`908 · price`).
const BAND_THOUSANDTHS: (i128, i128) = (1_000_000_000, 50_000_000_000);

/// `0.908 · price` in thousandths, exactly.
fn scaled_thousandths(price: i64) -> i128 {
    i128::from(price) * 908
}

/// The SQL's `CASE` on the hour of the day.
pub fn bid_time_type(date_time_ms: i64) -> &'static str {
    match hour_of(date_time_ms) {
        8..=18 => "dayTime",
        h if h <= 6 || h >= 20 => "nightTime",
        _ => "otherTime",
    }
}

/// Nexmark's `count_char(s, c)` for an ASCII `c`.
pub fn count_char(s: &str, c: u8) -> i64 {
    s.bytes().filter(|&b| b == c).count() as i64
}

/// The result row of a bid, or `None` when it is outside the price band.
pub fn calculate(bid: &Bid) -> Option<Q14Result> {
    let scaled = scaled_thousandths(bid.price);
    if scaled <= BAND_THOUSANDTHS.0 || scaled >= BAND_THOUSANDTHS.1 {
        return None;
    }
    Some(Q14Result {
        auction: bid.auction,
        bidder: bid.bidder,
        price: scaled as f64 / 1000.0,
        bid_time_type: bid_time_type(bid.date_time).to_string(),
        date_time: bid.date_time,
        extra: bid.extra.clone(),
        c_counts: count_char(&bid.extra, b'c'),
    })
}

/// Adds q14 to `builder`: bids of `topics.input` → the band's rows → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics))
        .flat_map_values(calculate)
        .to(&topics.output, UnitSerde, JsonSerde::<Q14Result>::new());
    Ok(())
}
