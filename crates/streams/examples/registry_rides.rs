//! Avro through the schema registry: rides in Confluent's wire format (from any
//! Confluent serializer: Java, Python, Go, …) are read with a newer reader schema (an
//! optional `city`, default null), priced, and written as Avro under the output topic's
//! value subject, registered on first use. Unreadable records go to `<input>-dlq` with
//! the reason. Runs until its standard input closes.
//!
//! ```text
//! cargo run -p strom-streams --features registry --example registry_rides -- \
//!     127.0.0.1:9092 http://127.0.0.1:8081 rides priced-rides
//! ```

use std::io::Read;

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;
use strom_streams::registry::{topic_subject, AvroSerde, SchemaRegistry, SerdeConfig};
use strom_streams::runtime::{KafkaStreams, StreamsConfig};

/// The reader's schema: writers may not know `city` yet.
const RIDE: &str = r#"{"type":"record","name":"Ride","namespace":"strom.examples","fields":[
    {"name":"id","type":"string"},
    {"name":"km","type":"double"},
    {"name":"city","type":["null","string"],"default":null}]}"#;
const PRICED_RIDE: &str = r#"{"type":"record","name":"PricedRide","namespace":"strom.examples","fields":[
    {"name":"id","type":"string"},
    {"name":"city","type":"string"},
    {"name":"fare_cents","type":"long"}]}"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ride {
    id: String,
    km: f64,
    city: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PricedRide {
    id: String,
    city: String,
    fare_cents: i64,
}

fn price(ride: &Ride) -> PricedRide {
    PricedRide {
        id: ride.id.clone(),
        city: ride.city.clone().unwrap_or_else(|| "unknown".into()),
        fare_cents: 250 + (ride.km * 120.0).round() as i64,
    }
}

/// Avro values of `topic` under its value subject (Confluent's TopicNameStrategy),
/// the schema registered on first use.
fn values<T>(
    registry: &SchemaRegistry,
    topic: &str,
    schema: &str,
) -> Result<AvroSerde<T>, StreamsError> {
    AvroSerde::new(
        registry,
        &topic_subject(topic, false),
        schema,
        SerdeConfig::default(),
    )
}

fn main() -> Result<(), StreamsError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, registry_url, input, output] = args.as_slice() else {
        return Err(StreamsError::Config(
            "usage: registry_rides BOOTSTRAP REGISTRY_URL INPUT_TOPIC OUTPUT_TOPIC".into(),
        ));
    };
    let registry = SchemaRegistry::connect_url(registry_url)?;
    let builder = StreamsBuilder::new();
    builder
        .stream(
            input,
            Nullable(StringSerde),
            values(&registry, input, RIDE)?,
        )
        .map_values(price)
        .to(
            output,
            Nullable(StringSerde),
            values(&registry, output, PRICED_RIDE)?,
        );
    let mut config = StreamsConfig::new(&format!("registry-rides-{input}"), bootstrap);
    config.deserialization_errors = ErrorHandler::DeadLetter {
        topic: format!("{input}-dlq"),
    };
    let app = KafkaStreams::start(&builder.build()?, config)?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    app.close()
}
