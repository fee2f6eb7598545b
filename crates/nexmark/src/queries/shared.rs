//! What the stateful queries (q3–q9) share: the lateness bound, a "maximum with ties"
//! aggregation, and an order-preserving key for time indexes in stores.

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_streams::prelude::{Aggregation, JsonSerde, Serde, SerdeError};

/// How far behind stream time an event may arrive and still count: the grace of every
/// window and the time an auction stays open after it expires. Nexmark's Flink DDL
/// declares the same bound as its watermark (`dateTime - INTERVAL '4' SECOND`).
///
/// Flink fires a window once the watermark reaches `end - 1`, i.e. at a largest event
/// time of `end + 3999` ms; strom closes it at `end + 4000` ms (stream time ≥ end +
/// grace). The two agree on every input whose events are less than 4 s out of order.
pub const WATERMARK_DELAY_MS: i64 = 4_000;

/// The key of a grouping by window alone (SQL's `GROUP BY window_start, window_end` with
/// no other column): every record of the stream in one group, so one task.
///
/// Keying by the window instead would spread windows over tasks, but each task's stream
/// time would then advance only with the windows it owns — a window would close once a
/// later window on the same partition had a record, and the last windows of a finite
/// input never. A single group sees the whole stream's time. It costs no parallelism:
/// in event time only the current window (and a few in their grace) receive records.
pub const WHOLE_STREAM: i64 = 0;

/// Every value with the highest `score`, in arrival order: SQL's `RANK() ... = 1`, or a
/// join with the group's `MAX` (q5's hottest auctions, q7w's highest bids).
pub fn max_with_ties<V>(score: fn(&V) -> i64) -> Aggregation<V, Vec<V>, Vec<V>>
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
pub struct OrderedPairSerde;

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
}
