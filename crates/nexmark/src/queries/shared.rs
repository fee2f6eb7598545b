//! What the stateful queries (q3–q9) share: the event source with event time, the
//! lateness bound, and an order-preserving key for time indexes in stores.

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_streams::prelude::{
    Aggregation, JsonSerde, KStream, Serde, SerdeError, StreamsBuilder, UnitSerde,
};

use super::QueryTopics;
use crate::model::{Event, EventSerde};

/// How far behind stream time an event may arrive and still count: the grace of every
/// window and the time an auction stays open after it expires. Nexmark's Flink DDL
/// declares the same bound as its watermark (`dateTime - INTERVAL '4' SECOND`).
///
/// Flink fires a window once the watermark reaches `end - 1`, i.e. at a largest event
/// time of `end + 3999` ms; strom closes it at `end + 4000` ms (stream time ≥ end +
/// grace). The two agree on every input whose events are less than 4 s out of order.
pub const WATERMARK_DELAY_MS: i64 = 4_000;

/// The Nexmark events of `topics.input` (null keys, [`EventSerde`] values), with each
/// event's own time ([`Event::date_time`]) as its timestamp.
pub(crate) fn events(builder: &StreamsBuilder, topics: &QueryTopics) -> KStream<(), Event> {
    builder.stream_with_timestamps(&topics.input, UnitSerde, EventSerde::new(), |_, e, _| {
        Some(e.date_time())
    })
}

/// The start of the tumbling or hopping window of `size_ms` (aligned to the epoch, as
/// Flink's `TUMBLE`/`HOP`) that starts last at or before `t`.
pub(crate) fn window_start(t: i64, advance_ms: i64) -> i64 {
    t - t.rem_euclid(advance_ms)
}

/// Every value with the highest `score`, in arrival order: SQL's `RANK() ... = 1`, or a
/// join with the group's `MAX` (q5's hottest auctions, q7w's highest bids).
pub(crate) fn max_with_ties<V>(score: fn(&V) -> i64) -> Aggregation<V, Vec<V>, Vec<V>>
where
    V: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    let add = move |mut top: Vec<V>, v: V| {
        match top.first().map(score) {
            Some(best) if score(&v) < best => {}
            Some(best) if score(&v) == best => top.push(v),
            _ => top = vec![v],
        }
        top
    };
    let merge = move |a: Vec<V>, b: Vec<V>| b.into_iter().fold(a, add);
    Aggregation::new(Vec::new, add, merge, Vec::clone, JsonSerde::<Vec<V>>::new())
}

/// A pair of `i64`s as 16 bytes whose byte order is the pairs' order (big-endian with
/// the sign bit flipped): store keys such as `(close time, auction id)` then range-scan
/// in time order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OrderedPairSerde;

fn flip(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

impl Serde<(i64, i64)> for OrderedPairSerde {
    fn serialize(&self, value: &(i64, i64)) -> Result<Vec<u8>, SerdeError> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&flip(value.0));
        out.extend_from_slice(&flip(value.1));
        Ok(out)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<(i64, i64), SerdeError> {
        if bytes.len() != 16 {
            return Err(SerdeError::Length {
                expected: 16,
                got: bytes.len(),
            });
        }
        Ok((unflip(&bytes[..8]), unflip(&bytes[8..])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_pairs_sort_as_their_bytes() {
        let pairs = [
            (-5, 3),
            (-1, i64::MAX),
            (0, -7),
            (0, 0),
            (7, i64::MIN),
            (7, 2),
        ];
        let bytes: Vec<Vec<u8>> = pairs
            .iter()
            .map(|p| OrderedPairSerde.serialize(p).expect("serialize"))
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        for (p, b) in pairs.iter().zip(&bytes) {
            assert_eq!(OrderedPairSerde.deserialize(b).expect("deserialize"), *p);
        }
        assert!(OrderedPairSerde.deserialize(&[0; 3]).is_err());
    }

    #[test]
    fn max_with_ties_keeps_every_value_with_the_top_score() {
        let agg = max_with_ties(|v: &(i64, char)| v.0);
        let mut acc = agg.init();
        for v in [(3, 'a'), (5, 'b'), (1, 'c'), (5, 'd'), (4, 'e')] {
            acc = agg.add(acc, v);
        }
        assert_eq!(agg.finish(&acc), vec![(5, 'b'), (5, 'd')]);
        let other = agg.add(agg.init(), (5, 'x'));
        assert_eq!(agg.merge(acc.clone(), other).len(), 3);
        assert_eq!(
            agg.merge(acc, agg.add(agg.init(), (9, 'y'))),
            vec![(9, 'y')]
        );
    }

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(window_start(12_345, 10_000), 10_000);
        assert_eq!(window_start(10_000, 10_000), 10_000);
        assert_eq!(window_start(9_999, 2_000), 8_000);
    }
}
