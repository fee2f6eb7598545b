//! `strom bench produce`: records sent as fast as allowed; latency from send to
//! acknowledgement.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer};

use super::report::{Latency, Report};
use super::{Pacer, Workload};
use crate::client::Connection;
use crate::producer::{self, ProducerSettings};

/// Records sent when neither --count nor --duration is given.
const COUNT_DEFAULT: u64 = 100_000;

/// Runs the benchmark and reports what was acknowledged.
pub fn run(
    connection: &Connection,
    workload: &Workload,
    settings: &ProducerSettings,
) -> anyhow::Result<Report> {
    let topic = workload.ensure_topic(connection)?;
    let producer = producer::create(connection, settings, 5)?;
    let value = workload.value();
    let limit = workload.limit(COUNT_DEFAULT);
    let bar = limit.progress();
    let pacer = Pacer::new(workload.rate.unwrap_or(0));
    let start = Instant::now();
    let mut sent: u64 = 0;
    while limit.allows(sent, start) {
        pacer.wait(sent, &producer);
        let opaque = producer.context().elapsed_us();
        producer::send(
            &producer,
            BaseRecord::with_opaque_to(&topic, opaque).payload(value.as_slice()),
        )?;
        sent += 1;
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
            bar.set_position(producer.context().state().acked);
        }
    }
    producer::flush(&producer, connection)?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    producer.context().check()?;
    let state = producer.context().state();
    Ok(Report::new(
        "produce",
        topic,
        state.acked,
        state.acked * value.len() as u64,
        elapsed,
        Latency::of(&state.latency_us),
    ))
}
