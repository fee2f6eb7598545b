//! Deduplication: the first record per id within an event-time horizon passes, later
//! ones with the same id are dropped. State is `id → first timestamp` in a store (so it
//! is exactly-once with the task), expired by stream time through the time index.
//!
//! A record whose timestamp is more than the horizon behind stream time could repeat an
//! id whose entry already expired; it goes to the dead-letter topic (reason `late`)
//! rather than being let through unchecked. Records with one id must share a task:
//! derive the id from the partitioning key, or `repartition` by the id first.
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("payments", StringSerde, StringSerde)
//!     .dedupe_by("payment-ids", 60_000, |_, v: &String| v.clone(), StringSerde, StringSerde, StringSerde)
//!     .to("payments-unique", StringSerde, StringSerde);
//! let mut d = TopologyTestDriver::new(&builder.build().unwrap()).unwrap();
//! let (k, v) = ("acct".to_string(), "tx-1".to_string());
//! d.pipe("payments", &StringSerde, &StringSerde, &k, &v, 1_000).unwrap();
//! d.pipe("payments", &StringSerde, &StringSerde, &k, &v, 2_000).unwrap();
//! assert_eq!(d.read_output("payments-unique", &StringSerde, &StringSerde).unwrap().len(), 1);
//! ```

use std::sync::Arc;

use crate::dsl::KStream;
use crate::error::ProcessError;
use crate::processor::{Data, Processor, ProcessorContext, ScheduleId, TypedNode};
use crate::record::Record;
use crate::serdes::Serde;
use crate::task::{DeadLetter, PunctuationType};
use crate::topology::NodeFactory;
use crate::window::state::{Cursor, Family, Slot};

type IdFn<K, V, I> = Arc<dyn Fn(&K, &V) -> I + Send + Sync>;

/// The deduplication operator of one task.
struct Dedupe<K, V, I> {
    store: String,
    horizon_ms: i64,
    id: IdFn<K, V, I>,
    id_serde: Arc<dyn Serde<I>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V, I> Clone for Dedupe<K, V, I> {
    fn clone(&self) -> Self {
        Dedupe {
            store: self.store.clone(),
            horizon_ms: self.horizon_ms,
            id: self.id.clone(),
            id_serde: self.id_serde.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: Data, V: Data, I: 'static> Processor<K, V, K, V> for Dedupe<K, V, I> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, K, V>) -> Result<(), ProcessError> {
        ctx.schedule(1, PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, V>,
        r: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let (t, st) = (r.timestamp_ms, ctx.stream_time_ms());
        if t.saturating_add(self.horizon_ms) <= st {
            let key = self.key_serde.serialize_nullable(&r.key)?;
            let value = self.value_serde.serialize_nullable(&r.value)?;
            let env = ctx.env();
            env.late_records += 1;
            env.dead_letter(DeadLetter {
                key,
                value,
                timestamp_ms: t,
                headers: r.headers,
                kind: "late",
                error: format!(
                    "record at {t} is older than the deduplication horizon (stream time {st})"
                ),
                extra: vec![
                    ("strom.stream.time", st.to_string()),
                    ("strom.lateness.ms", (st - t - self.horizon_ms).to_string()),
                ],
            });
            return Ok(());
        }
        let id = self.id_serde.serialize(&(self.id)(&r.key, &r.value))?;
        let seen = Family::new(&self.store, 0);
        let first = seen.fetch(ctx.env(), &id, i64::MIN, i64::MAX)?;
        if let Some(e) = first.first() {
            if t.abs_diff(e.end) < self.horizon_ms as u64 {
                return Ok(()); // a duplicate
            }
            let old = Slot {
                end: e.end,
                start: 0,
                close: e.end.saturating_add(self.horizon_ms),
            };
            seen.remove(ctx.env(), &id, old)?;
        }
        let slot = Slot {
            end: t,
            start: 0,
            close: t.saturating_add(self.horizon_ms),
        };
        seen.put(ctx.env(), &id, slot, Vec::new())?;
        ctx.forward(r);
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, V>,
        _schedule: ScheduleId,
        stream_time_ms: i64,
    ) -> Result<(), ProcessError> {
        let seen = Family::new(&self.store, 0);
        for (id, slot) in seen.take_closed(ctx.env(), Cursor::Expire, stream_time_ms)? {
            seen.remove(ctx.env(), &id, slot)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Keeps the first record per `id(key, value)` within `horizon_ms` of event time, in
    /// the store `store_name`; the serdes encode the id (store key) and, for the
    /// dead-letter topic, the record.
    pub fn dedupe_by<I: 'static>(
        &self,
        store_name: &str,
        horizon_ms: i64,
        id: impl Fn(&K, &V) -> I + Send + Sync + 'static,
        id_serde: impl Serde<I>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        self.builder.state.borrow_mut().add_store(store_name);
        let op = Dedupe {
            store: store_name.to_string(),
            horizon_ms: horizon_ms.max(1),
            id: Arc::new(id),
            id_serde: Arc::new(id_serde),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        };
        let factory: NodeFactory =
            Arc::new(move |_: &str| Box::new(TypedNode::<_, K, V, K, V>::new(op.clone())) as _);
        self.add(
            "DEDUPE",
            factory,
            vec![store_name.to_string()],
            self.key_changed,
        )
    }
}
