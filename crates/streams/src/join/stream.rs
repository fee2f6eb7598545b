//! Stream–stream windowed joins: one side's operator, and the DSL that pairs two of them.

use std::sync::Arc;

use super::{JoinWindows, StreamJoined};
use crate::dsl::{ArcSerde, KStream};
use crate::error::ProcessError;
use crate::processor::TypedNode;
use crate::processor::{Data, Processor, ProcessorContext, ScheduleId};
use crate::record::Record;
use crate::serdes::Serde;
use crate::task::{DeadLetter, PunctuationType};
use crate::topology::NodeFactory;
use crate::window::state::{next_sequence, Cursor, Family, Slot};

type Joiner<A, B, R> = Arc<dyn Fn(Option<&A>, Option<&B>) -> R + Send + Sync>;

/// One side of a join: stores its records, probes the other side's store, emits
/// partnerless records (left/outer) when they leave the store.
#[derive(Clone)]
struct JoinSide<K, A, B, R> {
    this_store: String,
    other_store: String,
    key_serde: Arc<dyn Serde<K>>,
    this_serde: Arc<dyn Serde<A>>,
    other_serde: Arc<dyn Serde<B>>,
    /// Other records at `[t - before, t + after]` join a record at `t`.
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
    /// This side's records without a partner are emitted (left side of a left join,
    /// both sides of an outer join).
    emit_unmatched: bool,
    /// The other side emits partnerless records, so matches must be marked there.
    other_emits_unmatched: bool,
    joiner: Joiner<A, B, R>,
}

const UNMATCHED: u8 = 0;
const MATCHED: u8 = 1;

impl<K: Data, A: Data, B: Data, R: Data> Processor<K, A, K, R> for JoinSide<K, A, B, R> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, K, R>) -> Result<(), ProcessError> {
        ctx.schedule(1, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, R>,
        r: Record<K, A>,
    ) -> Result<(), ProcessError> {
        let kb = self.key_serde.serialize(&r.key)?;
        let (t, st) = (r.timestamp_ms, ctx.stream_time_ms());
        let closes_at = t
            .saturating_add(self.after_ms)
            .saturating_add(self.grace_ms);
        if st > closes_at {
            let value = self.this_serde.serialize_nullable(&r.value)?;
            let env = ctx.env();
            env.late_records += 1;
            env.dead_letter(DeadLetter {
                key: Some(kb),
                value,
                timestamp_ms: t,
                headers: r.headers.clone(),
                kind: "late",
                error: format!("record at {t} is too late for its join window (stream time {st})"),
                extra: vec![
                    (
                        "strom.window.start",
                        t.saturating_sub(self.before_ms).to_string(),
                    ),
                    (
                        "strom.window.end",
                        t.saturating_add(self.after_ms)
                            .saturating_add(1)
                            .to_string(),
                    ),
                    ("strom.stream.time", st.to_string()),
                    ("strom.lateness.ms", (st - closes_at).to_string()),
                ],
            });
            return Ok(());
        }
        let other = Family::new(&self.other_store, 0);
        let partners = other.fetch(
            ctx.env(),
            &kb,
            t.saturating_sub(self.before_ms),
            t.saturating_add(self.after_ms),
        )?;
        for p in &partners {
            let Some((&flag, bytes)) = p.value.split_first() else {
                return Err(ProcessError::user("corrupt join store entry"));
            };
            let partner = self.other_serde.deserialize(bytes)?;
            let out = (self.joiner)(Some(&r.value), Some(&partner));
            ctx.forward(Record {
                key: r.key.clone(),
                value: out,
                timestamp_ms: t.max(p.end),
                headers: r.headers.clone(),
            });
            if self.other_emits_unmatched && flag == UNMATCHED {
                let mut marked = p.value.clone();
                marked[0] = MATCHED;
                other.update(ctx.env(), &kb, p.end, p.start, marked)?;
            }
        }
        let seq = next_sequence(ctx.env(), &self.this_store)?;
        let mut value = vec![if partners.is_empty() {
            UNMATCHED
        } else {
            MATCHED
        }];
        value.extend(self.this_serde.serialize(&r.value)?);
        let slot = Slot {
            end: t,
            start: seq,
            close: t
                .saturating_add(self.before_ms)
                .saturating_add(self.after_ms)
                .saturating_add(1),
        };
        Family::new(&self.this_store, 0).put(ctx.env(), &kb, slot, value)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, R>,
        _schedule: ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        let this = Family::new(&self.this_store, 0);
        let bound = stream_time_ms.saturating_sub(self.grace_ms);
        for (kb, slot) in this.take_closed(ctx.env(), Cursor::Expire, bound)? {
            if self.emit_unmatched {
                let value = this.get(ctx.env(), &kb, slot.end, slot.start)?;
                if let Some((&UNMATCHED, bytes)) = value.as_deref().and_then(<[u8]>::split_first) {
                    let v = self.this_serde.deserialize(bytes)?;
                    let out = (self.joiner)(Some(&v), None);
                    ctx.forward(Record::new(self.key_serde.deserialize(&kb)?, out, slot.end));
                }
            }
            this.remove(ctx.env(), &kb, slot)?;
        }
        Ok(())
    }
}

