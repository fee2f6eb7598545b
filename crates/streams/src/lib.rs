//! # strom-streams
//!
//! Stream processing over any Kafka-protocol cluster (strom or Apache Kafka), in the
//! style of Kafka Streams: a typed DSL ([`dsl`]), a processor API beneath it
//! ([`processor`]), state stores with changelogs ([`store`]), a runtime with stream
//! threads, consumer groups and exactly-once ([`runtime`]), a deterministic test
//! driver ([`driver`]), and an in-process runner for benchmarks ([`inprocess`]).
//!
//! ## How state stays exactly-once without wipes
//!
//! Writes a task makes to its stores go to an in-memory *overlay*; reads see overlay ∪
//! store. At commit the overlay (one record per key written) goes to the store's
//! compacted changelog topic inside the same Kafka transaction as the outputs and the
//! input offsets. Only after the transaction commits is the overlay applied to the local
//! store, in one atomic batch with the changelog offsets it corresponds to. The local
//! store is therefore always a prefix of the committed changelog: a crash never wipes it,
//! and a restart replays only the changelog's tail.
//!
//! ## Errors and observability
//!
//! Records that fail go to an [`ErrorHandler`] (fail, log, dead-letter topic); calls to
//! external systems retry in line ([`resilience::RetryPolicy`]), pause their partition
//! ([`resilience::CircuitBreaker`], [`error::ProcessError::Retry`]) or, for long
//! backoffs, move through non-blocking retry topics ([`retry_topics`]). With the cargo
//! feature `otel` and `StreamsConfig::otlp_endpoint`, the runtime exports a span per
//! record (a child of its W3C `traceparent`), commit and restore over OTLP/HTTP.
//!
//! ## Example
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("user-events", StringSerde, StringSerde)
//!     .filter(|_, event: &String| event.contains("PREMIUM"))
//!     .to("premium-user-events", StringSerde, StringSerde);
//! let mut driver = TopologyTestDriver::new(&builder.build().unwrap()).unwrap();
//! let (k, premium, basic) = ("u1".to_string(), "PREMIUM login".to_string(), "BASIC login".to_string());
//! driver.pipe("user-events", &StringSerde, &StringSerde, &k, &premium, 1).unwrap();
//! driver.pipe("user-events", &StringSerde, &StringSerde, &k, &basic, 2).unwrap();
//! let out = driver.read_output("premium-user-events", &StringSerde, &StringSerde).unwrap();
//! assert_eq!(out.len(), 1);
//! ```

pub mod dedup;
pub mod driver;
pub mod dsl;
pub mod error;
pub mod inprocess;
pub mod join;
pub mod processor;
pub mod record;
#[cfg(feature = "registry")]
pub mod registry;
pub mod resilience;
pub mod retry_topics;
pub mod runtime;
pub mod serdes;
pub mod store;
mod task;
mod telemetry;
mod topology;
pub mod window;

pub use task::{ErrorHandler, PunctuationType};
pub use topology::Topology;

/// Everything an application usually needs.
pub mod prelude {
    pub use crate::driver::{CrashPoint, DriverConfig, TopologyTestDriver};
    pub use crate::dsl::{KGroupedStream, KStream, KTable, StreamsBuilder};
    pub use crate::error::{ProcessError, SerdeError, StreamsError};
    pub use crate::join::{FkJoined, JoinWindows, StreamJoined};
    pub use crate::processor::{
        GlobalTable, GlobalView, KvStore, LateRecord, Processor, ProcessorContext, ScheduleId,
        StoreHandle,
    };
    pub use crate::record::{Headers, OutputRecord, Record, TaskId};
    pub use crate::resilience::{BreakerConfig, BreakerState, CircuitBreaker, RetryPolicy};
    pub use crate::retry_topics::RetryTopics;
    pub use crate::serdes::{
        BytesSerde, I32Serde, I64Serde, JsonSerde, Nullable, Serde, StringSerde, U32Serde,
        U64Serde, UnitSerde,
    };
    pub use crate::task::{ErrorHandler, PunctuationType};
    pub use crate::topology::Topology;
    pub use crate::window::aggregations::{Aggregation, F64Serde};
    pub use crate::window::{
        Emit, SessionWindowedKStream, SessionWindows, SlidingWindows, TimeWindowedKStream,
        TimeWindows, Window, Windowed, WindowedSerde,
    };
}
