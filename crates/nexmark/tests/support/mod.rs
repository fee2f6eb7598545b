//! Test support for the query tests: a small seeded Nexmark-like event builder with a
//! bounded out-of-order delay, a neutral tail that closes every window and auction, and
//! a runner that pipes events through the test driver and reads a query's output.
#![allow(dead_code)]

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_nexmark::model::{Auction, Bid, Event, EventSerde, Person};
use strom_nexmark::queries::QueryTopics;
use strom_streams::prelude::{
    DriverConfig, ErrorHandler, JsonSerde, Serde, StreamsBuilder, StreamsError, TopologyTestDriver,
    UnitSerde,
};

/// 2024-01-01T00:00:00Z, where the generated event time starts.
pub const BASE_TIME_MS: i64 = 1_704_067_200_000;

/// The tail's bids go to auction ids at or below this one: no auction has them. They
/// differ so that the bids spread over partitions (and move every task's clock).
pub const NO_AUCTION: i64 = -1_000_000;

/// splitmix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: [&str; 6] = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky"];
const LAST: [&str; 6] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton"];
const CITIES: [&str; 5] = ["Phoenix", "Los Angeles", "Boise", "Portland", "Seattle"];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];

/// What [`generate`] makes.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    /// Events before the tail.
    pub events: usize,
    /// Event time advances by 0..=gap_ms_max between events (0: equal times, ties).
    pub gap_ms_max: u64,
    /// Each event arrives up to this much after its time (stable order otherwise): the
    /// bound on how far behind stream time an event can be.
    pub delay_ms_max: u64,
    /// Auctions last 1..=2·horizon ms.
    pub auction_horizon_ms: u64,
    /// Sellers (a third of them hot, as in Nexmark) and bid targets come from the last
    /// this many persons/auctions, plus a few ids not created yet, as Nexmark's do.
    pub active: i64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 18,
            events: 3_000,
            gap_ms_max: 40,
            delay_ms_max: 2_000,
            auction_horizon_ms: 12_000,
            active: 12,
        }
    }
}

/// Events in arrival order: persons, auctions and bids in Nexmark's 1 : 3 : 46 mix,
/// event time starting at [`BASE_TIME_MS`], arrival shuffled within `delay_ms_max`.
/// Bids include some at exactly each 10 s boundary with the price of the window just
/// ended, and some equal to the running maximum (ties), so that the window queries'
/// edge cases occur.
pub fn generate(cfg: &GenConfig) -> Vec<Event> {
    let mut rng = Rng::new(cfg.seed);
    let (mut next_person, mut next_auction) = (1000i64, 1000i64);
    let mut t = BASE_TIME_MS;
    let mut events: Vec<Event> = Vec::with_capacity(cfg.events + cfg.events / 10);
    let mut window_max = 0i64;
    let mut window = t / 10_000;
    let bid = |rng: &mut Rng, auction: i64, price: i64, t: i64| -> Event {
        Event::Bid(Bid {
            auction,
            bidder: 1000 + rng.below(50) as i64,
            price,
            channel: rng
                .pick(&["Google", "Facebook", "Baidu", "Apple"])
                .to_string(),
            url: format!(
                "https://www.nexmark.com/item.htm?query=1&id={}",
                rng.below(100)
            ),
            date_time: t,
            extra: String::new(),
        })
    };
    for n in 0..cfg.events {
        t += rng.below(cfg.gap_ms_max + 1) as i64;
        if t / 10_000 != window {
            // The window just ended: a bid at exactly the boundary with its maximum
            // (q7's BETWEEN includes it in both windows).
            window = t / 10_000;
            if window_max > 0 {
                let auction = next_auction - 1 - rng.below(3) as i64;
                events.push(bid(&mut rng, auction, window_max, window * 10_000));
            }
            window_max = 0;
        }
        let kind = n % 50;
        if kind == 0 {
            let id = next_person;
            next_person += 1;
            events.push(Event::Person(Person {
                id,
                name: format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST)),
                email_address: format!("user{id}@example.com"),
                credit_card: format!(
                    "{:04} 0000 0000 {:04}",
                    rng.below(10_000),
                    rng.below(10_000)
                ),
                city: rng.pick(&CITIES).to_string(),
                state: rng.pick(&STATES).to_string(),
                date_time: t,
                extra: String::new(),
            }));
        } else if kind <= 3 {
            let id = next_auction;
            next_auction += 1;
            let first = (next_person - cfg.active).max(1000);
            let seller = if rng.below(3) == 0 {
                // A hot seller, as Nexmark's: the first of each group of 20 persons.
                1000 + (next_person - 1 - 1000).max(0) / 20 * 20
            } else {
                first + rng.below((next_person - first + 3) as u64) as i64
            };
            let initial_bid = 100 * (1 + rng.below(20) as i64);
            events.push(Event::Auction(Auction {
                id,
                item_name: format!("item-{id}"),
                description: "an item".into(),
                initial_bid,
                reserve: initial_bid + 100 * rng.below(10) as i64,
                date_time: t,
                expires: t + 1 + rng.below(2 * cfg.auction_horizon_ms) as i64,
                seller,
                category: 10 + rng.below(5) as i64,
                extra: String::new(),
            }));
        } else {
            let first = (next_auction - cfg.active).max(1000);
            let auction = first + rng.below((next_auction - first + 3) as u64) as i64;
            // Log-uniform like Nexmark's prices, coarsened so equal prices happen.
            let price = if window_max > 0 && rng.below(40) == 0 {
                window_max
            } else {
                let exp = rng.below(1_000) as f64 / 1_000.0 * 4.0;
                (10f64.powf(exp) as i64 / 10 + 1) * 100
            };
            window_max = window_max.max(price);
            events.push(bid(&mut rng, auction, price, t));
        }
    }
    // Arrival order: each event up to delay_ms_max late, otherwise in order.
    let mut keyed: Vec<(i64, usize, Event)> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e.date_time() + rng.below(cfg.delay_ms_max + 1) as i64, i, e))
        .collect();
    keyed.sort_by_key(|(k, i, _)| (*k, *i));
    keyed.into_iter().map(|(_, _, e)| e).collect()
}

