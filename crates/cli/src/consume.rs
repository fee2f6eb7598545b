//! `strom consume TOPIC`: prints records from a position (or a group's committed
//! offsets), as values, text lines or JSON lines, until N records or the end.

use std::collections::BTreeSet;
use std::io::{BufWriter, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{partitions_of, Connection};

/// `strom consume`: flags.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom consume greetings --from beginning --exit-at-end
  strom consume events --from beginning -n 10 --format json
  strom consume events --from @1700000000000 --format text
  strom consume events --partition 2 --from 1500
  strom consume events --group audit --from beginning   # commits as it goes")]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Where to start: `beginning`, `end`, an offset, or `@` and a timestamp in ms
    /// since the epoch. In a group it applies only where the group has no committed
    /// offset, and only `beginning` or `end` are allowed.
    #[arg(long, default_value = "end", value_parser = StartAt::parse)]
    from: StartAt,
    /// Read in this consumer group (partitions are assigned by the group and offsets
    /// committed) instead of reading every partition directly.
    #[arg(long, short)]
    group: Option<String>,
    /// Read only this partition (without --group).
    #[arg(long, short, conflicts_with = "group")]
    partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Stop at the end of every partition instead of waiting for more.
    #[arg(long, short)]
    exit_at_end: bool,
    /// Output: `value` (the value only), `text` (partition:offset, timestamp, key,
    /// headers and value on one line) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = Format::Value)]
    format: Format,
    #[command(flatten)]
    connection: Connection,
}

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Beginning,
    /// The high watermark: only new records.
    End,
    /// An absolute offset.
    Offset(i64),
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

impl StartAt {
    /// Parses `beginning`, `end`, `OFFSET` or `@TIMESTAMP_MS`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("expected beginning, end, an offset or @TIMESTAMP_MS, got {text:?}");
        match text {
            "beginning" | "earliest" => Ok(StartAt::Beginning),
            "end" | "latest" => Ok(StartAt::End),
            _ => match text.strip_prefix('@') {
                Some(ms) => ms.parse().map(StartAt::Timestamp).map_err(|_| invalid()),
                None => match text.parse() {
                    Ok(offset) if offset >= 0 => Ok(StartAt::Offset(offset)),
                    _ => Err(invalid()),
                },
            },
        }
    }
}

/// Output formats of `strom consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value only.
    Value,
    /// One line of text per record.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs `strom consume`.
pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let consumer = match &args.group {
        Some(group) => {
            let reset = match args.from {
                StartAt::Beginning => "earliest",
                StartAt::End => "latest",
                StartAt::Offset(_) | StartAt::Timestamp(_) => {
                    bail!("with --group, --from must be beginning or end")
                }
            };
            let consumer = connection.consumer(
                Some(group),
                &[
                    ("enable.partition.eof", "true"),
                    ("enable.auto.commit", "true"),
                    ("auto.offset.reset", reset),
                ],
            )?;
            consumer
                .subscribe(&[&args.topic])
                .with_context(|| format!("cannot subscribe to {}", args.topic))?;
            consumer
        }
        None => {
            let consumer = connection.consumer(None, &[("enable.partition.eof", "true")])?;
            let assignment = start_positions(connection, &consumer, &args)?;
            consumer
                .assign(&assignment)
                .context("cannot assign partitions")?;
            consumer
        }
    };
    let read = print_records(&consumer, &args)?;
    if args.group.is_some() && read > 0 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            // Auto-commit got there first.
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => return Err(error).context("cannot commit the group's offsets"),
        }
    }
    Ok(())
}

/// The partitions to read, each at its start offset.
fn start_positions(
    connection: &Connection,
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
) -> anyhow::Result<TopicPartitionList> {
    let metadata = connection.metadata(consumer, Some(&args.topic))?;
    let mut partitions = partitions_of(&metadata, &args.topic);
    if let Some(only) = args.partition {
        if !partitions.contains(&only) {
            bail!("topic {} has no partition {only}", args.topic);
        }
        partitions = vec![only];
    }
    let mut list = TopicPartitionList::new();
    for &partition in &partitions {
        let offset = match args.from {
            StartAt::Beginning => Offset::Beginning,
            StartAt::End => Offset::End,
            StartAt::Offset(offset) => Offset::Offset(offset),
            StartAt::Timestamp(ms) => Offset::Offset(ms),
        };
        list.add_partition_offset(&args.topic, partition, offset)?;
    }
    if let StartAt::Timestamp(_) = args.from {
        // offsets_for_times reads the timestamps from the offset fields; partitions
        // with no record at or after the time come back at the end.
        list = consumer
            .offsets_for_times(list, connection.timeout())
            .context("cannot look up offsets by timestamp")?;
    }
    Ok(list)
}

