//! The standard Nexmark generator: people, auctions and bids in the proportions,
//! with the hot auctions, sellers and bidders, id ranges and sizes of the Beam and Flink
//! Nexmark generators (`GeneratorConfig`, `PersonGenerator`, `AuctionGenerator`,
//! `BidGenerator`), re-derived here rather than translated.
//!
//! Invariants:
//! - event `n` depends only on the configuration and `n` (its random draws come from a
//!   generator seeded with `(seed, event id)`), so any split of the numbers over threads
//!   or partitions yields the same events;
//! - a bid's auction and bidder, and an auction's seller, are ids of auctions and people
//!   generated at or before that event, or at most [`ID_LEAD`] ahead of the last one (as
//!   in Nexmark, where a few references arrive before the entity they name);
//! - every event's time is at least the watermark of any earlier event
//!   ([`NexmarkGenerator::watermark_ms`]): the stream is out of order only within an
//!   out-of-order group.

use super::rng::Rng;
use super::{
    channel_table, push_letters, push_nexmark_string, ChannelTable, FIRST_AUCTION_ID,
    FIRST_CATEGORY_ID, FIRST_PERSON_ID, NEXMARK_EPOCH_MS,
};
use crate::model::{Auction, Bid, Event, Person};
use std::sync::Arc;

/// Yet-to-be-created people and auctions a reference may name (Nexmark's
/// `PERSON_ID_LEAD`/`AUCTION_ID_LEAD`).
pub const ID_LEAD: u64 = 10;

/// Hot auctions, sellers and bidders are the first (second, for bidders) of each batch of
/// this many ids.
const HOT_BATCH: u64 = 100;

/// Item categories are `FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + NUM_CATEGORIES`.
const NUM_CATEGORIES: u64 = 5;

/// One bid in this many goes through one of the four hot channels.
const HOT_CHANNELS_RATIO: u64 = 2;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// The parameters of the standard generator; the defaults are Nexmark's.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Event time of event 0, ms since the epoch (default 2024-01-01T00:00:00Z).
    pub base_time_ms: i64,
    /// Events per second of event time (Nexmark's `firstEventRate`, default 10,000,000).
    pub events_per_second: u64,
    /// People per `person + auction + bid` events (default 1).
    pub person_proportion: u64,
    /// Auctions per `person + auction + bid` events (default 3).
    pub auction_proportion: u64,
    /// Bids per `person + auction + bid` events (default 46).
    pub bid_proportion: u64,
    /// Average person size in bytes, reached by padding `extra` (default 200).
    pub avg_person_bytes: usize,
    /// Average auction size in bytes (default 500).
    pub avg_auction_bytes: usize,
    /// Average bid size in bytes (default 100).
    pub avg_bid_bytes: usize,
    /// A bid is for the hot auction with probability `1 − 1/ratio` (default 2: half).
    pub hot_auction_ratio: u64,
    /// An auction is by the hot seller with probability `1 − 1/ratio` (default 4).
    pub hot_sellers_ratio: u64,
    /// A bid is by the hot bidder with probability `1 − 1/ratio` (default 4).
    pub hot_bidders_ratio: u64,
    /// Auctions in flight at any time: bids and auction lengths follow it (default 100).
    pub num_in_flight_auctions: u64,
    /// People that sell and bid: the most recent ones (default 1,000).
    pub num_active_people: u64,
    /// Events are shuffled within groups of this many (default 1: in order).
    pub out_of_order_group_size: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            base_time_ms: NEXMARK_EPOCH_MS,
            events_per_second: 10_000_000,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_in_flight_auctions: 100,
            num_active_people: 1000,
            out_of_order_group_size: 1,
        }
    }
}

/// What kind of event an event id makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new person.
    Person,
    /// A new auction.
    Auction,
    /// A bid.
    Bid,
}

/// The standard Nexmark generator: a pure function from event number to [`Event`].
#[derive(Debug, Clone)]
pub struct NexmarkGenerator {
    config: GeneratorConfig,
    total_proportion: u64,
    channels: Arc<ChannelTable>,
}

impl NexmarkGenerator {
    /// A generator; zero proportions, ratios or rates are raised to 1 so every formula
    /// stays defined.
    pub fn new(mut config: GeneratorConfig) -> Self {
        for v in [
            &mut config.events_per_second,
            &mut config.hot_auction_ratio,
            &mut config.hot_sellers_ratio,
            &mut config.hot_bidders_ratio,
            &mut config.num_active_people,
            &mut config.out_of_order_group_size,
            &mut config.person_proportion,
            &mut config.auction_proportion,
        ] {
            *v = (*v).max(1);
        }
        let total_proportion =
            config.person_proportion + config.auction_proportion + config.bid_proportion;
        let channels = channel_table();
        NexmarkGenerator {
            config,
            total_proportion,
            channels,
        }
    }

