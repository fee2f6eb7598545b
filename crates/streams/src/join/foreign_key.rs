//! Foreign-key table–table joins: each row `(k, a)` of the left table joins the right
//! table's row for `fk(a)`. The tables are partitioned differently, so the join runs in
//! both of their tasks through two internal topics, as in Kafka Streams (KIP-213):
//!
//! 1. left task: a change of `(k, a)` sends a *subscription* `(fk(a), k, a, hash(a))` to
//!    `<app>-<name>-fk-subscription` (partitioned by the foreign key), an unsubscription
//!    to the old foreign key when it changed, and a delete of the result when `a` went;
//! 2. right task: subscriptions are kept in `<name>-fk-subscriptions` (`fk ‖ k → a`); a
//!    subscription is answered with the joined row at once, and a change of the right row
//!    `fk` answers every subscription of `fk` — to `<app>-<name>-fk-response`
//!    (partitioned by `k`);
//! 3. left task: a response whose `hash(a)` no longer matches the left row is stale (the
//!    row changed since) and dropped; the others are the result table's changes.

use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use crate::dsl::{Getter, KStream, KTable};
use crate::error::ProcessError;
use crate::processor::{Data, Processor, ProcessorContext, StoreHandle, TypedNode};
use crate::record::{OutputRecord, RawRecord, Record};
use crate::serdes::{BytesSerde, Serde};
use crate::topology::{Decoder, ErasedRecord, NodeFactory, TopicName};

/// Names and serdes of a foreign-key join.
pub struct FkJoined<K, V, KO, VR> {
    name: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    foreign_key_serde: Arc<dyn Serde<KO>>,
    result_serde: Arc<dyn Serde<VR>>,
}

impl<K: 'static, V: 'static, KO: 'static, VR: 'static> FkJoined<K, V, KO, VR> {
    /// A join named `name` (its internal topics and store are named after it) with the
    /// left table's key and value serdes, the foreign key's serde (it must encode keys as
    /// the right table's topic does) and the result's serde.
    pub fn with(
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        foreign_key_serde: impl Serde<KO>,
        result_serde: impl Serde<VR>,
    ) -> Self {
        FkJoined {
            name: name.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            foreign_key_serde: Arc::new(foreign_key_serde),
            result_serde: Arc::new(result_serde),
        }
    }
}

/// 64-bit FNV-1a: identifies the left value a response was computed from.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn corrupt(what: &str) -> ProcessError {
    ProcessError::user(format!("corrupt foreign-key join {what}"))
}

