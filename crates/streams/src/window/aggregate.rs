//! The windowed aggregation operator: tumbling, hopping, sliding and session windows in
//! one window store family (see [`super::state`]), final or per-update emission, late
//! records to the dead-letter topic.
//!
//! Invariants:
//! - a window is in the store from its first record until it closes (stream time ≥ its
//!   close time + grace), and is emitted (`OnWindowClose`) exactly when it is removed;
//! - no record updates a closed window: a record with no open window is late;
//! - sliding windows exist only when they hold a record (no empty, no duplicate
//!   windows); the raw records they are built from are kept while a new window could
//!   still need them;
//! - sessions of one key never overlap: a record that touches several merges them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::aggregations::Aggregation;
use super::rate::RateLimit;
use super::state::{next_sequence, Cursor, Entry, Family, Slot};
use super::{Emit, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
use crate::error::ProcessError;
use crate::processor::{Data, LateRecord, Processor, ProcessorContext};
use crate::record::Record;
use crate::serdes::Serde;
use crate::task::PunctuationType;

/// Which windows a record belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WindowSpec {
    Time(TimeWindows),
    Sliding(SlidingWindows),
    Session(SessionWindows),
}

impl WindowSpec {
    pub fn grace_ms(&self) -> i64 {
        match self {
            WindowSpec::Time(w) => w.grace_ms,
            WindowSpec::Sliding(w) => w.grace_ms,
            WindowSpec::Session(w) => w.grace_ms,
        }
    }
}

/// The aggregation operator. Outputs `(key, window) → Some(aggregate)`, and `None` to
/// retract a replaced session under `OnUpdate`.
pub(crate) struct WindowAggregate<K, V, A, O> {
    pub spec: WindowSpec,
    pub emit: Emit,
    pub store: String,
    pub key_serde: Arc<dyn Serde<K>>,
    pub value_serde: Arc<dyn Serde<V>>,
    pub agg: Aggregation<V, A, O>,
    /// How long closed windows stay in the store for interactive queries.
    pub query_retention_ms: i64,
}

const WINDOWS: u8 = 0;
const RECORDS: u8 = 1;

type Ctx<'c, 'e, K, O> = ProcessorContext<'c, 'e, Windowed<K>, Option<O>>;

