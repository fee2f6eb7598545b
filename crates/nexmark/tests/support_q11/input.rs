//! Seeded test inputs for q11–q22: a small Nexmark-shaped event stream whose knobs
//! (time span, disorder, pool sizes, price and URL shapes) make the cases each query
//! must get right happen often — sessions that merge, days that roll over with records
//! out of order across midnight, repeated (bidder, auction) pairs, equal prices, bids
//! before their auction, URLs with fewer than three directories.

use strom_nexmark::{Auction, Bid, Event, Person};

/// splitmix64: small, seeded, good enough to shape test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The URL shapes a bid may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urls {
    /// Nexmark's: `https://www.nexmark.com/xxxxx/yyyyy/zzzzz/item.htm?query=1`.
    Standard,
    /// One in four from a list of edge cases (fewer than three directories, empty
    /// pieces, an empty URL), the others standard.
    WithEdgeCases,
}

/// The knobs of [`events`].
#[derive(Debug, Clone)]
pub struct Shape {
    /// Seed of every draw.
    pub seed: u64,
    /// Number of events.
    pub events: usize,
    /// Time of the first event (ms since the epoch).
    pub start_ms: i64,
    /// Event time advances by a uniform draw in this range (ms) from one event to the next.
    pub step_ms: (i64, i64),
    /// Arrival may lag behind event time by up to this much (ms): the stream is at most
    /// this out of order.
    pub disorder_ms: i64,
    /// Recent people that bid and sell (the pool bidders are drawn from).
    pub active_people: i64,
    /// Recent auctions that bids go to.
    pub active_auctions: i64,
    /// Prices come from `{1, 2, …, 12} × 10^k` instead of Nexmark's continuous
    /// log-uniform draw, so that equal prices are common.
    pub coarse_prices: bool,
    /// URL shapes.
    pub urls: Urls,
    /// One auction in this many arrives after its first bids (0: never).
    pub late_auction_one_in: u64,
    /// Before one event in this many (0: never), event time jumps ahead: half the time to
    /// a few seconds before the next midnight (so the dense stretch that follows
    /// straddles a day boundary, out of order across it), otherwise 1–10 hours.
    pub jump_one_in: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            seed: 1,
            events: 3_000,
            // 2024-01-01T00:00:00Z.
            start_ms: 1_704_067_200_000,
            step_ms: (0, 1_000),
            disorder_ms: 3_000,
            active_people: 20,
            active_auctions: 12,
            coarse_prices: false,
            urls: Urls::Standard,
            late_auction_one_in: 0,
            jump_one_in: 0,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

const EDGE_URLS: [&str; 8] = [
    "https://www.nexmark.com/only/item.htm",
    "https://www.nexmark.com/a/b",
    "https://www.nexmark.com/",
    "https://www.nexmark.com",
    "https://www.nexmark.com/a//c/item.htm",
    "https://www.nexmark.com/a/b/c/",
    "/relative/x/y/z/w",
    "",
];

fn letters(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

fn price(rng: &mut Rng, coarse: bool) -> i64 {
    if coarse {
        rng.between(1, 12) * 10i64.pow(rng.between(2, 7) as u32)
    } else {
        // Nexmark's: 100 · 10^(6u), u uniform in [0, 1).
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (10f64.powf(u * 6.0) * 100.0).round() as i64
    }
}

/// A stream shaped by `shape`, in arrival order. Event `i` is a person when `i % 50 ==
/// 0`, an auction when `i % 50` is 1–3, a bid otherwise (Nexmark's 1 : 3 : 46).
pub fn events(shape: &Shape) -> Vec<Event> {
    let mut rng = Rng::new(shape.seed);
    let channels: Vec<(String, String)> = (0..40)
        .map(|i| {
            let url = format!(
                "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
                letters(&mut rng, 5),
                letters(&mut rng, 5),
                letters(&mut rng, 5)
            );
            let channel = match HOT_CHANNELS.get(i) {
                Some(hot) => hot.to_string(),
                None => format!("channel-{i}"),
            };
            (channel, url)
        })
        .collect();
    let (mut next_person, mut next_auction) = (1_000i64, 1_000i64);
    let mut t = shape.start_ms;
    // (arrival key, sequence, event): sorted by arrival key, the stream is at most
    // `disorder_ms` out of order (see the module docs of the tests).
    let mut timed: Vec<(i64, usize, Event)> = Vec::with_capacity(shape.events);
    let mut held_auctions: Vec<(usize, Event)> = Vec::new();
    for i in 0..shape.events {
        t += rng.between(shape.step_ms.0, shape.step_ms.1);
        if shape.jump_one_in > 0 && rng.one_in(shape.jump_one_in) {
            t = if rng.one_in(2) {
                let next_midnight = (t / DAY_MS + 1) * DAY_MS;
                t.max(next_midnight - rng.between(0, 5_000))
            } else {
                t + rng.between(3_600_000, 36_000_000)
            };
        }
        let person_low = (next_person - shape.active_people).max(1_000);
        let event = match i % 50 {
            0 => {
                let id = next_person;
                next_person += 1;
                Event::Person(Person {
                    id,
                    name: format!("person {id}"),
                    email_address: format!("p{id}@nexmark.com"),
                    credit_card: "1234 5678 9012 3456".into(),
                    city: "Phoenix".into(),
                    state: "AZ".into(),
                    date_time: t,
                    extra: letters(&mut rng, 8),
                })
            }
            1..=3 => {
                let id = next_auction;
                next_auction += 1;
                Event::Auction(Auction {
                    id,
                    item_name: letters(&mut rng, 6),
                    description: letters(&mut rng, 12),
                    initial_bid: price(&mut rng, false),
                    reserve: price(&mut rng, false),
                    date_time: t,
                    expires: t + rng.between(10_000, 600_000),
                    seller: rng.between(person_low, next_person.max(1_001) - 1),
                    category: rng.between(10, 14),
                    extra: letters(&mut rng, 10),
                })
            }
            _ => {
                let auction_low = (next_auction - shape.active_auctions).max(1_000);
                let auction = if rng.one_in(2) {
                    // The hot auction: the newest.
                    next_auction.max(1_001) - 1
                } else {
                    rng.between(auction_low, next_auction.max(1_001) - 1)
                };
                let bidder = if rng.one_in(3) {
                    person_low
                } else {
                    rng.between(person_low, next_person.max(1_001) - 1)
                };
                let (channel, mut url) =
                    channels[rng.below(channels.len() as u64) as usize].clone();
                if shape.urls == Urls::WithEdgeCases && rng.one_in(4) {
                    url = EDGE_URLS[rng.below(EDGE_URLS.len() as u64) as usize].to_string();
                }
                Event::Bid(Bid {
                    auction,
                    bidder,
                    price: price(&mut rng, shape.coarse_prices),
                    channel,
                    url,
                    date_time: t,
                    extra: {
                        let len = rng.below(20) as usize;
                        letters(&mut rng, len)
                    },
                })
            }
        };
        if let Event::Auction(_) = &event {
            if shape.late_auction_one_in > 0 && rng.one_in(shape.late_auction_one_in) {
                // Held back: it arrives after the bids of the next few events.
                held_auctions.push((i + rng.between(5, 60) as usize, event));
                continue;
            }
        }
        let delay = rng.between(0, shape.disorder_ms);
        timed.push((t + delay, i, event));
        held_auctions.retain(|(release, auction)| {
            if *release <= i {
                // Its own time is older: it arrives after newer events, which only the
                // unbounded join (q20) takes without calling it late.
                timed.push((t + delay, i, auction.clone()));
                false
            } else {
                true
            }
        });
    }
    for (_, auction) in held_auctions {
        timed.push((t + shape.disorder_ms + 1, shape.events, auction));
    }
    timed.sort_by_key(|(arrival, seq, _)| (*arrival, *seq));
    timed.into_iter().map(|(_, _, e)| e).collect()
}

/// A bid by a bidder nobody else uses, at `at`: piped last, it moves stream time past
/// every window and day the test's input opened, so they all close.
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