/// A subscription: `[1 = subscribe | 0 = unsubscribe] ‖ hash ‖ len(k) ‖ k ‖ a`.
fn encode_subscription(k: &[u8], a: Option<&[u8]>) -> Vec<u8> {
    let mut out = vec![u8::from(a.is_some())];
    out.extend_from_slice(&a.map_or(0, fingerprint).to_be_bytes());
    out.extend_from_slice(&(k.len() as u32).to_be_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(a.unwrap_or_default());
    out
}

/// (k, Some((a, hash)) for a subscription or None for an unsubscription).
type Subscription = (Vec<u8>, Option<(Vec<u8>, u64)>);

fn decode_subscription(b: &[u8]) -> Result<Subscription, ProcessError> {
    let flag = *b.first().ok_or_else(|| corrupt("subscription"))?;
    let hash = u64::from_be_bytes(
        b.get(1..9)
            .ok_or_else(|| corrupt("subscription"))?
            .try_into()
            .map_err(|_| corrupt("subscription"))?,
    );
    let len = u32::from_be_bytes(
        b.get(9..13)
            .ok_or_else(|| corrupt("subscription"))?
            .try_into()
            .map_err(|_| corrupt("subscription"))?,
    ) as usize;
    let k = b
        .get(13..13 + len)
        .ok_or_else(|| corrupt("subscription"))?
        .to_vec();
    let a = b[13 + len..].to_vec();
    Ok((k, (flag == 1).then_some((a, hash))))
}

/// A response: `hash ‖ [1 = a row | 0 = no row] ‖ result`.
fn encode_response(hash: u64, result: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = hash.to_be_bytes().to_vec();
    out.push(u8::from(result.is_some()));
    out.extend(result.unwrap_or_default());
    out
}

/// The key of a stored subscription: `len(fk) ‖ fk ‖ k` (a foreign key's subscriptions
/// are one range).
fn subscription_key(fk: &[u8], k: &[u8]) -> Vec<u8> {
    let mut out = (fk.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(fk);
    out.extend_from_slice(k);
    out
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Step 1: the left table's changes become subscriptions.
struct Subscribe<K, V, KO, VR> {
    topic: String,
    previous: StoreHandle<Vec<u8>, Vec<u8>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    foreign_key_serde: Arc<dyn Serde<KO>>,
    foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
    _result: PhantomData<fn() -> VR>,
}

impl<K: Data, V: Data, KO: 'static, VR: Data> Processor<K, Option<V>, K, Option<VR>>
    for Subscribe<K, V, KO, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, Option<VR>>,
        r: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        let k = self.key_serde.serialize(&r.key)?;
        let new = match &r.value {
            Some(a) => Some((
                self.foreign_key_serde.serialize(&(self.foreign_key)(a))?,
                self.value_serde.serialize(a)?,
            )),
            None => None,
        };
        let old_fk = ctx.store(&self.previous)?.get(&k)?;
        let send =
            |ctx: &mut ProcessorContext<'_, '_, K, Option<VR>>, fk: Vec<u8>, a: Option<&[u8]>| {
                ctx.send(OutputRecord {
                    topic: self.topic.clone(),
                    partition: None,
                    value: Some(encode_subscription(&k, a)),
                    key: Some(fk),
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers.clone(),
                });
            };
        if let Some(old) = old_fk.filter(|old| new.as_ref().is_none_or(|(fk, _)| fk != old)) {
            send(ctx, old, None);
        }
        match new {
            Some((fk, a)) => {
                ctx.store(&self.previous)?.put(&k, &fk)?;
                send(ctx, fk, Some(&a));
            }
            None => {
                ctx.store(&self.previous)?.delete(&k)?;
                ctx.forward(Record {
                    key: r.key,
                    value: None,
                    timestamp_ms: r.timestamp_ms,
                    headers: r.headers,
                });
            }
        }
        Ok(())
    }
}

type Combine<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Step 2: the right table's side — subscriptions stored, answered, and re-answered on
/// every change of their right row.
struct Answer<KO, VO, V, VR> {
    response_topic: String,
    subscriptions: StoreHandle<Vec<u8>, Vec<u8>>,
    right: Getter<KO, VO>,
    foreign_key_serde: Arc<dyn Serde<KO>>,
    value_serde: Arc<dyn Serde<V>>,
    result_serde: Arc<dyn Serde<VR>>,
    combine: Combine<V, VO, VR>,
}

impl<KO: Data, VO: Data, V: Data, VR: Data> Answer<KO, VO, V, VR> {
    fn respond<KX: Data, VX: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, '_, KX, VX>,
        k: Vec<u8>,
        a: &[u8],
        hash: u64,
        b: Option<&VO>,
        r: (&i64, &crate::record::Headers),
    ) -> Result<(), ProcessError> {
        let a = self.value_serde.deserialize(a)?;
        let result = match (self.combine)(&a, b) {
            Some(v) => Some(self.result_serde.serialize(&v)?),
            None => None,
        };
        ctx.send(OutputRecord {
            topic: self.response_topic.clone(),
            partition: None,
            key: Some(k),
            value: Some(encode_response(hash, result)),
            timestamp_ms: *r.0,
            headers: r.1.clone(),
        });
        Ok(())
    }
}

/// A subscription arriving at the right table's task.
struct OnSubscription<KO, VO, V, VR>(Arc<Answer<KO, VO, V, VR>>);

impl<KO: Data, VO: Data, V: Data, VR: Data> Processor<KO, Vec<u8>, KO, Vec<u8>>
    for OnSubscription<KO, VO, V, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KO, Vec<u8>>,
        r: Record<KO, Vec<u8>>,
    ) -> Result<(), ProcessError> {
        let s = &self.0;
        let fk = s.foreign_key_serde.serialize(&r.key)?;
        let (k, sub) = decode_subscription(&r.value)?;
        let key = subscription_key(&fk, &k);
        match sub {
            None => ctx.store(&s.subscriptions)?.delete(&key)?,
            Some((a, hash)) => {
                let mut stored = hash.to_be_bytes().to_vec();
                stored.extend_from_slice(&a);
                ctx.store(&s.subscriptions)?.put(&key, &stored)?;
                let b = (s.right.get)(ctx.env(), &r.key)?;
                s.respond(ctx, k, &a, hash, b.as_ref(), (&r.timestamp_ms, &r.headers))?;
            }
        }
        Ok(())
    }
}

/// A change of the right table: every subscription of its key is answered again.
struct OnRightChange<KO, VO, V, VR>(Arc<Answer<KO, VO, V, VR>>);

