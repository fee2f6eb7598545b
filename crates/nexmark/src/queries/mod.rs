//! The Nexmark queries, each a function that adds its topology to a
//! [`StreamsBuilder`]: it reads [`Event`]s from [`QueryTopics::input`] and writes its
//! results to [`QueryTopics::output`].
//!
//! ## The convention every query follows
//!
//! - One module per query, `queries/qN.rs`, exposing
//!   `pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError>`.
//! - It reads the events with [`events`] — once per query: a topic has one source — and
//!   narrows them with [`bids`], [`auctions`] and [`people`]. Input records have null
//!   keys and [`EventSerde`] values; event time is [`Event::date_time`].
//! - It writes its results to `topics.output` with a serde of its choosing (documented
//!   in its module), so the test driver, the Kafka runtime and the in-process benchmark
//!   runner all run it unchanged.
//! - Its line in [`QUERIES`] names it for `strom bench nexmark --query` and the tests.
//!
//! ```
//! use strom_nexmark::queries::{query, QueryTopics};
//! use strom_streams::prelude::StreamsBuilder;
//!
//! assert!(query("no-such-query").is_none());
//! for q in strom_nexmark::queries::QUERIES {
//!     let builder = StreamsBuilder::new();
//!     (q.build)(&builder, &QueryTopics::default()).unwrap();
//!     builder.build().unwrap();
//! }
//! ```

use strom_streams::prelude::{KStream, StreamsBuilder, StreamsError, UnitSerde};

use crate::model::{Auction, Bid, Event, EventSerde, Person};

// Each block of modules and each block of `QUERIES` belongs to one author; the comment
// lines between the blocks stay unchanged so that branches merge without conflicts.

// --- q0–q2, tumble_count ---
pub mod q0;
pub mod q1;
pub mod q2;
pub mod tumble_count;

// --- q3–q9, q7w ---
pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q7w;
pub mod q8;
pub mod q9;
pub mod shared;
pub mod winning_bids;
pub use shared::WATERMARK_DELAY_MS;

// --- q11, q12, q14–q20, q22 ---
pub mod bid_stats;
pub mod common;
pub mod q11;
pub mod q12;
pub mod q14;
pub mod q15;
pub mod q16;
pub mod q17;
pub mod q18;
pub mod q19;
pub mod q20;
pub mod q22;

// --- end of the query modules ---

/// Adds a query's topology to a builder.
pub type BuildFn = fn(&StreamsBuilder, &QueryTopics) -> Result<(), StreamsError>;

/// A query of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// Its name: `q0` … `q22`, or a name of the Flink peer script (`tumble_count`, `q7w`).
    pub name: &'static str,
    /// What it computes, in a line.
    pub about: &'static str,
    /// Reads bids only: it runs on the Flink script's bid stream as well as on the
    /// standard one (queries that join people or auctions need the standard stream).
    pub bids_only: bool,
    /// Adds the query to a builder.
    pub build: BuildFn,
}

