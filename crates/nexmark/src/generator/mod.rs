//! Nexmark event generators: pure, seeded and deterministic, without I/O.
//!
//! - [`NexmarkGenerator`] is the standard Nexmark model: people, auctions and bids in
//!   the proportions 1 : 3 : 46, hot auctions (half the bids), hot sellers and bidders
//!   (three quarters), 100 auctions in flight, 1,000 active people, event time advancing
//!   by `1/rate` per event with an optional out-of-order shuffle, and `extra` padding to
//!   Nexmark's average sizes (person 200, auction 500, bid 100 bytes).
//! - [`FlinkBidGenerator`] is the bid stream of the Flink peer script
//!   (`bench-peers/flink/nexmark_flink.py`), formula for formula.
//!
//! Both are functions from an event number to an [`Event`]: event `n` is the same
//! whichever thread or partition makes it, so a stream can be split over threads (see
//! [`Generator::partition`]) and still be one stream. Generation allocates only the
//! events' own strings.
//!
//! ```
//! use strom_nexmark::generator::{Generator, GeneratorConfig, NexmarkGenerator};
//! use strom_nexmark::Event;
//!
//! let generator = Generator::Standard(NexmarkGenerator::new(GeneratorConfig::default()));
//! let events: Vec<Event> = generator.events(0..50).collect();
//! assert_eq!(events.iter().filter(|e| e.as_bid().is_some()).count(), 46);
//! assert_eq!(events, generator.events(0..50).collect::<Vec<_>>()); // deterministic
//! ```

mod flink;
mod rng;
mod standard;

use std::sync::{Arc, OnceLock};

pub use flink::{FlinkBidGenerator, FlinkBidsConfig};
pub use standard::{EventKind, GeneratorConfig, NexmarkGenerator, ID_LEAD};

use crate::model::Event;
use rng::Rng;

/// The first auction id (ids before it are never used, as in Nexmark).
pub const FIRST_AUCTION_ID: u64 = 1000;
/// The first person id.
pub const FIRST_PERSON_ID: u64 = 1000;
/// The first category id.
pub const FIRST_CATEGORY_ID: u64 = 10;
/// 2024-01-01T00:00:00Z in ms: event 0's time in both generators (the Flink script's).
pub const NEXMARK_EPOCH_MS: i64 = 1_704_067_200_000;

/// Channels besides the four hot ones (`channel-0` … `channel-9999`).
const CHANNELS: usize = 10_000;

/// Either generator, behind one interface.
#[derive(Debug, Clone)]
pub enum Generator {
    /// The standard Nexmark model.
    Standard(NexmarkGenerator),
    /// The Flink script's bid stream.
    FlinkBids(FlinkBidGenerator),
}

impl Generator {
    /// Event number `n`.
    #[inline]
    pub fn event(&self, n: u64) -> Event {
        match self {
            Generator::Standard(g) => g.event(n),
            Generator::FlinkBids(g) => g.event(n),
        }
    }

    /// Events `range.start .. range.end`, in order.
    pub fn events(&self, range: std::ops::Range<u64>) -> Events {
        Events {
            generator: self.clone(),
            next: range.start,
            end: range.end,
            step: 1,
        }
    }

    /// The events of partition `index` of `count` among the first `total`: numbers
    /// `index, index + count, …` (how Flink's sequence source splits its range over
    /// subtasks). Each partition is in order; together they are the whole stream.
    pub fn partition(&self, index: u64, count: u64, total: u64) -> Events {
        Events {
            generator: self.clone(),
            next: index,
            end: total,
            step: count.max(1),
        }
    }
}

/// An iterator over generated events (see [`Generator::events`]).
#[derive(Debug, Clone)]
pub struct Events {
    generator: Generator,
    next: u64,
    end: u64,
    step: u64,
}

impl Iterator for Events {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        if self.next >= self.end {
            return None;
        }
        let e = self.generator.event(self.next);
        self.next = self.next.saturating_add(self.step);
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.next >= self.end {
            0
        } else {
            ((self.end - self.next).div_ceil(self.step)) as usize
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Events {}

/// Channel names and URLs, made once: four hot channels and [`CHANNELS`] others. URLs
/// have three directory levels (Nexmark's q22 splits them).
#[derive(Debug)]
pub(crate) struct ChannelTable {
    hot: Vec<(&'static str, String)>,
    other: Vec<(String, String)>,
}

impl ChannelTable {
    fn build() -> Self {
        let mut rng = Rng::seeded(0x006e_6578_6d61_726b);
        let url = |rng: &mut Rng, channel_id: Option<usize>| {
            let mut u = String::with_capacity(80);
            u.push_str("https://www.nexmark.com/");
            for _ in 0..3 {
                push_letters(rng, &mut u, 5);
                u.push('/');
            }
            u.push_str("item.htm?query=1");
            if let Some(id) = channel_id {
                u.push_str("&channel_id=");
                push_decimal(&mut u, id as u64);
            }
            u
        };
        let hot = ["Google", "Facebook", "Baidu", "Apple"]
            .into_iter()
            .map(|c| (c, url(&mut rng, None)))
            .collect();
        let other = (0..CHANNELS)
            .map(|i| {
                let mut name = String::from("channel-");
                push_decimal(&mut name, i as u64);
                (name, url(&mut rng, Some(i)))
            })
            .collect();
        ChannelTable { hot, other }
    }

    fn hot(&self, i: usize) -> (&str, &str) {
        let (c, u) = &self.hot[i % self.hot.len()];
        (c, u)
    }

    fn other(&self, i: usize) -> (&str, &str) {
        let (c, u) = &self.other[i % self.other.len()];
        (c, u)
    }
}

/// The process-wide channel table.
pub(crate) fn channel_table() -> Arc<ChannelTable> {
    static TABLE: OnceLock<Arc<ChannelTable>> = OnceLock::new();
    TABLE
        .get_or_init(|| Arc::new(ChannelTable::build()))
        .clone()
}

/// Appends exactly `len` random lowercase letters.
#[inline]
pub(crate) fn push_letters(rng: &mut Rng, out: &mut String, len: usize) {
    rng.push_chars(out, len, b"abcdefghijklmnopqrstuvwxyz");
}

/// Nexmark's `nextString(max)`: 3 to `max − 1` characters, each a space with
/// probability 1/13, else a lowercase letter; trimmed.
pub(crate) fn push_nexmark_string(rng: &mut Rng, out: &mut String, max: u64) {
    let start = out.len();
    let len = 3 + rng.below(max.saturating_sub(3).max(1));
    for _ in 0..len {
        if rng.below(13) == 0 {
            out.push(' ');
        } else {
            out.push((b'a' + rng.below(26) as u8) as char);
        }
    }
    // Trim both ends of what was appended.
    let trimmed_end = out[start..].trim_end().len();
    out.truncate(start + trimmed_end);
    let lead = out[start..].len() - out[start..].trim_start().len();
    if lead > 0 {
        out.replace_range(start..start + lead, "");
    }
}

/// Appends `n` in decimal without going through `format!`.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

#[cfg(test)]
mod tests;
