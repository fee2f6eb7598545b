//! Test support of q11–q22: seeded inputs ([`input`]), brute-force references
//! ([`reference`]), and a harness that runs a query through the `TopologyTestDriver`.
#![allow(dead_code)]

pub mod input;
pub mod reference;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_nexmark::model::EventSerde;
use strom_nexmark::queries::QueryTopics;
use strom_nexmark::Event;
use strom_streams::prelude::*;

/// Where the tests send records a query could not process (late ones included).
pub const DLQ: &str = "dlq";

/// A query's build function.
pub type Build = fn(&StreamsBuilder, &QueryTopics) -> Result<(), StreamsError>;

/// A query under test in the driver.
pub struct Harness {
    /// The driver.
    pub driver: TopologyTestDriver,
    /// The query's topics.
    pub topics: QueryTopics,
}

impl Harness {
    /// `build`'s topology in a driver with a dead-letter topic and `config`'s other
    /// settings.
    pub fn with_config(build: Build, config: DriverConfig) -> Self {
        let topics = QueryTopics::default();
        let builder = StreamsBuilder::new();
        build(&builder, &topics).expect("build the query");
        let topology = builder.build().expect("a valid topology");
        let config = DriverConfig {
            processing_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
            ..config
        };
        let driver = TopologyTestDriver::with_config(&topology, config).expect("driver");
        Harness { driver, topics }
    }

    /// `build`'s topology in a driver with a dead-letter topic.
    pub fn new(build: Build) -> Self {
        Self::with_config(build, DriverConfig::default())
    }

    /// Pipes one event (null key; the record timestamp is the event's time, though the
    /// queries read the time from the event).
    pub fn pipe(&mut self, event: &Event) {
        self.driver
            .pipe(
                &self.topics.input,
                &UnitSerde,
                &EventSerde::new(),
                &(),
                event,
                event.date_time(),
            )
            .expect("pipe an event");
    }

    /// Pipes every event, in order.
    pub fn pipe_all(&mut self, events: &[Event]) {
        for e in events {
            self.pipe(e);
        }
    }

    /// The values written to the output since the last read (null keys).
    pub fn values<V: Serialize + DeserializeOwned + 'static>(&mut self) -> Vec<V> {
        self.driver
            .read_output(&self.topics.output, &UnitSerde, &JsonSerde::<V>::new())
            .expect("read the output")
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    /// The (key, value, timestamp) records written to the output since the last read.
    pub fn records<K, V>(&mut self) -> Vec<(K, V, i64)>
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        self.driver
            .read_output(
                &self.topics.output,
                &JsonSerde::<K>::new(),
                &JsonSerde::<V>::new(),
            )
            .expect("read the output")
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp_ms))
            .collect()
    }

    /// The records in the dead-letter topic: (timestamp, `strom.error.kind`).
    pub fn dead_letters(&mut self) -> Vec<(i64, String)> {
        self.driver
            .read_raw(DLQ)
            .into_iter()
            .map(|r| {
                let kind = r
                    .headers
                    .iter()
                    .find(|(k, _)| k == "strom.error.kind")
                    .and_then(|(_, v)| v.clone())
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                (r.timestamp_ms, kind)
            })
            .collect()
    }
}

/// The last value per key of an upsert stream: the table it describes.
pub fn last_per_key<K: Ord, V>(records: Vec<(K, V, i64)>) -> std::collections::BTreeMap<K, V> {
    records.into_iter().map(|(k, v, _)| (k, v)).collect()
}