/// Which records without a partner a join emits.
#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Inner windowed join: a result for every pair of records with equal keys within
    /// the window.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        let joiner = move |a: Option<&V>, b: Option<&V2>| match (a, b) {
            (Some(a), Some(b)) => Some(joiner(a, b)),
            _ => None,
        };
        self.windowed_join(other, joiner, windows, joined, Kind::Inner)
            .flat_map_values(|v: &Option<VR>| v.clone())
    }

    /// Left windowed join: also every left record that found no partner, once none can
    /// arrive any more (`None` for the right value).
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        let joiner = move |a: Option<&V>, b: Option<&V2>| a.map(|a| joiner(a, b));
        self.windowed_join(other, joiner, windows, joined, Kind::Left)
            .flat_map_values(|v: &Option<VR>| v.clone())
    }

    /// Outer windowed join: partnerless records of both sides too.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        self.windowed_join(other, joiner, windows, joined, Kind::Outer)
    }

    fn windowed_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        w: JoinWindows,
        joined: StreamJoined<K, V, V2>,
        kind: Kind,
    ) -> KStream<K, VR> {
        let ks = ArcSerde(joined.key_serde.clone());
        // Records with equal keys must meet in one task.
        let left = if self.key_changed {
            self.repartition(
                &format!("{}-left", joined.name),
                ks.clone(),
                ArcSerde(joined.left_serde.clone()),
            )
        } else {
            self.clone()
        };
        let right = if other.key_changed {
            other.repartition(
                &format!("{}-right", joined.name),
                ks,
                ArcSerde(joined.right_serde.clone()),
            )
        } else {
            other.clone()
        };
        let left_store = format!("{}-left-join", joined.name);
        let right_store = format!("{}-right-join", joined.name);
        {
            let mut s = self.builder.state.borrow_mut();
            s.add_store(&left_store);
            s.add_store(&right_store);
        }
        let joiner: Joiner<V, V2, VR> = Arc::new(joiner);
        let flipped: Joiner<V2, V, VR> = {
            let j = joiner.clone();
            Arc::new(move |b: Option<&V2>, a: Option<&V>| j(a, b))
        };
        let (left_emits, right_emits) = match kind {
            Kind::Inner => (false, false),
            Kind::Left => (true, false),
            Kind::Outer => (true, true),
        };
        let l = JoinSide {
            this_store: left_store.clone(),
            other_store: right_store.clone(),
            key_serde: joined.key_serde.clone(),
            this_serde: joined.left_serde.clone(),
            other_serde: joined.right_serde.clone(),
            before_ms: w.before_ms,
            after_ms: w.after_ms,
            grace_ms: w.grace_ms,
            emit_unmatched: left_emits,
            other_emits_unmatched: right_emits,
            joiner,
        };
        let r = JoinSide {
            this_store: right_store,
            other_store: left_store,
            key_serde: joined.key_serde.clone(),
            this_serde: joined.right_serde.clone(),
            other_serde: joined.left_serde.clone(),
            before_ms: w.after_ms,
            after_ms: w.before_ms,
            grace_ms: w.grace_ms,
            emit_unmatched: right_emits,
            other_emits_unmatched: left_emits,
            joiner: flipped,
        };
        let stores = vec![l.this_store.clone(), l.other_store.clone()];
        let left_out: KStream<K, VR> =
            left.add("JOIN-THIS", side_factory(l), stores.clone(), false);
        let right_out: KStream<K, VR> = right.add("JOIN-OTHER", side_factory(r), stores, false);
        left_out.merge(&right_out)
    }
}

fn side_factory<K: Data, A: Data, B: Data, R: Data>(side: JoinSide<K, A, B, R>) -> NodeFactory {
    Arc::new(move |_: &str| Box::new(TypedNode::<_, K, A, K, R>::new(side.clone())) as _)
}
