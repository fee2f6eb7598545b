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
//! - `<name>-open-auctions`: auction id → its lifetime and best price and time (32
//!   bytes, the only state most bids read), with the auction's row in `<name>-auctions`
//!   and its best bid in `<name>-best-bids`, read only to emit;
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
    Record, ScheduleId, Serde, SerdeError, StoreHandle, StreamsBuilder, UnitSerde,
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
        open: StoreHandle::new(&format!("{name}-open-auctions"), I64Serde, OpenAuctionSerde),
        auctions: StoreHandle::new(&format!("{name}-auctions"), I64Serde, JsonSerde::new()),
        best: StoreHandle::new(&format!("{name}-best-bids"), I64Serde, JsonSerde::new()),
        closing: StoreHandle::new(&format!("{name}-closing"), OrderedPairSerde, UnitSerde),
        early: StoreHandle::new(&format!("{name}-early-bids"), I64Serde, JsonSerde::new()),
        early_expiry: StoreHandle::new(
            &format!("{name}-early-bids-expiry"),
            OrderedPairSerde,
            UnitSerde,
        ),
    };
    let names = [
        stores.open.name().to_string(),
        stores.auctions.name().to_string(),
        stores.best.name().to_string(),
        stores.closing.name().to_string(),
        stores.early.name().to_string(),
        stores.early_expiry.name().to_string(),
    ];
    builder.add_store(&stores.open);
    builder.add_store(&stores.auctions);
    builder.add_store(&stores.best);
    builder.add_store(&stores.closing);
    builder.add_store(&stores.early);
    builder.add_store(&stores.early_expiry);
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

/// What every bid of an open auction is checked against, kept small (32 bytes) because
/// it is read for every bid: the lifetime and the best bid's price and time. The auction
/// itself and the best bid live in their own stores, read only to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenAuction {
    date_time: i64,
    expires: i64,
    /// The best bid's price and time, if there is one.
    best: Option<(i64, i64)>,
}

impl OpenAuction {
    /// Whether `bid` falls in the auction's lifetime (SQL `BETWEEN`: both ends included).
    fn in_lifetime(&self, bid: &Bid) -> bool {
        self.date_time <= bid.date_time && bid.date_time <= self.expires
    }

    /// Whether `bid` beats the best so far: a higher price, or the same price earlier. A
    /// full tie keeps the one that arrived first.
    fn beaten_by(&self, bid: &Bid) -> bool {
        match self.best {
            None => true,
            Some((price, time)) => {
                bid.price > price || (bid.price == price && bid.date_time < time)
            }
        }
    }
}

/// [`OpenAuction`] as four big-endian `i64`s (no best bid: price `i64::MIN`).
#[derive(Debug, Clone, Copy)]
struct OpenAuctionSerde;

impl Serde<OpenAuction> for OpenAuctionSerde {
    fn serialize(&self, v: &OpenAuction) -> Result<Vec<u8>, SerdeError> {
        let (price, time) = v.best.unwrap_or((i64::MIN, 0));
        let mut out = Vec::with_capacity(32);
        for x in [v.date_time, v.expires, price, time] {
            out.extend_from_slice(&x.to_be_bytes());
        }
        Ok(out)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<OpenAuction, SerdeError> {
        if bytes.len() != 32 {
            return Err(SerdeError::Length {
                expected: 32,
                got: bytes.len(),
            });
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            i64::from_be_bytes(b)
        };
        let price = field(2);
        Ok(OpenAuction {
            date_time: field(0),
            expires: field(1),
            best: (price != i64::MIN).then(|| (price, field(3))),
        })
    }
}

#[derive(Clone)]
struct Stores {
    open: StoreHandle<i64, OpenAuction>,
    auctions: StoreHandle<i64, Auction>,
    best: StoreHandle<i64, Bid>,
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
        let mut open = OpenAuction {
            date_time: auction.date_time,
            expires: auction.expires,
            best: None,
        };
        let mut best: Option<Bid> = None;
        for bid in early {
            let waiting = bid.date_time.saturating_add(grace) > st;
            if waiting && open.in_lifetime(&bid) && open.beaten_by(&bid) {
                open.best = Some((bid.price, bid.date_time));
                best = Some(bid);
            }
        }
        let close_at = auction.expires.saturating_add(grace);
        if st >= close_at {
            // Closed before it arrived: every bid in its lifetime is more than the grace
            // behind stream time, so none counts (the early ones above did not either).
            return Ok(());
        }
        let id = auction.id;
        ctx.store(&self.stores.open)?.put(&id, &open)?;
        ctx.store(&self.stores.closing)?.put(&(close_at, id), &())?;
        if let Some(bid) = best {
            ctx.store(&self.stores.best)?.put(&id, &bid)?;
            if self.emit == WinnerEmit::OnUpdate {
                let ts = bid.date_time;
                Self::forward(ctx, auction.clone(), bid, None, ts);
            }
        }
        ctx.store(&self.stores.auctions)?.put(&id, &auction)?;
        Ok(())
    }

