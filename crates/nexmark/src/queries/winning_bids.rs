//! The "winning bids" core that q4, q6 and q9 share: every auction joined with its bids,
//! keeping the best bid placed during the auction's lifetime.
//!
//! In Nexmark's SQL this is the regular join
//! `auction A, bid B WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires`
//! followed by a per-auction `MAX(B.price)` (q4) or `ROW_NUMBER() OVER (PARTITION BY A.id
//! ORDER BY B.price DESC, B.dateTime ASC) = 1` (q6, q9). The best bid is the highest
//! price; among equal prices the earliest `date_time`; among equal times the one that
//! arrived first (SQL leaves that last tie open; a replay must not).
//!
//! Auctions and bids are keyed by auction id and repartitioned, so an auction and its
//! bids meet in one task. The processor keeps, in stores:
//! - `<name>-open-auctions`: auction id → the auction and its best bid so far;
//! - `<name>-closing`: `(expires + grace, auction id)` → (), the time index that closes
//!   auctions in order;
//! - `<name>-early-bids`: auction id → bids that arrived before their auction (events
//!   are out of order by up to the grace), and `<name>-early-bids-expiry`, their index.
//!
//! Invariants (stream time `st` is the task's largest event time, this record included):
//! - an auction is *open* while `st < expires + grace`; only then do bids change it, and
//!   it leaves the store at the first punctuation after it closes;
//! - a bid that arrives before its auction waits while `st < bid time + grace`: an auction
//!   it could belong to starts no later than the bid, so one arriving after that is late
//!   by more than the grace itself;
//! - under `WinnerEmit::OnClose` each auction with at least one counted bid is emitted
//!   exactly once, at the first punctuation after it closes. An auction arriving closed
//!   is dropped: every bid of its lifetime is then more than the grace behind.
//!
//! Differences from Flink, whose regular join keeps every auction and every bid forever:
//! bids arriving after their auction closed, and bids whose auction arrives more than the
//! grace after them, do not count; state is bounded by the auctions open and the grace.
//! On inputs less than the grace out of order the results are the same.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{
    I64Serde, JsonSerde, KStream, ProcessError, Processor, ProcessorContext, PunctuationType,
    Record, ScheduleId, StoreHandle, StreamsBuilder, UnitSerde,
};

use super::shared::OrderedPairSerde;
use crate::model::{Auction, Bid, Event};

/// An auction or a bid, keyed by auction id on the way to the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuctionOrBid {
    /// An auction (keyed by its id).
    Auction(Auction),
    /// A bid (keyed by the auction it bids on).
    Bid(Bid),
}

/// When the core emits an auction's best bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WinnerEmit {
    /// Every time an auction's best bid changes (an updating result, as Flink's join).
    OnUpdate,
    /// Once per auction, when it closes: the final winner.
    OnClose,
}

/// An auction with its best bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WinningBid {
    /// The auction.
    pub auction: Auction,
    /// Its best bid: the winner under [`WinnerEmit::OnClose`].
    pub bid: Bid,
    /// Under [`WinnerEmit::OnUpdate`], the price of the best bid this one replaces
    /// (`None` for an auction's first).
    pub replaced_price: Option<i64>,
}

/// How often (stream time) closed auctions are emitted and expired state is dropped.
/// Whether a bid counts never depends on it: the processor checks the time itself.
const PUNCTUATE_EVERY_MS: i64 = 1_000;

