//! `strom produce TOPIC`: one record per input line, from stdin or a file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use crate::client::{parse_key_value, Connection};
use crate::producer::{self, ProducerSettings};
use crate::progress;

/// Longest line read as one record; a longer one is an error rather than unbounded memory.
const LINE_BYTES_MAX: usize = 64 << 20;

/// `strom produce`: flags.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  echo hello | strom produce greetings
  printf 'user1:clicked\\nuser2:left\\n' | strom produce events --key-separator :
  strom produce events --file events.txt --header source=import --compression zstd
  strom produce events --partition 2 --acks 1 --brokers kafka1:9092")]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Read lines from this file instead of stdin (shows a progress bar).
    #[arg(long, short, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (lines without it get no
    /// key).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// Header added to every record (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition [default: by key hash, or spread].
    #[arg(long, short)]
    partition: Option<i32>,
    #[command(flatten)]
    settings: ProducerSettings,
    #[command(flatten)]
    connection: Connection,
}

/// Runs `strom produce`.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let (input, bar): (Box<dyn Read>, _) = match &args.file {
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = progress::bar(size, true);
            (Box::new(bar.wrap_read(file)), bar)
        }
        None => (Box::new(std::io::stdin().lock()), progress::counter()),
    };
    let producer = producer::create(connection, &args.settings, 5)?;
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::new();
    let mut sent: u64 = 0;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("cannot read input")?;
        if read == 0 {
            break;
        }
        let record = strip_newline(&line);
        if record.len() > LINE_BYTES_MAX {
            anyhow::bail!("line {} is longer than {LINE_BYTES_MAX} bytes", sent + 1);
        }
        let (key, value) = split_key(record, args.key_separator.as_deref().map(str::as_bytes));
        let mut headers = OwnedHeaders::new_with_capacity(args.headers.len());
        for (name, value) in &args.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let opaque = producer.context().elapsed_us();
        let mut base = BaseRecord::with_opaque_to(&args.topic, opaque)
            .payload(value)
            .headers(headers);
        if let Some(key) = key {
            base = base.key(key);
        }
        if let Some(partition) = args.partition {
            base = base.partition(partition);
        }
        producer::send(&producer, base)?;
        sent += 1;
        if args.file.is_none() {
            bar.inc(1);
        }
        if sent.is_multiple_of(1024) {
            producer.poll(std::time::Duration::ZERO);
            producer.context().check()?;
        }
    }
    producer::flush(&producer, connection)?;
    bar.finish_and_clear();
    producer.context().check()?;
    eprintln!("produced {sent} record(s) to {}", args.topic);
    Ok(())
}

/// The line without its `\n` or `\r\n`.
fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Key and value of a line: split at the first `separator`, or all value.
fn split_key<'a>(line: &'a [u8], separator: Option<&[u8]>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(separator) = separator.filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line
        .windows(separator.len())
        .position(|window| window == separator)
    {
        Some(at) => (Some(&line[..at]), &line[at + separator.len()..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_separator() {
        assert_eq!(
            split_key(b"k:v:w", Some(b":")),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(
            split_key(b"k::v", Some(b"::")),
            (Some(&b"k"[..]), &b"v"[..])
        );
        assert_eq!(split_key(b"value", Some(b":")), (None, &b"value"[..]));
        assert_eq!(split_key(b":v", Some(b":")), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split_key(b"k:v", None), (None, &b"k:v"[..]));
    }

    #[test]
    fn newlines_are_stripped_once() {
        assert_eq!(strip_newline(b"a\r\n"), b"a");
        assert_eq!(strip_newline(b"a\n"), b"a");
        assert_eq!(strip_newline(b"a"), b"a");
        assert_eq!(strip_newline(b"\n"), b"");
    }
}
