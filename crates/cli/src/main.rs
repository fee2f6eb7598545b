//! `strom`: the one binary. `strom serve` runs the Kafka-compatible broker (and the
//! schema registry); `schema` talks to a schema registry over REST; `topic`,
//! `produce`, `consume`, `group`, `user`, `acl` and `bench` are tools that talk to any Kafka-protocol
//! broker (strom or Apache Kafka) through librdkafka.

#[cfg(feature = "tools")]
mod acl;
#[cfg(feature = "tools")]
mod admin_ffi;
#[cfg(feature = "tools")]
mod admin_types;
#[cfg(feature = "tools")]
mod bench;
#[cfg(feature = "tools")]
mod client;
#[cfg(feature = "tools")]
mod consume;
mod fd_limit;
#[cfg(feature = "tools")]
mod generate;
#[cfg(feature = "tools")]
mod group;
#[cfg(feature = "tools")]
mod log_dirs;
mod pipeline;
#[cfg(feature = "tools")]
mod produce;
#[cfg(feature = "tools")]
mod producer;
#[cfg(feature = "tools")]
mod progress;
mod registry_guard;
mod schema;
mod schema_store;
mod serve;
#[cfg(feature = "tools")]
mod serve_pipelines;
#[cfg(feature = "tools")]
mod table;
#[cfg(feature = "tools")]
mod topic;
#[cfg(feature = "tools")]
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// strom: an event-streaming platform that speaks the Apache Kafka protocol.
#[derive(Debug, Parser)]
#[command(
    name = "strom",
    version,
    about,
    long_about = None,
    after_help = "Examples:
  strom serve --data-dir ./data
  strom topic create orders --partitions 3
  echo hello | strom produce orders
  strom consume orders --from beginning --exit-at-end
  strom group describe billing
  strom user create alice --password-stdin < alice.password
  strom acl create --principal User:alice --operation read --topic orders
  strom schema register rides-value --file ride.avsc
  strom bench produce --count 100000 --json
  strom generate driver-locations --rate 500

Every command but serve takes --brokers HOST:PORT (default 127.0.0.1:9092)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker on a local data directory.
    // Boxed: its many flags make it far larger than the other commands.
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe, alter and delete topics.
    #[cfg(feature = "tools")]
    Topic(topic::TopicArgs),
    /// Write lines from stdin or a file as records.
    #[cfg(feature = "tools")]
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    #[cfg(feature = "tools")]
    Consume(consume::ConsumeArgs),
    /// List, describe (with lag), reset and delete consumer groups.
    #[cfg(feature = "tools")]
    Group(group::GroupArgs),
    /// Register, get, list, delete and check schemas in a schema registry.
    Schema(schema::SchemaArgs),
    /// Validate and describe declarative pipeline files.
    Pipeline(pipeline::PipelineArgs),
    /// Create, list and delete SCRAM users.
    #[cfg(feature = "tools")]
    User(user::UserArgs),
    /// Create, list and delete ACLs.
    #[cfg(feature = "tools")]
    Acl(acl::AclArgs),
    /// Measure throughput and latency against a broker.
    #[cfg(feature = "tools")]
    Bench(bench::BenchArgs),
    /// Produce realistic, reproducible events for the seeds' systems (views, driver
    /// locations, messages, payments, …).
    #[cfg(feature = "tools")]
    Generate(generate::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Schema(args) => schema::run(args),
        Command::Pipeline(args) => pipeline::run(args),
        #[cfg(feature = "tools")]
        Command::Topic(args) => topic::run(args),
        #[cfg(feature = "tools")]
        Command::Produce(args) => produce::run(args),
        #[cfg(feature = "tools")]
        Command::Consume(args) => consume::run(args),
        #[cfg(feature = "tools")]
        Command::Group(args) => group::run(args),
        #[cfg(feature = "tools")]
        Command::User(args) => user::run(args),
        #[cfg(feature = "tools")]
        Command::Acl(args) => acl::run(args),
        #[cfg(feature = "tools")]
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "tools")]
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strom: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause that its parent's text
/// already spells out (librdkafka errors repeat their error code as their source).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