impl<K: Data, V: Data, A: Data, O: Data> WindowAggregate<K, V, A, O> {
    fn windows(&self) -> Family<'_> {
        Family::new(&self.store, WINDOWS)
    }

    fn decode(&self, bytes: &[u8]) -> Result<A, ProcessError> {
        Ok(self.agg.serde.deserialize(bytes)?)
    }

    fn encode(&self, a: &A) -> Result<Vec<u8>, ProcessError> {
        Ok(self.agg.serde.serialize(a)?)
    }

    /// The rate limiter, under `OnUpdateEvery`.
    fn rate(&self) -> Option<RateLimit> {
        match self.emit {
            Emit::OnUpdateEvery { interval_ms } => Some(RateLimit {
                store: self.store.clone(),
                interval_ms: interval_ms.max(1),
            }),
            _ => None,
        }
    }

    fn forward(&self, ctx: &mut Ctx<'_, '_, K, O>, key: K, w: Window, agg: Option<&A>, ts: i64) {
        let key = Windowed { key, window: w };
        ctx.forward(Record::new(key, agg.map(|a| (self.agg.finish)(a)), ts));
    }

    /// Forwards an update (`None`: a retraction) under the per-update emission modes.
    fn updated(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        key: &K,
        kb: &[u8],
        w: Window,
        agg: Option<&A>,
        ts: i64,
    ) -> Result<(), ProcessError> {
        let now = match self.emit {
            Emit::OnWindowClose => return Ok(()),
            Emit::OnUpdate => true,
            Emit::OnUpdateEvery { .. } => {
                let (rate, st) = (self.rate(), ctx.stream_time_ms());
                match (rate, agg) {
                    (Some(rate), Some(_)) => rate.on_update(ctx.env(), kb, w, st)?,
                    (Some(rate), None) => {
                        rate.finish(ctx.env(), kb, w)?;
                        true
                    }
                    (None, _) => true,
                }
            }
        };
        if now {
            self.forward(ctx, key.clone(), w, agg, ts);
        }
        Ok(())
    }

    /// Creates or updates one window (`slot`) with `value`.
    fn add_to(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        key: &K,
        kb: &[u8],
        slot: Slot,
        value: V,
        ts: i64,
    ) -> Result<(), ProcessError> {
        let fam = self.windows();
        let old = fam.get_with(ctx.env(), kb, slot.end, slot.start, |b| {
            b.map(|b| self.decode(b)).transpose()
        })??;
        let existed = old.is_some();
        let base = old.unwrap_or_else(|| (self.agg.init)());
        let agg = (self.agg.add)(base, value);
        let bytes = self.encode(&agg)?;
        if existed {
            fam.update(ctx.env(), kb, slot.end, slot.start, bytes)?;
        } else {
            fam.put(ctx.env(), kb, slot, bytes)?;
        }
        let w = Window {
            start_ms: slot.start,
            end_ms: slot.end,
        };
        self.updated(ctx, key, kb, w, Some(&agg), ts)?;
        Ok(())
    }

    /// Sends a record that no open window accepts to the dead-letter topic.
    fn late(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        r: &Record<K, V>,
        kb: Vec<u8>,
        w: Window,
        closed_at: i64,
    ) -> Result<(), ProcessError> {
        let late = LateRecord {
            key: Some(kb),
            value: self.value_serde.serialize_nullable(&r.value)?,
            timestamp_ms: r.timestamp_ms,
            headers: r.headers.clone(),
        };
        ctx.report_late(late, w, closed_at);
        Ok(())
    }

    /// Emits a closed window's final result.
    fn emit_final(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        kb: &[u8],
        slot: Slot,
    ) -> Result<(), ProcessError> {
        let Some(value) = self.windows().get(ctx.env(), kb, slot.end, slot.start)? else {
            return Err(ProcessError::user(format!(
                "window store {}: index entry without data",
                self.store
            )));
        };
        let key = Windowed {
            key: self.key_serde.deserialize(kb)?,
            window: Window {
                start_ms: slot.start,
                end_ms: slot.end,
            },
        };
        let agg = self.decode(&value)?;
        ctx.forward(Record::new(
            key,
            Some((self.agg.finish)(&agg)),
            slot.end - 1,
        ));
        Ok(())
    }

    fn process_time(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        w: &TimeWindows,
        r: Record<K, V>,
        kb: Vec<u8>,
    ) -> Result<(), ProcessError> {
        let st = ctx.stream_time_ms();
        let mut any = false;
        let mut last = None;
        for win in w.windows_of(r.timestamp_ms) {
            last = Some(win);
            if st < win.end_ms.saturating_add(w.grace_ms) {
                any = true;
                let slot = Slot {
                    end: win.end_ms,
                    start: win.start_ms,
                    close: win.end_ms,
                };
                self.add_to(ctx, &r.key, &kb, slot, r.value.clone(), r.timestamp_ms)?;
            }
        }
        if !any {
            let Some(last) = last else {
                return Ok(());
            };
            return self.late(ctx, &r, kb, last, last.end_ms.saturating_add(w.grace_ms));
        }
        Ok(())
    }

    /// Folds the raw records of `kb` with timestamps in `[from, to]`.
    fn fold_records(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        kb: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Option<A>, ProcessError> {
        let rows = Family::new(&self.store, RECORDS).fetch(ctx.env(), kb, from, to)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut agg = (self.agg.init)();
        for row in rows {
            agg = (self.agg.add)(agg, self.value_serde.deserialize(&row.value)?);
        }
        Ok(Some(agg))
    }

    fn process_sliding(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        w: &SlidingWindows,
        r: Record<K, V>,
        kb: Vec<u8>,
    ) -> Result<(), ProcessError> {
        let (t, d, grace) = (r.timestamp_ms, w.difference_ms, w.grace_ms);
        let st = ctx.stream_time_ms();
        let open = |end: i64| st < end.saturating_add(grace);
        // The last window holding t ends (exclusively) at t + d + 1.
        let last_end = t.saturating_add(d).saturating_add(1);
        if !open(last_end) {
            let w = Window {
                start_ms: t,
                end_ms: last_end,
            };
            return self.late(ctx, &r, kb, w, last_end.saturating_add(grace));
        }
        let seq = next_sequence(ctx.env(), &self.store)?;
        let records = Family::new(&self.store, RECORDS);
        let value_bytes = self.value_serde.serialize(&r.value)?;
        let keep_until = t.saturating_add(d.saturating_mul(2)).saturating_add(2);
        let slot = Slot {
            end: t,
            start: seq,
            close: keep_until,
        };
        records.put(ctx.env(), &kb, slot, value_bytes)?;
        // Windows whose exclusive end is in [t + 1, t + d + 2]: those holding t, and t's
        // right window.
        let existing: BTreeMap<i64, Entry> = self
            .windows()
            .fetch(
                ctx.env(),
                &kb,
                t.saturating_add(1),
                last_end.saturating_add(1),
            )?
            .into_iter()
            .map(|e| (e.end, e))
            .collect();
        for e in existing.values() {
            if e.end <= last_end && open(e.end) {
                let agg = (self.agg.add)(self.decode(&e.value)?, r.value.clone());
                self.windows()
                    .update(ctx.env(), &kb, e.end, e.start, self.encode(&agg)?)?;
                let win = Window {
                    start_ms: e.start,
                    end_ms: e.end,
                };
                self.updated(ctx, &r.key, &kb, win, Some(&agg), t)?;
            }
        }
        // New windows: t's left window, the right window of the record just before t,
        // and t's right window — each only if it holds records and is still open.
        let previous = records
            .fetch(
                ctx.env(),
                &kb,
                t.saturating_sub(d).saturating_sub(1),
                t.saturating_sub(1),
            )?
            .last()
            .map(|e| e.end);
        let mut candidates = vec![(t.saturating_sub(d), t)];
        if let Some(p) = previous {
            candidates.push((p.saturating_add(1), p.saturating_add(1).saturating_add(d)));
        }
        candidates.push((t.saturating_add(1), t.saturating_add(1).saturating_add(d)));
        for (from, to) in candidates {
            let end = to.saturating_add(1);
            if existing.contains_key(&end) || !open(end) {
                continue;
            }
            if let Some(agg) = self.fold_records(ctx, &kb, from, to)? {
                let win = Window {
                    start_ms: from,
                    end_ms: end,
                };
                let slot = Slot {
                    end,
                    start: from,
                    close: end,
                };
                self.windows()
                    .put(ctx.env(), &kb, slot, self.encode(&agg)?)?;
                self.updated(ctx, &r.key, &kb, win, Some(&agg), t)?;
            }
        }
        Ok(())
    }

    fn process_session(
        &self,
        ctx: &mut Ctx<'_, '_, K, O>,
        w: &SessionWindows,
        r: Record<K, V>,
        kb: Vec<u8>,
    ) -> Result<(), ProcessError> {
        let (t, gap) = (r.timestamp_ms, w.gap_ms);
        let st = ctx.stream_time_ms();
        let own = Window {
            start_ms: t,
            end_ms: t.saturating_add(1),
        };
        // A record older than stream time - grace could only extend sessions that closed.
        if t < st.saturating_sub(w.grace_ms) {
            return self.late(ctx, &r, kb, own, t.saturating_add(w.grace_ms));
        }
        let fam = self.windows();
        // Sessions whose last record is at or after t - gap and whose first is at or
        // before t + gap touch this record.
        let touching: Vec<Entry> = fam
            .fetch(
                ctx.env(),
                &kb,
                t.saturating_sub(gap).saturating_add(1),
                i64::MAX,
            )?
            .into_iter()
            .take_while(|e| e.start <= t.saturating_add(gap))
            .collect();
        let mut merged: Option<A> = None;
        let mut window = own;
        for e in &touching {
            let agg = self.decode(&e.value)?;
            merged = Some(match merged {
                None => agg,
                Some(m) => (self.agg.merge)(m, agg),
            });
            window.start_ms = window.start_ms.min(e.start);
            window.end_ms = window.end_ms.max(e.end);
            let slot = Slot {
                end: e.end,
                start: e.start,
                close: e.end.saturating_add(gap),
            };
            fam.remove(ctx.env(), &kb, slot)?;
            let old = Window {
                start_ms: e.start,
                end_ms: e.end,
            };
            self.updated(ctx, &r.key, &kb, old, None, t)?;
        }
        let agg = (self.agg.add)(merged.unwrap_or_else(|| (self.agg.init)()), r.value);
        let slot = Slot {
            end: window.end_ms,
            start: window.start_ms,
            close: window.end_ms.saturating_add(gap),
        };
        fam.put(ctx.env(), &kb, slot, self.encode(&agg)?)?;
        self.updated(ctx, &r.key, &kb, window, Some(&agg), t)?;
        Ok(())
    }
}