/// Adds the core to `builder`: reads auctions and bids from `events`, writes
/// `auction id → WinningBid`. Store and topic names start with `name`.
pub(crate) fn winning_bids(
    builder: &StreamsBuilder,
    events: &KStream<(), Event>,
    name: &str,
    emit: WinnerEmit,
    grace_ms: i64,
) -> KStream<i64, WinningBid> {
    let keyed = events
        .flat_map(|_, e| match e {
            Event::Auction(a) => Some((a.id, AuctionOrBid::Auction(a))),
            Event::Bid(b) => Some((b.auction, AuctionOrBid::Bid(b))),
            Event::Person(_) => None,
        })
        .repartition(
            &format!("{name}-auction-bids"),
            I64Serde,
            JsonSerde::<AuctionOrBid>::new(),
        );
    let stores = Stores {
        open: StoreHandle::new(&format!("{name}-open-auctions"), I64Serde, JsonSerde::new()),
        closing: StoreHandle::new(&format!("{name}-closing"), OrderedPairSerde, UnitSerde),
        early: StoreHandle::new(&format!("{name}-early-bids"), I64Serde, JsonSerde::new()),
        early_expiry: StoreHandle::new(
            &format!("{name}-early-bids-expiry"),
            OrderedPairSerde,
            UnitSerde,
        ),
    };
    builder.add_store(&stores.open);
    builder.add_store(&stores.closing);
    builder.add_store(&stores.early);
    builder.add_store(&stores.early_expiry);
    let names = [
        stores.open.name().to_string(),
        stores.closing.name().to_string(),
        stores.early.name().to_string(),
        stores.early_expiry.name().to_string(),
    ];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    keyed.process(
        move || WinningBids {
            stores: stores.clone(),
            emit,
            grace_ms,
        },
        &names,
    )
}

/// An open auction and its best bid so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenAuction {
    auction: Auction,
    best: Option<Bid>,
}

#[derive(Clone)]
struct Stores {
    open: StoreHandle<i64, OpenAuction>,
    closing: StoreHandle<(i64, i64), ()>,
    early: StoreHandle<i64, Vec<Bid>>,
    early_expiry: StoreHandle<(i64, i64), ()>,
}

struct WinningBids {
    stores: Stores,
    emit: WinnerEmit,
    grace_ms: i64,
}

type Ctx<'c, 'e> = ProcessorContext<'c, 'e, i64, WinningBid>;

/// Whether `bid` falls in the auction's lifetime (SQL `BETWEEN`: both ends included).
fn in_lifetime(auction: &Auction, bid: &Bid) -> bool {
    auction.date_time <= bid.date_time && bid.date_time <= auction.expires
}

/// Whether `new` beats `old`: a higher price, or the same price earlier. A full tie
/// keeps `old`, the one that arrived first.
fn beats(new: &Bid, old: &Bid) -> bool {
    new.price > old.price || (new.price == old.price && new.date_time < old.date_time)
}

impl WinningBids {
    fn forward(ctx: &mut Ctx<'_, '_>, auction: Auction, bid: Bid, replaced: Option<i64>, ts: i64) {
        let key = auction.id;
        let value = WinningBid {
            auction,
            bid,
            replaced_price: replaced,
        };
        ctx.forward(Record::new(key, value, ts));
    }

    fn on_auction(&self, ctx: &mut Ctx<'_, '_>, auction: Auction) -> Result<(), ProcessError> {
        let st = ctx.stream_time_ms();
        let grace = self.grace_ms;
        if ctx.store(&self.stores.open)?.get(&auction.id)?.is_some() {
            // Nexmark's auction ids are unique: a repeated one is ignored, the first wins.
            return Ok(());
        }
        let early = {
            let mut store = ctx.store(&self.stores.early)?;
            let bids = store.get(&auction.id)?.unwrap_or_default();
            if !bids.is_empty() {
                store.delete(&auction.id)?;
            }
            bids
        };
        let mut best: Option<Bid> = None;
        for bid in early {
            let waiting = bid.date_time.saturating_add(grace) > st;
            if waiting
                && in_lifetime(&auction, &bid)
                && best.as_ref().is_none_or(|b| beats(&bid, b))
            {
                best = Some(bid);
            }
        }
        let close_at = auction.expires.saturating_add(grace);
        if st >= close_at {
            // Closed before it arrived: every bid in its lifetime is more than the grace
            // behind stream time, so none counts (the early ones above did not either).
            return Ok(());
        }
        if let (WinnerEmit::OnUpdate, Some(bid)) = (self.emit, &best) {
            Self::forward(ctx, auction.clone(), bid.clone(), None, bid.date_time);
        }
        let id = auction.id;
        ctx.store(&self.stores.open)?
            .put(&id, &OpenAuction { auction, best })?;
        ctx.store(&self.stores.closing)?.put(&(close_at, id), &())?;
        Ok(())
    }

