//! `strom`: the one binary. `strom serve` runs the Kafka-compatible broker; more
//! commands (topics, produce/consume, groups, bench) join it in later releases.

mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// strom: an event-streaming platform that speaks the Apache Kafka protocol.
#[derive(Debug, Parser)]
#[command(name = "strom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker on a local data directory.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strom: {error:#}");
            ExitCode::FAILURE
        }
    }
}
