//! Query 7, highest bid: the bids with the highest price of their 10 s window.
//!
//! The Flink peer's form (`bench-peers/flink/nexmark_flink.py`, as Nexmark's `q7.sql`):
//!
//! ```sql
//! SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
//! FROM bid B
//! JOIN (
//!   SELECT MAX(price) AS maxprice, window_end AS dateTime
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end
//! ) B1
//! ON B.price = B1.maxprice
//! WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;
//! ```
//!
//! `BETWEEN` includes both ends, so a bid at exactly a window's end — the first
//! millisecond of the next window — also joins the window before when its price equals
//! that window's maximum; it then appears once per window it matches. This query returns
//! that same multiset. [`q7w`](super::q7w) is the window-join form without the boundary.
//!
//! **Output**: one [`Q7Result`] (the peer's columns) per matching (bid, window); key =
//! auction id ([`I64Serde`]), value JSON.
//!
//! **How**, as the SQL: the window maxima are a tumbling windowed `reduce` over all bids
//! (one group, [`WHOLE_STREAM`]; grace [`WATERMARK_DELAY_MS`], final per window,
//! timestamp `end - 1`), re-keyed by price; the bids, keyed by price, meet them in a
//! stream–stream join whose time band is the `BETWEEN`: a maximum at `end - 1` joins
//! bids in `[end - 10 s, end]`, i.e. `before = 1`, `after = 9 999` ms from the bid's
//! side. Before the join, bids below their window's running maximum are dropped (they
//! cannot equal its maximum), so the join stores a few bids per window, not all of them
//! as Flink's does.
//!
//! **Emission**: a row as soon as a bid and its window's maximum have both arrived —
//! mostly when the window closes.
//!
//! **Differences from Flink**: Flink's regular join keeps every bid and maximum forever;
//! this join keeps them for its window plus [`JOIN_GRACE_MS`] of the join's stream time,
//! so a record arriving later than that finds no partner and goes to the dead-letter
//! topic. A bid too late for its window's maximum (stream time ≥ end + 4 s) does not
//! count towards it but still joins it, as in Flink.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{
    I64Serde, JoinWindows, JsonSerde, KStream, ProcessError, Processor, ProcessorContext,
    PunctuationType, Record, ScheduleId, StoreHandle, StreamJoined, StreamsBuilder, StreamsError,
    TimeWindows, Windowed,
};

use super::shared::{WATERMARK_DELAY_MS, WHOLE_STREAM};
use super::{bids, events, QueryTopics};
use crate::model::Bid;

/// The tumbling window's size.
pub const WINDOW_MS: i64 = 10_000;

/// How long the join keeps bids and maxima beyond the `BETWEEN` band: a window's maximum
/// is ready [`WATERMARK_DELAY_MS`] after the window ends, and may reach the join a little
/// later still.
pub const JOIN_GRACE_MS: i64 = 10_000;

/// A q7 (and q7w) result row: the bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q7Result {
    /// The auction bid on.
    pub auction: i64,
    /// The price: its window's maximum.
    pub price: i64,
    /// The bidder.
    pub bidder: i64,
    /// When the bid was made.
    pub date_time: i64,
    /// The bid's padding.
    pub extra: String,
}

impl From<Bid> for Q7Result {
    fn from(b: Bid) -> Self {
        Q7Result {
            auction: b.auction,
            price: b.price,
            bidder: b.bidder,
            date_time: b.date_time,
            extra: b.extra,
        }
    }
}

/// Adds q7 to `builder`: events from `topics.input`, [`Q7Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    // Every bid in one task: the window maxima need them all.
    let bids = bids(&events(builder, topics))
        .map(|_, b: Bid| (WHOLE_STREAM, b))
        .repartition("q7-bids", I64Serde, JsonSerde::<Bid>::new());
    let maxima = bids
        .map_values(|b: &Bid| b.price)
        .group_by_key(I64Serde, I64Serde)
        .windowed_by(TimeWindows::of_size(WINDOW_MS).grace(WATERMARK_DELAY_MS))
        .reduce("q7-max-price", i64::max)
        .to_stream()
        .flat_map(|w: Windowed<i64>, max: Option<i64>| max.map(|m| (m, w.window.end_ms)));
    candidates(builder, &bids, "q7-max-so-far", true)
        .map(|_, b: Bid| (b.price, b))
        .join(
            &maxima,
            |b: &Bid, _end: &i64| Q7Result::from(b.clone()),
            JoinWindows::of_time_difference(0)
                .before(1)
                .after(WINDOW_MS - 1)
                .grace(JOIN_GRACE_MS),
            StreamJoined::with("q7-highest", I64Serde, JsonSerde::<Bid>::new(), I64Serde),
        )
        .map(|_, r: Q7Result| (r.auction, r))
        .to(&topics.output, I64Serde, JsonSerde::<Q7Result>::new());
    Ok(())
}

/// The bids of `bids` (one task for the whole stream) that can still equal their
/// window's maximum — with `window_starts`, also every bid at exactly a window start, which
/// `BETWEEN` offers to the window before — so that what follows holds a handful of bids
/// per window instead of all of them. Runs in the bids' task, keeping its key.
///
/// It keeps the running maximum of each open window (`window start → price`, in the store
/// `store`). A bid below its window's running maximum can never equal the window's final
/// maximum, which is at least that, nor join any other window (but for the window starts
/// above). Bids too late for their window (stream time ≥ end + grace) pass too: they do
/// not count towards the maximum, but q7's join may still pair them, and a window
/// aggregation after this sends them to the dead-letter topic as it would have.
pub(crate) fn candidates(
    builder: &StreamsBuilder,
    bids: &KStream<i64, Bid>,
    store: &str,
    window_starts: bool,
) -> KStream<i64, Bid> {
    let max_so_far = StoreHandle::new(store, I64Serde, I64Serde);
    builder.add_store(&max_so_far);
    let handle = max_so_far.clone();
    bids.process_values(
        move || Candidates {
            max_so_far: handle.clone(),
            window_starts,
        },
        &[max_so_far.name()],
    )
}

/// See [`candidates`].
struct Candidates {
    max_so_far: StoreHandle<i64, i64>,
    window_starts: bool,
}

impl Processor<i64, Bid, i64, Bid> for Candidates {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, i64, Bid>) -> Result<(), ProcessError> {
        ctx.schedule(WINDOW_MS, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, i64, Bid>,
        r: Record<i64, Bid>,
    ) -> Result<(), ProcessError> {
        let t = r.value.date_time;
        let start = t - t.rem_euclid(WINDOW_MS);
        let late = ctx.stream_time_ms() >= start + WINDOW_MS + WATERMARK_DELAY_MS;
        if !late {
            let mut store = ctx.store(&self.max_so_far)?;
            let max = store.get(&start)?;
            let below = max.is_some_and(|m| r.value.price < m);
            if below && !(self.window_starts && t == start) {
                return Ok(());
            }
            if max.is_none_or(|m| r.value.price > m) {
                store.put(&start, &r.value.price)?;
            }
        }
        ctx.forward(r);
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, i64, Bid>,
        _schedule: ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        // Windows closed by now: their late bids pass without a look at the maximum.
        let mut store = ctx.store(&self.max_so_far)?;
        let last_closed = stream_time_ms - WATERMARK_DELAY_MS - WINDOW_MS;
        for (start, _) in store.range(..=last_closed)? {
            store.delete(&start)?;
        }
        Ok(())
    }
}