    /// The configuration (after the raises of [`NexmarkGenerator::new`]).
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The event id of event number `n`: `n` shuffled within its out-of-order group
    /// (a permutation of the group when the group size is prime to 953, as Nexmark's).
    pub fn event_id(&self, n: u64) -> u64 {
        let g = self.config.out_of_order_group_size;
        (n / g) * g + (n.wrapping_mul(953)) % g
    }

    /// The kind of event id `id` makes.
    pub fn kind_of_id(&self, id: u64) -> EventKind {
        let rem = id % self.total_proportion;
        if rem < self.config.person_proportion {
            EventKind::Person
        } else if rem < self.config.person_proportion + self.config.auction_proportion {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// The event time of the event with id `id` (ids are event numbers shuffled within
    /// their group, so the time follows the id).
    pub fn timestamp_ms(&self, id: u64) -> i64 {
        let offset_ms = (id as u128 * 1000) / self.config.events_per_second as u128;
        self.config.base_time_ms + offset_ms as i64
    }

    /// A lower bound of the event time of event `n` and of every later event: the time
    /// of the first id of its out-of-order group.
    pub fn watermark_ms(&self, n: u64) -> i64 {
        let g = self.config.out_of_order_group_size;
        self.timestamp_ms((n / g) * g)
    }

    /// Event number `n` of the stream.
    pub fn event(&self, n: u64) -> Event {
        let id = self.event_id(n);
        let ts = self.timestamp_ms(id);
        let mut rng = Rng::for_event(self.config.seed, id);
        match self.kind_of_id(id) {
            EventKind::Person => Event::Person(self.person(id, ts, &mut rng)),
            EventKind::Auction => Event::Auction(self.auction(id, ts, &mut rng)),
            EventKind::Bid => Event::Bid(self.bid(id, ts, &mut rng)),
        }
    }

    /// The last person id (base 0) created at or before event id `id`.
    pub fn last_base0_person_id(&self, id: u64) -> u64 {
        let c = &self.config;
        let epoch = id / self.total_proportion;
        let offset = (id % self.total_proportion).min(c.person_proportion - 1);
        epoch * c.person_proportion + offset
    }

    /// The last auction id (base 0) created at or before event id `id` (0 before any).
    pub fn last_base0_auction_id(&self, id: u64) -> u64 {
        let c = &self.config;
        let mut epoch = id / self.total_proportion;
        let mut offset = id % self.total_proportion;
        if offset < c.person_proportion {
            // A person: the last auction is the last one of the previous epoch.
            if epoch == 0 {
                return 0;
            }
            epoch -= 1;
            offset = c.auction_proportion - 1;
        } else if offset >= c.person_proportion + c.auction_proportion {
            // A bid: the last auction of this epoch.
            offset = c.auction_proportion - 1;
        } else {
            offset -= c.person_proportion;
        }
        epoch * c.auction_proportion + offset
    }

    /// A random active person (base 0): one of the last `num_active_people`, or up to
    /// [`ID_LEAD`] not created yet.
    fn next_base0_person_id(&self, id: u64, rng: &mut Rng) -> u64 {
        let people = self.last_base0_person_id(id) + 1;
        let active = people.min(self.config.num_active_people);
        people - active + rng.below(active + ID_LEAD)
    }

    /// A random auction in flight (base 0), or up to [`ID_LEAD`] not created yet.
    fn next_base0_auction_id(&self, id: u64, rng: &mut Rng) -> u64 {
        let max = self.last_base0_auction_id(id);
        let min = max.saturating_sub(self.config.num_in_flight_auctions);
        min + rng.below(max - min + 1 + ID_LEAD)
    }

    fn person(&self, id: u64, ts: i64, rng: &mut Rng) -> Person {
        let pick =
            |rng: &mut Rng, list: &[&'static str]| list[rng.below(list.len() as u64) as usize];
        let first = pick(rng, &FIRST_NAMES);
        let last = pick(rng, &LAST_NAMES);
        let mut name = String::with_capacity(first.len() + 1 + last.len());
        name.push_str(first);
        name.push(' ');
        name.push_str(last);
        let mut email = String::with_capacity(16);
        push_nexmark_string(rng, &mut email, 7);
        email.push('@');
        push_nexmark_string(rng, &mut email, 5);
        email.push_str(".com");
        let mut credit_card = String::with_capacity(19);
        for i in 0..4 {
            if i > 0 {
                credit_card.push(' ');
            }
            let group = rng.below(10_000);
            for d in [1000, 100, 10, 1] {
                credit_card.push((b'0' + ((group / d) % 10) as u8) as char);
            }
        }
        let city = pick(rng, &US_CITIES);
        let state = pick(rng, &US_STATES);
        let size = 8 + name.len() + email.len() + credit_card.len() + city.len() + state.len();
        Person {
            id: (self.last_base0_person_id(id) + FIRST_PERSON_ID) as i64,
            name,
            email_address: email,
            credit_card,
            city: city.to_string(),
            state: state.to_string(),
            date_time: ts,
            extra: extra(rng, size, self.config.avg_person_bytes),
        }
    }

    fn auction(&self, id: u64, ts: i64, rng: &mut Rng) -> Auction {
        let c = &self.config;
        let seller = if rng.below(c.hot_sellers_ratio) > 0 {
            (self.last_base0_person_id(id) / HOT_BATCH) * HOT_BATCH
        } else {
            self.next_base0_person_id(id, rng)
        };
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES);
        let initial_bid = next_price(rng);
        // Auctions last on average as long as it takes to create `num_in_flight_auctions`
        // more of them, so about that many are open at any time.
        let events_for_auctions =
            c.num_in_flight_auctions * self.total_proportion / c.auction_proportion;
        let horizon_ms = self.timestamp_ms(id + events_for_auctions) - ts;
        let length_ms = 1 + rng.below((horizon_ms * 2).max(1) as u64) as i64;
        let mut item_name = String::with_capacity(20);
        push_nexmark_string(rng, &mut item_name, 20);
        let mut description = String::with_capacity(100);
        push_nexmark_string(rng, &mut description, 100);
        let reserve = initial_bid + next_price(rng);
        let size = 8 + item_name.len() + description.len() + 8 * 5;
        Auction {
            id: (self.last_base0_auction_id(id) + FIRST_AUCTION_ID) as i64,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time: ts,
            expires: ts + length_ms,
            seller: (seller + FIRST_PERSON_ID) as i64,
            category: category as i64,
            extra: extra(rng, size, c.avg_auction_bytes),
        }
    }

    fn bid(&self, id: u64, ts: i64, rng: &mut Rng) -> Bid {
        let c = &self.config;
        let auction = if rng.below(c.hot_auction_ratio) > 0 {
            (self.last_base0_auction_id(id) / HOT_BATCH) * HOT_BATCH
        } else {
            self.next_base0_auction_id(id, rng)
        };
        // The second person of a batch, so hot bidders and hot sellers differ.
        let bidder = if rng.below(c.hot_bidders_ratio) > 0 {
            (self.last_base0_person_id(id) / HOT_BATCH) * HOT_BATCH + 1
        } else {
            self.next_base0_person_id(id, rng)
        };
        let price = next_price(rng);
        let (channel, url) = if rng.below(HOT_CHANNELS_RATIO) > 0 {
            self.channels.hot(rng.below(4) as usize)
        } else {
            self.channels
                .other(rng.below(super::CHANNELS as u64) as usize)
        };
        Bid {
            auction: (auction + FIRST_AUCTION_ID) as i64,
            bidder: (bidder + FIRST_PERSON_ID) as i64,
            price,
            channel: channel.to_string(),
            url: url.to_string(),
            date_time: ts,
            extra: extra(rng, 32, c.avg_bid_bytes),
        }
    }
}

/// Nexmark's log-uniform price: `round(10^(6u) · 100)` cents, 1 $ to 1 M$.
#[inline]
pub(crate) fn next_price(rng: &mut Rng) -> i64 {
    (10f64.powf(rng.next_f64() * 6.0) * 100.0).round() as i64
}

/// Padding so that `current + extra.len()` averages `average` (±20 %, uniform).
fn extra(rng: &mut Rng, current: usize, average: usize) -> String {
    if current > average {
        return String::new();
    }
    let wanted = average - current;
    let delta = (wanted as f64 * 0.2).round() as usize;
    let len = wanted - delta
        + if delta == 0 {
            0
        } else {
            rng.below(2 * delta as u64) as usize
        };
    let mut s = String::with_capacity(len);
    push_letters(rng, &mut s, len);
    s
}
