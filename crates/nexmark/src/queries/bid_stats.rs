//! Per-day bid statistics with distinct counts — the shared engine of q15 (per day) and
//! q16 (per channel and day): bids, distinct bidders and distinct auctions, each in
//! total and per price rank (`< 10,000`, `< 1,000,000`, the rest).
//!
//! The DSL's aggregations keep one accumulator per key and rewrite it on every update,
//! which for a distinct count means rewriting a set of every bidder seen that day. This
//! processor keeps the sets as store entries instead, one per (day, group, bidder or
//! auction), holding a bit per price rank it has been seen in; a bid costs three store
//! reads and at most three writes, whatever the day's size. (Flink does the same with a
//! `MapState` per distinct aggregate.)
//!
//! **Days are windows.** A group's day `[d, d + 1 day)` is open until stream time reaches
//! its end + [`WATERMARK_DELAY_MS`], as a tumbling window with that grace; then its
//! entries are deleted (a stream-time punctuator checks every second), and a bid for it
//! is late: it goes to the dead-letter topic through
//! [`ProcessorContext::report_late`], as it would from the DSL's windows.
//!
//! Invariants:
//! - the counts of an open (group, day) equal what a batch `GROUP BY` over the bids
//!   accepted for it computes; every accepted bid updates them and emits the new row;
//! - a `seen` entry exists exactly for the bidders and auctions counted in its day's
//!   `total_*` column, its bits exactly for the rank columns that count it;
//! - a closed day has no entries in any of the three stores once the punctuator ran.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::common::{day_of, minute_of_day, DAY_MS, WATERMARK_DELAY_MS};
use crate::model::Bid;

/// How often (in ms of stream time) closed days are looked for.
const EXPIRY_INTERVAL_MS: i64 = 1_000;

/// A bid's price rank: 1 below 10,000, 2 below 1,000,000, 3 from 1,000,000 on.
pub fn price_rank(price: i64) -> usize {
    if price < 10_000 {
        1
    } else if price < 1_000_000 {
        2
    } else {
        3
    }
}

/// The twelve counts of q15 and q16.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct BidCounts {
    /// Bids.
    pub total_bids: i64,
    /// Bids of price rank 1 (price < 10,000).
    pub rank1_bids: i64,
    /// Bids of price rank 2 (10,000 ≤ price < 1,000,000).
    pub rank2_bids: i64,
    /// Bids of price rank 3 (price ≥ 1,000,000).
    pub rank3_bids: i64,
    /// Distinct bidders.
    pub total_bidders: i64,
    /// Distinct bidders with a rank-1 bid.
    pub rank1_bidders: i64,
    /// Distinct bidders with a rank-2 bid.
    pub rank2_bidders: i64,
    /// Distinct bidders with a rank-3 bid.
    pub rank3_bidders: i64,
    /// Distinct auctions.
    pub total_auctions: i64,
    /// Distinct auctions with a rank-1 bid.
    pub rank1_auctions: i64,
    /// Distinct auctions with a rank-2 bid.
    pub rank2_auctions: i64,
    /// Distinct auctions with a rank-3 bid.
    pub rank3_auctions: i64,
}

impl BidCounts {
    fn bids_mut(&mut self, rank: usize) -> &mut i64 {
        match rank {
            1 => &mut self.rank1_bids,
            2 => &mut self.rank2_bids,
            _ => &mut self.rank3_bids,
        }
    }

    fn bidders_mut(&mut self, rank: usize) -> &mut i64 {
        match rank {
            1 => &mut self.rank1_bidders,
            2 => &mut self.rank2_bidders,
            _ => &mut self.rank3_bidders,
        }
    }

    fn auctions_mut(&mut self, rank: usize) -> &mut i64 {
        match rank {
            1 => &mut self.rank1_auctions,
            2 => &mut self.rank2_auctions,
            _ => &mut self.rank3_auctions,
        }
    }
}

/// A group's statistics for one day, as stored and emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayStats {
    /// The counts so far.
    pub counts: BidCounts,
    /// The latest minute of the day (0–1439, UTC) with a bid.
    pub max_minute: u32,
}