    fn on_bid(&self, ctx: &mut Ctx<'_, '_>, bid: Bid) -> Result<(), ProcessError> {
        let st = ctx.stream_time_ms();
        let grace = self.grace_ms;
        match ctx.store(&self.stores.open)?.get(&bid.auction)? {
            Some(mut open) => {
                let is_open = st < open.auction.expires.saturating_add(grace);
                if !is_open || !in_lifetime(&open.auction, &bid) {
                    return Ok(());
                }
                if open.best.as_ref().is_some_and(|b| !beats(&bid, b)) {
                    return Ok(());
                }
                let replaced = open.best.replace(bid.clone()).map(|b| b.price);
                ctx.store(&self.stores.open)?.put(&bid.auction, &open)?;
                if self.emit == WinnerEmit::OnUpdate {
                    let ts = bid.date_time;
                    Self::forward(ctx, open.auction, bid, replaced, ts);
                }
            }
            None => {
                // The auction has not arrived (or has closed and left: then it never
                // comes back and the bid expires unused).
                let expires_at = bid.date_time.saturating_add(grace);
                if expires_at <= st {
                    return Ok(());
                }
                let auction = bid.auction;
                {
                    let mut store = ctx.store(&self.stores.early)?;
                    let mut bids = store.get(&auction)?.unwrap_or_default();
                    bids.push(bid);
                    store.put(&auction, &bids)?;
                }
                ctx.store(&self.stores.early_expiry)?
                    .put(&(expires_at, auction), &())?;
            }
        }
        Ok(())
    }
}

impl Processor<i64, AuctionOrBid, i64, WinningBid> for WinningBids {
    fn init(&mut self, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        ctx.schedule(PUNCTUATE_EVERY_MS, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        record: Record<i64, AuctionOrBid>,
    ) -> Result<(), ProcessError> {
        match record.value {
            AuctionOrBid::Auction(a) => self.on_auction(ctx, a),
            AuctionOrBid::Bid(b) => self.on_bid(ctx, b),
        }
    }

    fn punctuate(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        _schedule: ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        // Auctions closed by now, in closing order (then by id).
        let closed = ctx
            .store(&self.stores.closing)?
            .range(..=(stream_time_ms, i64::MAX))?;
        for ((close_at, id), ()) in closed {
            ctx.store(&self.stores.closing)?.delete(&(close_at, id))?;
            let open = {
                let mut store = ctx.store(&self.stores.open)?;
                let open = store.get(&id)?;
                store.delete(&id)?;
                open
            };
            if let (
                WinnerEmit::OnClose,
                Some(OpenAuction {
                    auction,
                    best: Some(bid),
                }),
            ) = (self.emit, open)
            {
                let ts = auction.expires;
                Self::forward(ctx, auction, bid, None, ts);
            }
        }
        // Early bids whose auction can no longer arrive in time.
        let expired = ctx
            .store(&self.stores.early_expiry)?
            .range(..=(stream_time_ms, i64::MAX))?;
        for ((at, auction), ()) in expired {
            ctx.store(&self.stores.early_expiry)?
                .delete(&(at, auction))?;
            let mut store = ctx.store(&self.stores.early)?;
            let Some(mut bids) = store.get(&auction)? else {
                continue;
            };
            bids.retain(|b| b.date_time.saturating_add(self.grace_ms) > stream_time_ms);
            if bids.is_empty() {
                store.delete(&auction)?;
            } else {
                store.put(&auction, &bids)?;
            }
        }
        Ok(())
    }
}
