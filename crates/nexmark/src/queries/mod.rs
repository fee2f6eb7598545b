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