impl<KO: Data, VO: Data, V: Data, VR: Data> Processor<KO, Option<VO>, KO, Option<VO>>
    for OnRightChange<KO, VO, V, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, KO, Option<VO>>,
        r: Record<KO, Option<VO>>,
    ) -> Result<(), ProcessError> {
        let s = &self.0;
        let fk = s.foreign_key_serde.serialize(&r.key)?;
        let prefix = subscription_key(&fk, &[]);
        let upper = match prefix_end(&prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        let subs = ctx
            .store(&s.subscriptions)?
            .range((Bound::Included(prefix.clone()), upper))?;
        for (key, stored) in subs {
            let k = key[prefix.len()..].to_vec();
            let hash = u64::from_be_bytes(
                stored
                    .get(..8)
                    .ok_or_else(|| corrupt("subscription store"))?
                    .try_into()
                    .map_err(|_| corrupt("subscription store"))?,
            );
            s.respond(
                ctx,
                k,
                &stored[8..],
                hash,
                r.value.as_ref(),
                (&r.timestamp_ms, &r.headers),
            )?;
        }
        Ok(())
    }
}

/// Step 3: responses that still match the left row become result changes.
struct Resolve<K, V, VR> {
    left: Getter<K, V>,
    value_serde: Arc<dyn Serde<V>>,
    result_serde: Arc<dyn Serde<VR>>,
}

impl<K: Data, V: Data, VR: Data> Processor<K, Vec<u8>, K, Option<VR>> for Resolve<K, V, VR> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, K, Option<VR>>,
        r: Record<K, Vec<u8>>,
    ) -> Result<(), ProcessError> {
        let b = &r.value;
        let hash = u64::from_be_bytes(
            b.get(..8)
                .ok_or_else(|| corrupt("response"))?
                .try_into()
                .map_err(|_| corrupt("response"))?,
        );
        let current = (self.left.get)(ctx.env(), &r.key)?;
        let Some(a) = current else {
            return Ok(()); // the row went since: its delete was already emitted
        };
        if fingerprint(&self.value_serde.serialize(&a)?) != hash {
            return Ok(()); // stale: a newer subscription answers
        }
        let value = match b.get(8) {
            Some(1) => Some(self.result_serde.deserialize(&b[9..])?),
            _ => None,
        };
        ctx.forward(Record {
            key: r.key,
            value,
            timestamp_ms: r.timestamp_ms,
            headers: r.headers,
        });
        Ok(())
    }
}

fn node<P, KI: Data, VI: Data, KO: Data, VO: Data>(
    make: impl Fn() -> P + Send + Sync + 'static,
) -> NodeFactory
where
    P: Processor<KI, VI, KO, VO>,
{
    Arc::new(move |_: &str| Box::new(TypedNode::<_, KI, VI, KO, VO>::new(make())) as _)
}