/// The first event time of [`tail`]: every window ending at or before it holds only
/// real events.
pub fn tail_start(events: &[Event]) -> i64 {
    events
        .iter()
        .map(Event::date_time)
        .max()
        .unwrap_or(BASE_TIME_MS)
        + 1
}

/// A neutral tail that moves stream time on every path so that all windows and auctions
/// of `events` close: one second steps for a minute (a person, an auction and a bid
/// each, with negative ids, category -1 and price 0 on auctions that do not exist),
/// then a few steps past the last auction's expiry.
pub fn tail(events: &[Event]) -> Vec<Event> {
    let start = tail_start(events);
    let last_expiry = events
        .iter()
        .filter_map(Event::as_auction)
        .map(|a| a.expires)
        .max()
        .unwrap_or(start);
    let mut times: Vec<i64> = (0..=60).map(|i| start + i * 1_000).collect();
    let far = last_expiry.max(start + 60_000) + 10_000;
    times.extend((0..5).map(|i| far + i * 1_000));
    let mut out = Vec::new();
    for (i, t) in times.into_iter().enumerate() {
        let id = -1 - i as i64;
        out.push(Event::Person(Person {
            id,
            name: "tail".into(),
            email_address: String::new(),
            credit_card: String::new(),
            city: "Nowhere".into(),
            state: "XX".into(),
            date_time: t,
            extra: String::new(),
        }));
        out.push(Event::Auction(Auction {
            id,
            item_name: "tail".into(),
            description: String::new(),
            initial_bid: 0,
            reserve: 0,
            date_time: t,
            expires: t,
            seller: id,
            category: -1,
            extra: String::new(),
        }));
        out.push(Event::Bid(Bid {
            auction: NO_AUCTION - i as i64,
            bidder: id,
            price: 0,
            channel: String::new(),
            url: String::new(),
            date_time: t,
            extra: String::new(),
        }));
    }
    out
}

/// Builds a query's topology with the default topics.
pub fn driver(
    build: fn(&StreamsBuilder, &QueryTopics) -> Result<(), StreamsError>,
) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    build(&builder, &QueryTopics::default()).expect("build the query");
    let topology = builder.build().expect("a valid topology");
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter {
            topic: DEAD_LETTERS.into(),
        },
        ..DriverConfig::default()
    };
    TopologyTestDriver::with_config(&topology, config).expect("driver")
}

/// Where late records go in these tests.
pub const DEAD_LETTERS: &str = "nexmark-dead-letters";

/// Pipes events, each with its own time as the record timestamp.
pub fn pipe(driver: &mut TopologyTestDriver, events: &[Event]) {
    let topic = QueryTopics::default().input;
    for e in events {
        driver
            .pipe(
                &topic,
                &UnitSerde,
                &EventSerde::new(),
                &(),
                e,
                e.date_time(),
            )
            .expect("pipe an event");
    }
}

/// The query's output records so far: (key, value, timestamp).
pub fn output<K, V>(driver: &mut TopologyTestDriver, key: &impl Serde<K>) -> Vec<(K, V, i64)>
where
    V: Serialize + DeserializeOwned + 'static,
{
    let topic = QueryTopics::default().output;
    driver
        .read_output(&topic, key, &JsonSerde::<V>::new())
        .expect("read the output")
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp_ms))
        .collect()
}

/// Runs `events` and then the tail through a query; returns its whole output.
pub fn run<K, V>(
    build: fn(&StreamsBuilder, &QueryTopics) -> Result<(), StreamsError>,
    events: &[Event],
    key: &impl Serde<K>,
) -> Vec<(K, V, i64)>
where
    V: Serialize + DeserializeOwned + 'static,
{
    let mut d = driver(build);
    pipe(&mut d, events);
    pipe(&mut d, &tail(events));
    output(&mut d, key)
}

/// How many records went to the dead-letter topic.
pub fn dead_letters(driver: &mut TopologyTestDriver) -> usize {
    driver.read_raw(DEAD_LETTERS).len()
}

/// The largest lateness in `events` (arrival behind the running maximum time).
pub fn max_lateness_ms(events: &[Event]) -> i64 {
    let mut st = i64::MIN;
    let mut worst = 0;
    for e in events {
        st = st.max(e.date_time());
        worst = worst.max(st - e.date_time());
    }
    worst
}