/// The key of a statistic and of the repartition topic: a group (the channel for q16,
/// empty for q15) and a day (days since 1970-01-01, UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct GroupDay {
    pub group: String,
    pub day: i64,
}

/// What the statistics need of a bid (the record timestamp is its time): bidder,
/// auction, price — a small repartition record.
type BidFacts = (i64, i64, i64);

/// Statistics of `bids` per `group(bid)` and day, in stores named `<name>-…`, through
/// the topic `<app>-<name>-by-day-repartition`: a stream of every group-day's new statistics,
/// one per accepted bid, at the bid's time.
pub(crate) fn daily_stats(
    builder: &StreamsBuilder,
    bids: &KStream<(), Bid>,
    name: &str,
    group: impl Fn(&Bid) -> String + Send + Sync + 'static,
) -> KStream<GroupDay, DayStats> {
    let stores = Stores::named(name);
    builder.add_store(&stores.counts);
    builder.add_store(&stores.seen);
    builder.add_store(&stores.days);
    let names = [
        stores.counts.name().to_string(),
        stores.seen.name().to_string(),
        stores.days.name().to_string(),
    ];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let key_serde = JsonSerde::<GroupDay>::new();
    let facts_serde = JsonSerde::<BidFacts>::new();
    let late_serdes = Arc::new((key_serde.clone(), facts_serde.clone()));
    bids.map(move |_, bid: Bid| {
        let key = GroupDay {
            group: group(&bid),
            day: day_of(bid.date_time),
        };
        (key, (bid.bidder, bid.auction, bid.price))
    })
    .repartition(&format!("{name}-by-day"), key_serde, facts_serde)
    .process(
        move || DailyDistinct {
            stores: stores.clone(),
            late_serdes: late_serdes.clone(),
        },
        &names,
    )
}

/// The three stores of the statistics; every key starts with the day (see [`day_bytes`])
/// so that a day's entries are one key range.
#[derive(Clone)]
struct Stores {
    /// day ‖ group → [`DayStats`] (JSON).
    counts: StoreHandle<Vec<u8>, DayStats>,
    /// day ‖ group length ‖ group ‖ `b` or `a` ‖ bidder or auction id → rank bits.
    seen: StoreHandle<Vec<u8>, Vec<u8>>,
    /// day → nothing: the open days, read by the expiry punctuator.
    days: StoreHandle<Vec<u8>, Vec<u8>>,
}

impl Stores {
    fn named(name: &str) -> Self {
        Stores {
            counts: StoreHandle::new(
                &format!("{name}-counts"),
                BytesSerde,
                JsonSerde::<DayStats>::new(),
            ),
            seen: StoreHandle::new(&format!("{name}-seen"), BytesSerde, BytesSerde),
            days: StoreHandle::new(&format!("{name}-days"), BytesSerde, BytesSerde),
        }
    }
}

/// A day as 8 bytes whose byte order is the numeric order (big-endian, sign bit flipped).
fn day_bytes(day: i64) -> [u8; 8] {
    ((day as u64) ^ (1 << 63)).to_be_bytes()
}

fn counts_key(key: &GroupDay) -> Vec<u8> {
    let mut k = day_bytes(key.day).to_vec();
    k.extend_from_slice(key.group.as_bytes());
    k
}