    fn on_bid(&self, ctx: &mut Ctx<'_, '_>, bid: Bid) -> Result<(), ProcessError> {
        let st = ctx.stream_time_ms();
        let grace = self.grace_ms;
        let id = bid.auction;
        match ctx.store(&self.stores.open)?.get(&id)? {
            Some(mut open) => {
                let is_open = st < open.expires.saturating_add(grace);
                if !is_open || !open.in_lifetime(&bid) || !open.beaten_by(&bid) {
                    return Ok(());
                }
                let replaced = open.best.map(|(price, _)| price);
                open.best = Some((bid.price, bid.date_time));
                ctx.store(&self.stores.open)?.put(&id, &open)?;
                ctx.store(&self.stores.best)?.put(&id, &bid)?;
                if self.emit == WinnerEmit::OnUpdate {
                    let Some(auction) = ctx.store(&self.stores.auctions)?.get(&id)? else {
                        return Err(ProcessError::user(format!(
                            "winning bids: open auction {id} without its row"
                        )));
                    };
                    let ts = bid.date_time;
                    Self::forward(ctx, auction, bid, replaced, ts);
                }
            }
            None => {
                // The auction has not arrived (or has closed and left: then it never
                // comes back and the bid expires unused).
                let expires_at = bid.date_time.saturating_add(grace);
                if expires_at <= st {
                    return Ok(());
                }
                {
                    let mut store = ctx.store(&self.stores.early)?;
                    let mut bids = store.get(&id)?.unwrap_or_default();
                    bids.push(bid);
                    store.put(&id, &bids)?;
                }
                ctx.store(&self.stores.early_expiry)?
                    .put(&(expires_at, id), &())?;
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
            ctx.store(&self.stores.open)?.delete(&id)?;
            let auction = {
                let mut store = ctx.store(&self.stores.auctions)?;
                let auction = store.get(&id)?;
                store.delete(&id)?;
                auction
            };
            let best = {
                let mut store = ctx.store(&self.stores.best)?;
                let best = store.get(&id)?;
                if best.is_some() {
                    store.delete(&id)?;
                }
                best
            };
            if let (WinnerEmit::OnClose, Some(auction), Some(bid)) = (self.emit, auction, best) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_auction_state_round_trips_in_32_bytes() {
        for best in [None, Some((0, 5)), Some((i64::MAX, -1))] {
            let open = OpenAuction {
                date_time: 1_704_067_200_000,
                expires: 1_704_067_210_000,
                best,
            };
            let bytes = OpenAuctionSerde.serialize(&open).expect("serialize");
            assert_eq!(bytes.len(), 32);
            assert_eq!(
                OpenAuctionSerde.deserialize(&bytes).expect("deserialize"),
                open
            );
        }
        assert!(OpenAuctionSerde.deserialize(&[0; 31]).is_err());
    }
}
