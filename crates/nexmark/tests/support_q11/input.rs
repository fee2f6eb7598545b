//! Test inputs for q11–q22: the standard Nexmark generator's events, and a few pure,
//! documented transforms that make the cases each query must get right common in a few
//! thousand events — days that roll over with records out of order across midnight,
//! round prices (ties, and the rank bounds hit exactly), URLs with fewer than three
//! directories.

use strom_nexmark::generator::{Generator, GeneratorConfig, NexmarkGenerator};
use strom_nexmark::{Bid, Event};

/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z: the generator's default base time.
pub const JAN_1: i64 = 1_704_067_200_000;

/// The first `n` events of the standard generator with `config`, in stream order.
pub fn generated(config: GeneratorConfig, n: u64) -> Vec<Event> {
    Generator::Standard(NexmarkGenerator::new(config))
        .events(0..n)
        .collect()
}

/// Applies `warp` to an event's time (an auction's `expires` moves with it).
fn warp_event(event: &mut Event, warp: impl Fn(i64) -> i64) {
    match event {
        Event::Person(p) => p.date_time = warp(p.date_time),
        Event::Auction(a) => {
            let t = warp(a.date_time);
            a.expires += t - a.date_time;
            a.date_time = t;
        }
        Event::Bid(b) => b.date_time = warp(b.date_time),
    }
}

/// Several days of bursts across midnight: the generator at 1,000 events per second
/// (event `id` at `JAN_1 + id` ms), shuffled within groups of 300, its time cut into
/// blocks of 600 ms; block `d` is slowed 10× and placed so that it straddles the `d`-th
/// midnight after January 1st (3 s before to 3 s after). The warp is monotone within a
/// block and groups never span blocks, so the stream stays at most 2.99 s out of order —
/// across each midnight, inside the queries' 4 s grace. 4,000 events: 7 days.
pub fn midnight_bursts(seed: u64, n: u64) -> Vec<Event> {
    const BLOCK_MS: i64 = 600;
    const SLOW: i64 = 10;
    let config = GeneratorConfig {
        seed,
        events_per_second: 1_000,
        out_of_order_group_size: 300,
        ..GeneratorConfig::default()
    };
    let mut events = generated(config, n);
    for e in &mut events {
        warp_event(e, |t| {
            let (day, within) = ((t - JAN_1) / BLOCK_MS, (t - JAN_1) % BLOCK_MS);
            JAN_1 + DAY_MS - BLOCK_MS * SLOW / 2 + day * DAY_MS + within * SLOW
        });
    }
    events
}

/// Stretches event time by `factor` from the first event's time (order unchanged).
pub fn stretched(mut events: Vec<Event>, factor: i64) -> Vec<Event> {
    let origin = events.first().map(Event::date_time).unwrap_or(JAN_1);
    for e in &mut events {
        warp_event(e, |t| origin + (t - origin) * factor);
    }
    events
}

/// Every bid's price rounded to its leading digit (`1,234,567` → `1,000,000`): equal
/// prices become common, and the rank bounds 10,000 and 1,000,000 occur exactly.
pub fn round_prices(mut events: Vec<Event>) -> Vec<Event> {
    for e in &mut events {
        if let Event::Bid(b) = e {
            let mut magnitude = 1;
            while b.price / magnitude >= 10 {
                magnitude *= 10;
            }
            b.price = b.price / magnitude * magnitude;
        }
    }
    events
}

/// URLs the generator never makes: fewer than three directories, empty pieces, none.
pub const EDGE_URLS: [&str; 8] = [
    "https://www.nexmark.com/only/item.htm",
    "https://www.nexmark.com/a/b",
    "https://www.nexmark.com/",
    "https://www.nexmark.com",
    "https://www.nexmark.com/a//c/item.htm",
    "https://www.nexmark.com/a/b/c/",
    "/relative/x/y/z/w",
    "",
];

/// Every fourth bid's URL replaced by one of [`EDGE_URLS`], in turn.
pub fn with_edge_urls(mut events: Vec<Event>) -> Vec<Event> {
    let mut bids = 0usize;
    for e in &mut events {
        if let Event::Bid(b) = e {
            if bids.is_multiple_of(4) {
                b.url = EDGE_URLS[(bids / 4) % EDGE_URLS.len()].to_string();
            }
            bids += 1;
        }
    }
    events
}

/// splitmix64, for the test's own choices (wall-clock pauses).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n.max(1))
    }
}

/// A bid by a bidder and on an auction nobody else uses, at `at`: piped last, it moves
/// stream time past every window and day the input opened, so they all close.
pub fn flush_bid(at: i64) -> Event {
    Event::Bid(Bid {
        auction: 1,
        bidder: 1,
        price: 1,
        channel: "flush".into(),
        url: String::new(),
        date_time: at,
        extra: String::new(),
    })
}

/// A bid with the given fields and defaults for the rest (hand-written cases).
pub fn bid(auction: i64, bidder: i64, price: i64, date_time: i64) -> Bid {
    Bid {
        auction,
        bidder,
        price,
        channel: "Google".into(),
        url: "https://www.nexmark.com/a/b/c/item.htm?query=1".into(),
        date_time,
        extra: String::new(),
    }
}

/// The largest event time of `events`.
pub fn max_time(events: &[Event]) -> i64 {
    events.iter().map(Event::date_time).max().unwrap_or(0)
}

/// The bids of `events`, in arrival order.
pub fn bids_of(events: &[Event]) -> Vec<Bid> {
    events.iter().filter_map(|e| e.as_bid().cloned()).collect()
}