impl<K: Data, V: Data, A: Data, O: Data> Processor<K, V, Windowed<K>, Option<O>>
    for WindowAggregate<K, V, A, O>
{
    fn init(&mut self, ctx: &mut Ctx<'_, '_, K, O>) -> Result<(), ProcessError> {
        // Every advance of stream time may close windows.
        ctx.schedule(1, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut Ctx<'_, '_, K, O>,
        r: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let kb = self.key_serde.serialize(&r.key)?;
        match self.spec {
            WindowSpec::Time(w) => self.process_time(ctx, &w, r, kb),
            WindowSpec::Sliding(w) => self.process_sliding(ctx, &w, r, kb),
            WindowSpec::Session(w) => self.process_session(ctx, &w, r, kb),
        }
    }

    fn punctuate(
        &mut self,
        ctx: &mut Ctx<'_, '_, K, O>,
        _schedule: crate::processor::ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        let bound = stream_time_ms.saturating_sub(self.spec.grace_ms());
        let fam = self.windows();
        let retained = self.query_retention_ms > 0;
        if self.emit == Emit::OnWindowClose {
            let cursor = if retained {
                Cursor::Emit
            } else {
                Cursor::Expire
            };
            for (kb, slot) in fam.take_closed(ctx.env(), cursor, bound)? {
                self.emit_final(ctx, &kb, slot)?;
                if !retained {
                    fam.remove(ctx.env(), &kb, slot)?;
                }
            }
        }
        let rate = self.rate();
        if let Some(rate) = &rate {
            for (kb, w) in rate.due(ctx.env(), stream_time_ms)? {
                if let Some(value) = fam.get(ctx.env(), &kb, w.end_ms, w.start_ms)? {
                    let agg = self.decode(&value)?;
                    let key = self.key_serde.deserialize(&kb)?;
                    self.forward(ctx, key, w, Some(&agg), stream_time_ms);
                }
            }
        }
        if retained || self.emit != Emit::OnWindowClose {
            let expire_to = bound.saturating_sub(self.query_retention_ms);
            for (kb, slot) in fam.take_closed(ctx.env(), Cursor::Expire, expire_to)? {
                let w = Window {
                    start_ms: slot.start,
                    end_ms: slot.end,
                };
                // A rate-limited update still waiting goes out before the window leaves.
                if let Some(rate) = &rate {
                    if rate.finish(ctx.env(), &kb, w)? {
                        self.emit_final(ctx, &kb, slot)?;
                    }
                }
                fam.remove(ctx.env(), &kb, slot)?;
            }
        }
        if matches!(self.spec, WindowSpec::Sliding(_)) {
            let records = Family::new(&self.store, RECORDS);
            for (kb, slot) in records.take_closed(ctx.env(), Cursor::Expire, bound)? {
                records.remove(ctx.env(), &kb, slot)?;
            }
        }
        Ok(())
    }
}
