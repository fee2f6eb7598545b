//! Query 8, monitor new users: people who registered and opened an auction in the same
//! 10 s window.
//!
//! ```sql
//! SELECT P.id, P.name, P.starttime
//! FROM (
//!   SELECT id, name, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY id, name, window_start, window_end
//! ) P
//! JOIN (
//!   SELECT seller, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY seller, window_start, window_end
//! ) A
//! ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
//! ```
//!
//! **Output**: one [`Q8Result`] per person and tumbling window in which the person
//! registered and opened at least one auction (per name, as `GROUP BY id, name`: a
//! Nexmark person registers once); key = person id ([`I64Serde`]), value JSON.
//!
//! **How**: both sides of the SQL are grouped by (person, window) and joined on it, so
//! the join is a co-group: persons (by id) and auctions (by seller) go through one
//! repartition into one tumbling windowed aggregation per person that notes the names and
//! whether an auction was opened; a window with both gives the rows. Grace
//! [`WATERMARK_DELAY_MS`].
//!
//! **Emission**: final per window, when it closes (record timestamp `end - 1`), as
//! Flink's window aggregations and join. Late persons and auctions go to the dead-letter
//! topic.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{
    I64Serde, JsonSerde, StreamsBuilder, StreamsError, TimeWindows, Windowed,
};

use super::shared::WATERMARK_DELAY_MS;
use super::{events, QueryTopics};
use crate::model::Event;

/// The tumbling window's size.
pub const WINDOW_MS: i64 = 10_000;

/// A q8 result row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q8Result {
    /// The person's id.
    pub id: i64,
    /// The person's name.
    pub name: String,
    /// The window's start (ms).
    pub starttime: i64,
}

/// A person registering (with their name) or opening an auction, keyed by person id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Activity {
    Registered(String),
    OpenedAuction,
}

/// What a person did in one window: the names they registered with (one, in Nexmark),
/// and whether they opened an auction.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct NewUser {
    names: Vec<String>,
    opened_auction: bool,
}

/// Adds q8 to `builder`: events from `topics.input`, [`Q8Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    events(builder, topics)
        .flat_map(|_, e| match e {
            Event::Person(p) => Some((p.id, Activity::Registered(p.name))),
            Event::Auction(a) => Some((a.seller, Activity::OpenedAuction)),
            Event::Bid(_) => None,
        })
        .group_by_key(I64Serde, JsonSerde::<Activity>::new())
        .windowed_by(TimeWindows::of_size(WINDOW_MS).grace(WATERMARK_DELAY_MS))
        .aggregate(
            "q8-new-users",
            NewUser::default,
            |mut user: NewUser, activity: Activity| {
                match activity {
                    // GROUP BY id, name: one row per distinct name.
                    Activity::Registered(name) => {
                        if !user.names.contains(&name) {
                            user.names.push(name);
                        }
                    }
                    Activity::OpenedAuction => user.opened_auction = true,
                }
                user
            },
            JsonSerde::<NewUser>::new(),
        )
        .to_stream()
        .flat_map(|w: Windowed<i64>, user: Option<NewUser>| {
            let user = user.filter(|u| u.opened_auction).unwrap_or_default();
            let (id, starttime) = (w.key, w.window.start_ms);
            user.names
                .into_iter()
                .map(move |name| {
                    let row = Q8Result {
                        id,
                        name,
                        starttime,
                    };
                    (id, row)
                })
                .collect::<Vec<_>>()
        })
        .to(&topics.output, I64Serde, JsonSerde::<Q8Result>::new());
    Ok(())
}