/// Every query, in the order of their names.
pub static QUERIES: &[Query] = &[
    // --- q0–q2, tumble_count ---
    Query {
        name: "q0",
        about: "pass-through: every bid",
        bids_only: true,
        build: q0::build,
    },
    Query {
        name: "q1",
        about: "currency conversion: every bid's price times 0.908, exact",
        bids_only: true,
        build: q1::build,
    },
    Query {
        name: "q2",
        about: "selection: auction and price of bids on auctions divisible by 123",
        bids_only: true,
        build: q2::build,
    },
    Query {
        name: "tumble_count",
        about: "bids per auction per 10 s tumbling window (the Flink script's)",
        bids_only: true,
        build: tumble_count::build,
    },
    // --- q3–q9, q7w ---
    Query {
        name: "q3",
        about: "local item suggestion: sellers in OR, ID or CA and their category-10 auctions",
        bids_only: false,
        build: q3::build,
    },
    Query {
        name: "q4",
        about: "average winning price per category (an updating result)",
        bids_only: false,
        build: q4::build,
    },
    Query {
        name: "q5",
        about: "hot items: the auctions with the most bids per 10 s window, every 2 s",
        bids_only: true,
        build: q5::build,
    },
    Query {
        name: "q6",
        about: "average winning price of each seller's last 10 closed auctions",
        bids_only: false,
        build: q6::build,
    },
    Query {
        name: "q7",
        about: "highest bid: bids at their 10 s window's maximum (the SQL's join with BETWEEN)",
        bids_only: true,
        build: q7::build,
    },
    Query {
        name: "q7w",
        about: "highest bid as a window join: bids at their 10 s window's maximum",
        bids_only: true,
        build: q7w::build,
    },
    Query {
        name: "q8",
        about: "new users: persons who registered and opened an auction in the same 10 s window",
        bids_only: false,
        build: q8::build,
    },
    Query {
        name: "q9",
        about: "winning bids: each auction with its highest bid in its lifetime",
        bids_only: false,
        build: q9::build,
    },
    // --- q11, q12, q14–q20, q22 ---
    Query {
        name: "q11",
        about: "user sessions: bids per bidder per session (10 s gap)",
        bids_only: true,
        build: q11::build,
    },
    Query {
        name: "q12",
        about: "processing-time windows: bids per bidder per 10 s of wall clock",
        bids_only: true,
        build: q12::build,
    },
    Query {
        name: "q14",
        about: "calculation: bids in a price band with a time-of-day type and a UDF",
        bids_only: true,
        build: q14::build,
    },
    Query {
        name: "q15",
        about: "bidding statistics per day: counts and distinct bidders/auctions by price rank",
        bids_only: true,
        build: q15::build,
    },
    Query {
        name: "q16",
        about: "channel statistics per channel and day (q15's counts, per channel)",
        bids_only: true,
        build: q16::build,
    },
    Query {
        name: "q17",
        about: "auction statistics per auction and day: counts, min/max/avg/sum price",
        bids_only: true,
        build: q17::build,
    },
    Query {
        name: "q18",
        about: "last bid per bidder and auction (an updating result)",
        bids_only: true,
        build: q18::build,
    },
    Query {
        name: "q19",
        about: "top 10 bids by price per auction (an updating result)",
        bids_only: true,
        build: q19::build,
    },
    Query {
        name: "q20",
        about: "bids joined with their auction where category = 10 (a regular join)",
        bids_only: false,
        build: q20::build,
    },
    Query {
        name: "q22",
        about: "URL directories: the first three directories of each bid's URL",
        bids_only: true,
        build: q22::build,
    },
    // --- end of the queries ---
];

/// The query named `name`.
pub fn query(name: &str) -> Option<&'static Query> {
    QUERIES.iter().find(|q| q.name == name)
}

/// The names of every query, in registry order.
pub fn names() -> Vec<&'static str> {
    QUERIES.iter().map(|q| q.name).collect()
}

/// Where a query reads its events and writes its results.
#[derive(Debug, Clone)]
pub struct QueryTopics {
    /// The topic of [`Event`]s (values in [`EventSerde`], null keys).
    pub input: String,
    /// The topic the query's results go to.
    pub output: String,
}

impl Default for QueryTopics {
    fn default() -> Self {
        QueryTopics {
            input: "nexmark-events".to_string(),
            output: "nexmark-results".to_string(),
        }
    }
}

/// The event stream of a query: `topics.input` with null keys, [`EventSerde`] values and
/// event time [`Event::date_time`]. Call it once per query (a topic has one source) and
/// narrow it with [`bids`], [`auctions`], [`people`].
pub fn events(builder: &StreamsBuilder, topics: &QueryTopics) -> KStream<(), Event> {
    builder.stream_with_timestamps(
        &topics.input,
        UnitSerde,
        EventSerde::new(),
        |_, event: &Event, _| Some(event.date_time()),
    )
}

/// The bids of an event stream (moved out of their events, not cloned).
pub fn bids(events: &KStream<(), Event>) -> KStream<(), Bid> {
    events.filter_map_values(|e| match e {
        Event::Bid(b) => Some(b),
        _ => None,
    })
}

/// The auctions of an event stream.
pub fn auctions(events: &KStream<(), Event>) -> KStream<(), Auction> {
    events.filter_map_values(|e| match e {
        Event::Auction(a) => Some(a),
        _ => None,
    })
}

/// The people of an event stream.
pub fn people(events: &KStream<(), Event>) -> KStream<(), Person> {
    events.filter_map_values(|e| match e {
        Event::Person(p) => Some(p),
        _ => None,
    })
}