fn bytes_decoder<K: Data>(key_serde: Arc<dyn Serde<K>>) -> Decoder {
    Arc::new(move |raw: &RawRecord| {
        Ok(ErasedRecord {
            key: Box::new(key_serde.deserialize_nullable(raw.key.as_deref())?),
            value: Box::new(BytesSerde.deserialize_nullable(raw.value.as_deref())?),
            timestamp_ms: raw.timestamp_ms,
            headers: raw.headers.clone(),
        })
    })
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Foreign-key inner join: each row joins the `other` row whose key is
    /// `foreign_key(value)`; rows without one have no result.
    pub fn join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        joined: FkJoined<K, V, KO, VR>,
    ) -> KTable<K, VR> {
        let combine: Combine<V, VO, VR> = Arc::new(move |a, b| b.map(|b| joiner(a, b)));
        self.fk_join(other, Arc::new(foreign_key), combine, joined)
    }

    /// Foreign-key left join: every row, with `None` when the other table has no row for
    /// its foreign key.
    pub fn left_join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        joined: FkJoined<K, V, KO, VR>,
    ) -> KTable<K, VR> {
        let combine: Combine<V, VO, VR> = Arc::new(move |a, b| Some(joiner(a, b)));
        self.fk_join(other, Arc::new(foreign_key), combine, joined)
    }

    fn fk_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        combine: Combine<V, VO, VR>,
        j: FkJoined<K, V, KO, VR>,
    ) -> KTable<K, VR> {
        let builder = self.changes.builder.clone();
        let (Some(left), Some(right)) = (self.getter.clone(), other.getter.clone()) else {
            builder
                .error("only materialised tables (from a topic or an aggregation) can be joined");
            return KTable {
                changes: self
                    .changes
                    .stateless_with_stores("FK-NONE", Vec::new(), |_, _| Ok(())),
                getter: None,
            };
        };
        let sub_topic = TopicName::Internal(format!("{}-fk-subscription", j.name));
        let resp_topic = TopicName::Internal(format!("{}-fk-response", j.name));
        let (sub_topic_name, resp_topic_name) = (sub_topic.clone(), resp_topic.clone());
        let previous = StoreHandle::new(&format!("{}-fk-previous", j.name), BytesSerde, BytesSerde);
        let subscriptions = StoreHandle::new(
            &format!("{}-fk-subscriptions", j.name),
            BytesSerde,
            BytesSerde,
        );
        {
            let mut s = builder.state.borrow_mut();
            s.add_store(previous.name());
            s.add_store(subscriptions.name());
            s.repartition_topics.push(sub_topic.clone());
            s.repartition_topics.push(resp_topic.clone());
        }
        // 1. Left changes → subscriptions (and result deletes).
        let (st, prev, ks, vs, fks) = (
            sub_topic.clone(),
            previous.clone(),
            j.key_serde.clone(),
            j.value_serde.clone(),
            j.foreign_key_serde.clone(),
        );
        let subscribe = Arc::new(move |app: &str| {
            Box::new(TypedNode::<_, K, Option<V>, K, Option<VR>>::new(
                Subscribe {
                    topic: st.resolve(app),
                    previous: prev.clone(),
                    key_serde: ks.clone(),
                    value_serde: vs.clone(),
                    foreign_key_serde: fks.clone(),
                    foreign_key: foreign_key.clone(),
                    _result: PhantomData,
                },
            )) as _
        });
        let deletes: KStream<K, Option<VR>> = self.changes.add(
            "FK-SUBSCRIBE",
            subscribe,
            vec![previous.name().to_string()],
            false,
        );
        // 2. The right side: subscriptions in, responses out.
        let answer_stores = {
            let mut v = right.stores.clone();
            v.push(subscriptions.name().to_string());
            v
        };
        let make_answer = {
            let (rt, subs, right, fks, vs, rs) = (
                resp_topic.clone(),
                subscriptions.clone(),
                right.clone(),
                j.foreign_key_serde.clone(),
                j.value_serde.clone(),
                j.result_serde.clone(),
            );
            move |app: &str| {
                Arc::new(Answer {
                    response_topic: rt.resolve(app),
                    subscriptions: subs.clone(),
                    right: right.clone(),
                    foreign_key_serde: fks.clone(),
                    value_serde: vs.clone(),
                    result_serde: rs.clone(),
                    combine: combine.clone(),
                })
            }
        };
        let make_answer = Arc::new(make_answer);
        let subs_in: KStream<KO, Vec<u8>> = {
            let n = builder
                .state
                .borrow_mut()
                .add_source(sub_topic, bytes_decoder(j.foreign_key_serde.clone()));
            KStream::at(&builder, n, false)
        };
        let ma = make_answer.clone();
        let on_sub: NodeFactory = Arc::new(move |app: &str| {
            Box::new(TypedNode::<_, KO, Vec<u8>, KO, Vec<u8>>::new(
                OnSubscription(ma(app)),
            )) as _
        });
        let answered: KStream<KO, Vec<u8>> =
            subs_in.add("FK-SUBSCRIPTIONS", on_sub, answer_stores.clone(), false);
        let on_change: NodeFactory = Arc::new(move |app: &str| {
            Box::new(TypedNode::<_, KO, Option<VO>, KO, Option<VO>>::new(
                OnRightChange(make_answer(app)),
            )) as _
        });
        let reanswered: KStream<KO, Option<VO>> =
            other
                .changes
                .add("FK-RIGHT-CHANGE", on_change, answer_stores, false);
        {
            // The nodes that produce to the internal topics (their partition counts
            // come from the sub-topologies that read them).
            let mut s = builder.state.borrow_mut();
            s.repartition_sinks
                .insert(deletes.node, sub_topic_name.clone());
            s.repartition_sinks
                .insert(answered.node, resp_topic_name.clone());
            s.repartition_sinks.insert(reanswered.node, resp_topic_name);
        }
        // 3. Responses → result changes.
        let resp_in: KStream<K, Vec<u8>> = {
            let n = builder
                .state
                .borrow_mut()
                .add_source(resp_topic, bytes_decoder(j.key_serde.clone()));
            KStream::at(&builder, n, false)
        };
        let (lg, vs, rs) = (left.clone(), j.value_serde.clone(), j.result_serde.clone());
        let resolved: KStream<K, Option<VR>> = resp_in.add(
            "FK-RESOLVE",
            node(move || Resolve {
                left: lg.clone(),
                value_serde: vs.clone(),
                result_serde: rs.clone(),
            }),
            left.stores.clone(),
            false,
        );
        KTable {
            changes: deletes.merge(&resolved),
            getter: None,
        }
    }
}