fn seen_key(key: &GroupDay, kind: u8, id: i64) -> Vec<u8> {
    let mut k = day_bytes(key.day).to_vec();
    k.extend_from_slice(&(key.group.len() as u32).to_be_bytes());
    k.extend_from_slice(key.group.as_bytes());
    k.push(kind);
    k.extend_from_slice(&((id as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// The processor of one task.
struct DailyDistinct {
    stores: Stores,
    late_serdes: Arc<(JsonSerde<GroupDay>, JsonSerde<BidFacts>)>,
}

/// Marks `id` as seen in `rank` for its day and group; returns (first time at all, first
/// time in this rank).
fn mark_seen(
    store: &mut KvStore<'_, Vec<u8>, Vec<u8>>,
    key: Vec<u8>,
    rank: usize,
) -> Result<(bool, bool), ProcessError> {
    let bits = store
        .get(&key)?
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let bit = 1u8 << rank;
    if bits & bit != 0 {
        return Ok((false, false));
    }
    store.put(&key, &vec![bits | bit])?;
    Ok((bits == 0, true))
}

impl DailyDistinct {
    /// Deletes every entry of `day` from `store`.
    fn delete_day<V: 'static>(
        ctx: &mut ProcessorContext<'_, '_, GroupDay, DayStats>,
        store: &StoreHandle<Vec<u8>, V>,
        day: i64,
    ) -> Result<(), ProcessError> {
        let (from, to) = (day_bytes(day).to_vec(), day_bytes(day + 1).to_vec());
        let mut store = ctx.store(store)?;
        for (key, _) in store.range(from..to)? {
            store.delete(&key)?;
        }
        Ok(())
    }
}

impl Processor<GroupDay, BidFacts, GroupDay, DayStats> for DailyDistinct {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, GroupDay, DayStats>,
    ) -> Result<(), ProcessError> {
        ctx.schedule(EXPIRY_INTERVAL_MS, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, GroupDay, DayStats>,
        r: Record<GroupDay, BidFacts>,
    ) -> Result<(), ProcessError> {
        let day = Window {
            start_ms: r.key.day * DAY_MS,
            end_ms: (r.key.day + 1) * DAY_MS,
        };
        let closed_at = day.end_ms + WATERMARK_DELAY_MS;
        if ctx.stream_time_ms() >= closed_at {
            let (key_serde, facts_serde) = &*self.late_serdes;
            let late = LateRecord {
                key: Some(key_serde.serialize(&r.key)?),
                value: Some(facts_serde.serialize(&r.value)?),
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            };
            ctx.report_late(late, day, closed_at);
            return Ok(());
        }
        let (bidder, auction, price) = r.value;
        let rank = price_rank(price);
        let (new_bidder, new_bidder_in_rank, new_auction, new_auction_in_rank) = {
            let mut seen = ctx.store(&self.stores.seen)?;
            let b = mark_seen(&mut seen, seen_key(&r.key, b'b', bidder), rank)?;
            let a = mark_seen(&mut seen, seen_key(&r.key, b'a', auction), rank)?;
            (b.0, b.1, a.0, a.1)
        };
        let key = counts_key(&r.key);
        let stats = {
            let mut counts = ctx.store(&self.stores.counts)?;
            let mut stats = counts.get(&key)?.unwrap_or_default();
            let c = &mut stats.counts;
            c.total_bids += 1;
            *c.bids_mut(rank) += 1;
            c.total_bidders += i64::from(new_bidder);
            *c.bidders_mut(rank) += i64::from(new_bidder_in_rank);
            c.total_auctions += i64::from(new_auction);
            *c.auctions_mut(rank) += i64::from(new_auction_in_rank);
            stats.max_minute = stats.max_minute.max(minute_of_day(r.timestamp_ms));
            counts.put(&key, &stats)?;
            stats
        };
        if stats.counts.total_bids == 1 {
            ctx.store(&self.stores.days)?
                .put(&day_bytes(r.key.day).to_vec(), &Vec::new())?;
        }
        ctx.forward(Record {
            key: r.key,
            value: stats,
            timestamp_ms: r.timestamp_ms,
            headers: r.headers,
        });
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, GroupDay, DayStats>,
        _schedule: ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        // Days whose end + grace is at or before stream time, i.e. before this day:
        let first_open = day_of(stream_time_ms - WATERMARK_DELAY_MS);
        let closed = ctx
            .store(&self.stores.days)?
            .range(..day_bytes(first_open).to_vec())?;
        for (key, _) in closed {
            let Ok(bytes) = <[u8; 8]>::try_from(key.as_slice()) else {
                return Err(ProcessError::user("corrupt day key in the days store"));
            };
            let day = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
            Self::delete_day(ctx, &self.stores.counts, day)?;
            Self::delete_day(ctx, &self.stores.seen, day)?;
            ctx.store(&self.stores.days)?.delete(&key)?;
        }
        Ok(())
    }
}
