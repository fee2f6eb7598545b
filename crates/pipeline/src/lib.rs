//! # strom-pipeline
//!
//! Declarative pipelines: the YAML the seeds write (`stream_pipeline`,
//! `location_pipeline`, `message_pipeline`, or any `<name>_pipeline` / `pipeline`), read
//! as written. This crate parses a file into a [`Pipeline`], reports **every** mistake with
//! its file, line and column ([`Diagnostic`]), and describes the topology as text and as a
//! Mermaid graph. Steps and outputs form a graph: each reads what its `from` names (input
//! topics, earlier steps), by default the step before it ([`Pipeline::step_upstream`]).
//! Running a pipeline (compiling it to a strom-streams topology with its
//! sinks) builds on this model, and so do its live HTML views ([`dashboard`]).
//!
//! ```
//! let yaml = r#"
//! pipeline:
//!   name: views
//!   input_topics: ["user-views"]
//!   processors:
//!     - name: per-content
//!       type: tumbling-window
//!       window_size: "5 minutes"
//!       operations: [count_by_content_id, sum_watch_duration]
//!   output_sinks:
//!     - type: kafka
//!       topic: view-counts
//! "#;
//! let pipeline = strom_pipeline::parse("views.yaml", yaml, &|_| None).unwrap();
//! assert_eq!(pipeline.steps[0].window.unwrap().size_ms, 300_000);
//! assert!(strom_pipeline::describe::mermaid(&pipeline).contains("view-counts"));
//! ```

#[cfg(feature = "runtime")]
pub mod builtins;
#[cfg(feature = "runtime")]
pub mod compile;
#[cfg(feature = "runtime")]
pub mod connectors;
pub mod dashboard;
#[cfg(feature = "runtime")]
pub mod delivery;
pub mod describe;
mod diagnostic;
pub mod duration;
pub mod expr;
#[cfg(feature = "runtime")]
mod http;
#[cfg(feature = "runtime")]
pub mod op_metrics;
pub mod operations;
mod parse;
#[cfg(feature = "runtime")]
pub mod payments;
#[cfg(feature = "runtime")]
pub mod plugin;
#[cfg(feature = "runtime")]
mod prometheus;
#[cfg(feature = "runtime")]
pub mod rides;
#[cfg(feature = "runtime")]
pub mod run;
pub mod sinks;
mod spec;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use parse::{parse, parse_with};
pub use spec::Dashboard;
pub use spec::{
    Emit, Guarantee, Input, Location, Operation, Pipeline, Sink, Step, StepKind, Value, WindowSpec,
};
