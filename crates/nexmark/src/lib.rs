//! Nexmark, the streaming industry's benchmark, on strom-streams.
//!
//! Nexmark models an online auction: people register ([`Person`]), open auctions
//! ([`Auction`]) and bid on them ([`Bid`]). One stream carries all three as [`Event`]s
//! in event-time order (with a bounded out-of-order delay). The queries
//! ([`queries`]) are the standard ones (q0–q22), written with the strom-streams DSL
//! and run by any strom-streams runner: the test driver, the Kafka runtime against
//! `strom serve` or another cluster, or the in-process benchmark runner ([`run`]).
//! Events come from [`generator`]: the standard Nexmark model, or the bid stream of the
//! Flink peer script for side-by-side runs.

pub mod generator;
pub mod model;
pub mod queries;
pub mod run;

pub use generator::{
    FlinkBidGenerator, FlinkBidsConfig, Generator, GeneratorConfig, NexmarkGenerator,
};
pub use model::{Auction, Bid, Event, Person};
