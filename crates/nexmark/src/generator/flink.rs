//! The bid stream of the Flink peer script (`bench-peers/flink/nexmark_flink.py`):
//! the same formulas, so strom and Flink see the same data.
//!
//! For bid `seq` (0, 1, …), with uniform draws `r_auction ∈ 0..=199`,
//! `r_bidder ∈ 0..=99,999`, `r_price ∈ [0, 1)`, `r_channel ∈ 0..=3`:
//!
//! | field | formula |
//! | --- | --- |
//! | `auction` | `1000 + seq·3/46 − (0 if r_auction < 100 else r_auction − 100)` (integer division): half the bids on the newest (hot) auction, the others over the 100 before it |
//! | `bidder` | `1000 + r_bidder` |
//! | `price` | `round(10^(6·r_price) · 100)` |
//! | `channel` | `Google`, `Facebook`, `Baidu`, `Apple` by `r_channel` |
//! | `url` | `https://www.nexmark.com/item.htm?query=1&channel_id=<r_channel>` |
//! | `extra` | 16 random hexadecimal digits (Flink's datagen strings) |
//! | `date_time` | `2024-01-01T00:00:00Z + seq·1000/R` ms (integer division), R bids per second of event time |
//!
//! Flink's datagen draws its own random values, so the two engines see the same
//! formulas, distributions, sequence, auction and time structure, not the same draws.
//! The stream is in order; the script's watermark lags 4 s behind.

use super::rng::Rng;
use super::standard::next_price;
use super::NEXMARK_EPOCH_MS;
use crate::model::{Bid, Event};

/// The channels of the script, by `r_channel`.
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Their URLs (`CONCAT('https://www.nexmark.com/item.htm?query=1&channel_id=', r_channel)`).
const URLS: [&str; 4] = [
    "https://www.nexmark.com/item.htm?query=1&channel_id=0",
    "https://www.nexmark.com/item.htm?query=1&channel_id=1",
    "https://www.nexmark.com/item.htm?query=1&channel_id=2",
    "https://www.nexmark.com/item.htm?query=1&channel_id=3",
];

/// Parameters of the Flink-script bid stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkBidsConfig {
    /// Seed of the random draws.
    pub seed: u64,
    /// Bids per second of event time (the script's `--event-rate`, default 100,000).
    pub events_per_second: u64,
    /// Event time of bid 0 (default 2024-01-01T00:00:00Z, as the script).
    pub base_time_ms: i64,
}

impl Default for FlinkBidsConfig {
    fn default() -> Self {
        FlinkBidsConfig {
            seed: 0,
            events_per_second: 100_000,
            base_time_ms: NEXMARK_EPOCH_MS,
        }
    }
}

/// The Flink script's bid stream: a pure function from `seq` to a bid.
#[derive(Debug, Clone)]
pub struct FlinkBidGenerator {
    config: FlinkBidsConfig,
}

impl FlinkBidGenerator {
    /// A generator (a zero rate is raised to 1).
    pub fn new(mut config: FlinkBidsConfig) -> Self {
        config.events_per_second = config.events_per_second.max(1);
        FlinkBidGenerator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &FlinkBidsConfig {
        &self.config
    }

    /// The event time of bid `seq`: `base + seq·1000/R`.
    pub fn timestamp_ms(&self, seq: u64) -> i64 {
        self.config.base_time_ms
            + ((seq as u128 * 1000) / self.config.events_per_second as u128) as i64
    }

    /// The newest auction at `seq`: `1000 + seq·3/46`, the hot one.
    pub fn hot_auction(seq: u64) -> i64 {
        1000 + (seq as i64 * 3) / 46
    }

    /// Bid `seq`.
    pub fn bid(&self, seq: u64) -> Bid {
        let mut rng = Rng::for_event(self.config.seed, seq);
        let r_auction = rng.below(200) as i64;
        let r_bidder = rng.below(100_000) as i64;
        let price = next_price(&mut rng);
        let r_channel = rng.below(4) as usize;
        let mut extra = String::with_capacity(16);
        rng.push_chars(&mut extra, 16, b"0123456789abcdef");
        let back = if r_auction < 100 { 0 } else { r_auction - 100 };
        Bid {
            auction: Self::hot_auction(seq) - back,
            bidder: 1000 + r_bidder,
            price,
            channel: CHANNELS[r_channel].to_string(),
            url: URLS[r_channel].to_string(),
            date_time: self.timestamp_ms(seq),
            extra,
        }
    }

    /// Bid `seq` as an event.
    pub fn event(&self, seq: u64) -> Event {
        Event::Bid(self.bid(seq))
    }
}
