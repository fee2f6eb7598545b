//! Stream–table and table–table joins. The table side is read through its value getter
//! (its store, through its filters and mappings), so both inputs must be co-partitioned:
//! they land in one task, and the runtime checks their partition counts at start.
//!
//! A table–table join reacts to changes of either side: it looks the key up on the other
//! side and emits the joined row, or a delete (`None`) when the join has no row for the
//! key any more (a tombstone can also be emitted for a key that had no joined row).

use std::sync::Arc;

use crate::dsl::{Getter, KStream, KTable};
use crate::processor::Data;
use crate::record::Record;

impl<K: Data, V: Data> KStream<K, V> {
    /// Stream–table inner join: each record joined with the table's current row for its
    /// key; records without a row are dropped.
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner = move |v: &V, t: Option<&VT>| t.map(|t| joiner(v, t));
        self.lookup_join(table, joiner)
            .flat_map_values(|v: &Option<VR>| v.clone())
    }

    /// Stream–table left join: every record, with `None` when the table has no row.
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.lookup_join(table, joiner)
    }

    fn lookup_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        if self.key_changed {
            self.builder.error(
                "a stream whose key changed must be repartitioned (KStream::repartition) before a table join",
            );
        }
        let Getter { stores, get } = table_getter(table, self);
        self.stateless_with_stores("JOIN-TABLE", stores, move |ctx, r: Record<K, V>| {
            let row = get(ctx.env(), &r.key)?;
            let value = joiner(&r.value, row.as_ref());
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers,
            });
            Ok(())
        })
    }
}

/// The table's getter, or a no-row getter after recording a build error.
fn table_getter<K: Data, VT: Data, X>(table: &KTable<K, VT>, at: &KStream<K, X>) -> Getter<K, VT> {
    match &table.getter {
        Some(g) => g.clone(),
        None => {
            at.builder
                .error("only materialised tables (from a topic or an aggregation) can be joined");
            Getter {
                stores: Vec::new(),
                get: Arc::new(|_, _| Ok(None)),
            }
        }
    }
}

type Combine<V, V2, VR> = Arc<dyn Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// Inner join: a row where both tables have one.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            Arc::new(move |a, b| match (a, b) {
                (Some(a), Some(b)) => Some(joiner(a, b)),
                _ => None,
            }),
        )
    }

    /// Left join: a row wherever this table has one.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(other, Arc::new(move |a, b| a.map(|a| joiner(a, b))))
    }

    /// Outer join: a row wherever either table has one.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            Arc::new(move |a, b| (a.is_some() || b.is_some()).then(|| joiner(a, b))),
        )
    }

    fn table_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        combine: Combine<V, V2, VR>,
    ) -> KTable<K, VR> {
        let this_get = table_getter(self, &self.changes);
        let other_get = table_getter(other, &self.changes);
        let mut stores = this_get.stores.clone();
        stores.extend(other_get.stores.iter().cloned());
        let (c, og) = (combine.clone(), other_get.get.clone());
        let left = self.changes.stateless_with_stores(
            "KTABLE-JOIN-THIS",
            stores.clone(),
            move |ctx, r: Record<K, Option<V>>| {
                let b = og(ctx.env(), &r.key)?;
                let value = c(r.value.as_ref(), b.as_ref());
                ctx.forward(Record {
                    key: r.key,
                    value,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
                Ok(())
            },
        );
        let (c, tg) = (combine.clone(), this_get.get.clone());
        let right = other.changes.stateless_with_stores(
            "KTABLE-JOIN-OTHER",
            stores.clone(),
            move |ctx, r: Record<K, Option<V2>>| {
                let a = tg(ctx.env(), &r.key)?;
                let value = c(a.as_ref(), r.value.as_ref());
                ctx.forward(Record {
                    key: r.key,
                    value,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
                Ok(())
            },
        );
        let (tg, og) = (this_get.get, other_get.get);
        let getter = Getter {
            stores,
            get: Arc::new(move |env, key| {
                let (a, b) = (tg(env, key)?, og(env, key)?);
                Ok(combine(a.as_ref(), b.as_ref()))
            }),
        };
        KTable {
            changes: left.merge(&right),
            getter: Some(getter),
        }
    }
}
