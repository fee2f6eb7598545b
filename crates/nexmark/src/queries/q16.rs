//! Query 16, channel statistics report: how many distinct users bid at each price level,
//! per channel and day? Distinct aggregates with filters, for several keys.
//!
//! ```sql
//! SELECT channel,
//!        DATE_FORMAT(dateTime, 'yyyy-MM-dd') AS `day`,
//!        max(DATE_FORMAT(dateTime, 'HH:mm')) AS `minute`,
//!        count(*) AS total_bids,
//!        count(*) FILTER (WHERE price < 10000) AS rank1_bids,
//!        ... the same twelve counts as q15
//! FROM bid
//! GROUP BY channel, DATE_FORMAT(dateTime, 'yyyy-MM-dd');
//! ```
//!
//! **Topology.** Bids are re-keyed by channel and UTC day (topic
//! `<app>-q16-by-day-repartition`) and counted by the distinct-count processor of [`super::bid_stats`].
//!
//! **Output.** Key: JSON [`Q16Key`]; value: JSON [`Q16Result`]; `minute` is the latest
//! `HH:mm` (UTC) with a bid on that channel and day.
//!
//! **Emission: on update, as Flink** — every bid emits its channel-day's new row; the
//! last row per key is the `GROUP BY` result. Each day closes (final row, state deleted,
//! later bids late) 4 s after it ends, exactly as in q15; Flink keeps every day forever.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::bid_stats::{daily_stats, BidCounts, DayStats, GroupDay};
use super::common::{format_day, format_minute};
use super::QueryTopics;
use super::{bids, events};

/// The key of a q16 row: its channel and day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q16Key {
    /// The channel.
    pub channel: String,
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
}

/// A channel's bidding statistics for a day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q16Result {
    /// The channel.
    pub channel: String,
    /// The day, `yyyy-MM-dd` (UTC).
    pub day: String,
    /// The latest minute of the day with a bid, `HH:mm` (UTC).
    pub minute: String,
    /// The counts (flattened into this object).
    #[serde(flatten)]
    pub counts: BidCounts,
}

/// Adds q16 to `builder`: bids of `topics.input` → statistics per channel and day →
/// `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    daily_stats(builder, &bids(&events(builder, topics)), "q16", |bid| {
        bid.channel.clone()
    })
    .map(|key: GroupDay, stats: DayStats| {
        let day = format_day(key.day);
        let result = Q16Result {
            channel: key.group.clone(),
            day: day.clone(),
            minute: format_minute(stats.max_minute),
            counts: stats.counts,
        };
        (
            Q16Key {
                channel: key.group,
                day,
            },
            result,
        )
    })
    .to(
        &topics.output,
        JsonSerde::<Q16Key>::new(),
        JsonSerde::<Q16Result>::new(),
    );
    Ok(())
}
