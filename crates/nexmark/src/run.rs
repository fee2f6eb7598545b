//! Running a query: through the test driver (tests) or the in-process runner
//! (benchmarks), fed from a [`Generator`].
//!
//! ```
//! use strom_nexmark::generator::{FlinkBidGenerator, FlinkBidsConfig, Generator};
//! use strom_nexmark::queries::query;
//! use strom_nexmark::run::{driver_outputs, in_process};
//! use strom_streams::inprocess::InProcessConfig;
//!
//! let generator = Generator::FlinkBids(FlinkBidGenerator::new(FlinkBidsConfig::default()));
//! let q0 = query("q0").unwrap();
//! let events: Vec<_> = generator.events(0..100).collect();
//! assert_eq!(driver_outputs(q0, &events).unwrap().len(), 100);
//! let report = in_process(q0, &generator, 100, InProcessConfig::default()).unwrap();
//! assert_eq!((report.input_records, report.output_records), (100, 100));
//! ```

use strom_streams::inprocess::{InProcessConfig, InProcessRunner, RunReport};
use strom_streams::prelude::{
    OutputRecord, Record, StreamsBuilder, StreamsError, Topology, TopologyTestDriver, UnitSerde,
};

use crate::generator::Generator;
use crate::model::{Event, EventSerde};
use crate::queries::{Query, QueryTopics};

/// The query's topology, reading and writing the default [`QueryTopics`].
pub fn topology(query: &Query) -> Result<Topology, StreamsError> {
    let builder = StreamsBuilder::new();
    (query.build)(&builder, &QueryTopics::default())?;
    builder.build()
}

/// Pipes `events` (null keys, JSON values, record timestamp = event time) through the
/// query in the test driver, committing after each, and returns its committed outputs
/// to the output topic, serialized, in order.
pub fn driver_outputs(query: &Query, events: &[Event]) -> Result<Vec<OutputRecord>, StreamsError> {
    let topics = QueryTopics::default();
    let mut driver = TopologyTestDriver::new(&topology(query)?)?;
    let serde = EventSerde::new();
    for e in events {
        driver.pipe(&topics.input, &UnitSerde, &serde, &(), e, e.date_time())?;
    }
    Ok(driver.read_raw(&topics.output))
}

/// Runs the query on the first `events` events of `generator` in this process: partition
/// `p` of `P` gets events `p, p + P, …` (as Flink's sequence source splits them), typed,
/// with the event time as record timestamp.
pub fn in_process(
    query: &Query,
    generator: &Generator,
    events: u64,
    config: InProcessConfig,
) -> Result<RunReport, StreamsError> {
    let runner = InProcessRunner::new(&topology(query)?, config)?;
    let partitions = runner.partitions() as u64;
    runner.run(&QueryTopics::default().input, |p| {
        generator.partition(p as u64, partitions, events).map(|e| {
            let ts = e.date_time();
            Record::new((), e, ts)
        })
    })
}