/// Prints records until the count or (with --exit-at-end) the end; returns how many.
fn print_records(consumer: &BaseConsumer, args: &ConsumeArgs) -> anyhow::Result<u64> {
    let stop = stop_on_signal()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut read: u64 = 0;
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    while args.count.is_none_or(|n| read < n) && !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if !flushed(out.flush())? {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                if args.exit_at_end && all_at_end(consumer, &at_end)? {
                    break;
                }
            }
            Some(Err(error)) => return Err(error).context("consume failed"),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                read += 1;
                let line = render(&message, args.format);
                if !flushed(out.write_all(&line))? {
                    break;
                }
            }
        }
    }
    flushed(out.flush())?;
    Ok(read)
}

/// A flag set by SIGINT or SIGTERM, so that a group member commits and leaves its
/// group (the consumer is closed on drop) instead of lingering until its session
/// times out.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal watcher")?;
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        flag.store(true, Ordering::Release);
    });
    Ok(stop)
}

/// Whether every assigned partition has reported its end.
fn all_at_end(consumer: &BaseConsumer, at_end: &BTreeSet<i32>) -> anyhow::Result<bool> {
    let assignment = consumer
        .assignment()
        .context("cannot read the assignment")?;
    let elements = assignment.elements();
    Ok(!elements.is_empty() && elements.iter().all(|e| at_end.contains(&e.partition())))
}

/// `Ok(false)` when the reader went away (a closed pipe ends output quietly).
fn flushed(result: std::io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// One output line (with its newline) for `message`.
fn render(message: &BorrowedMessage<'_>, format: Format) -> Vec<u8> {
    let value = message.payload().unwrap_or_default();
    let headers: Vec<(String, String)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), lossy(h.value.unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    let timestamp = message.timestamp().to_millis();
    let mut line = match format {
        Format::Value => value.to_vec(),
        Format::Text => {
            let mut text = format!(
                "{}:{} {}",
                message.partition(),
                message.offset(),
                timestamp.unwrap_or(-1)
            );
            if let Some(key) = message.key() {
                text.push_str(&format!(" key={}", lossy(key)));
            }
            if !headers.is_empty() {
                let pairs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                text.push_str(&format!(" headers={}", pairs.join(",")));
            }
            text.push(' ');
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(value);
            bytes
        }
        Format::Json => {
            let record = JsonRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp,
                key: message.key().map(lossy),
                headers: headers
                    .into_iter()
                    .map(|(key, value)| JsonHeader { key, value })
                    .collect(),
                value: message.payload().map(lossy),
            };
            serde_json::to_vec(&record).unwrap_or_default()
        }
    };
    line.push(b'\n');
    line
}

/// A record as `--format json` prints it.
#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<String>,
    headers: Vec<JsonHeader>,
    value: Option<String>,
}

/// A header as `--format json` prints it (keys may repeat, so not an object).
#[derive(Serialize)]
struct JsonHeader {
    key: String,
    value: String,
}

/// Text of bytes; invalid UTF-8 becomes U+FFFD.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(StartAt::parse("beginning"), Ok(StartAt::Beginning));
        assert_eq!(StartAt::parse("end"), Ok(StartAt::End));
        assert_eq!(StartAt::parse("42"), Ok(StartAt::Offset(42)));
        assert_eq!(
            StartAt::parse("@1700000000000"),
            Ok(StartAt::Timestamp(1_700_000_000_000))
        );
        for bad in ["-1", "@x", "start", ""] {
            assert!(StartAt::parse(bad).is_err(), "{bad}");
        }
    }
}
