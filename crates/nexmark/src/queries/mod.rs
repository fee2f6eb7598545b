//! The Nexmark queries, each a function that adds its topology to a
//! [`StreamsBuilder`](strom_streams::prelude::StreamsBuilder): it reads [`Event`](crate::Event)s
//! from [`QueryTopics::input`] and writes its results to [`QueryTopics::output`].
//!
//! One module per query; [`Query`] names them for the CLI and the benchmark.

/// Where a query reads its events and writes its results.
#[derive(Debug, Clone)]
pub struct QueryTopics {
    /// The topic of [`Event`](crate::Event)s (values in [`EventSerde`](crate::model::EventSerde), null keys).
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

pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q7w;
pub mod q8;
pub mod q9;
mod shared;
mod winning_bids;

pub use shared::WATERMARK_DELAY_MS;
