//! The seeds' filter-and-route: user events from `user-events`; premium users' events go
//! to `premium-user-events`, the others by event type to `events-<type>`; unreadable
//! events go to the dead-letter topic `user-events-dlq` with headers naming the error.
//!
//! ```text
//! cargo run -p strom-streams --example premium_users -- 127.0.0.1:9092
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, StreamsConfig};

/// A user event, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserEvent {
    #[serde(rename = "userId")]
    user_id: String,
    #[serde(rename = "userType")]
    user_type: String,
    #[serde(rename = "eventType")]
    event_type: String,
}

fn main() -> Result<(), StreamsError> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    let events = builder.stream(
        "user-events",
        Nullable(StringSerde),
        JsonSerde::<UserEvent>::new(),
    );
    let routes = events.branch(vec![
        Box::new(|_, e: &UserEvent| e.user_type == "PREMIUM"),
        Box::new(|_, _: &UserEvent| true),
    ]);
    routes[0].to(
        "premium-user-events",
        Nullable(StringSerde),
        JsonSerde::new(),
    );
    routes[1].to_dynamic(
        |_, e| format!("events-{}", e.event_type),
        Nullable(StringSerde),
        JsonSerde::new(),
    );
    let mut config = StreamsConfig::new("premium-users", &bootstrap);
    config.deserialization_errors = ErrorHandler::DeadLetter {
        topic: "user-events-dlq".into(),
    };
    let app = KafkaStreams::start(&builder.build()?, config)?;
    while app.is_running() {
        std::thread::sleep(Duration::from_secs(5));
        println!("{:?}", app.metrics());
    }
    app.close()
}
