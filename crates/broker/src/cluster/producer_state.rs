//! Producers, per partition: for each producer id, its epoch, the sequence ranges and
//! offsets of its last five batches, and its open transaction. From these the
//! partition answers three questions: is this batch a retry, a gap or fenced
//! (idempotence); where is the first record of a still-open transaction (the last
//! stable offset, which read_committed consumers do not pass); and which transactions
//! were aborted (the aborted-transaction list in Fetch responses). Rebuilt at start
//! from a snapshot plus the log after it ([`super::producer_snapshot`]).

use std::collections::{BTreeSet, HashMap, VecDeque};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strom_log::batch::control::ControlMarker;
use strom_log::BatchHeader;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection`
/// bound for idempotence).
const BATCHES_KEPT: usize = 5;

/// A batch's identity within its producer's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSequence {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Part of a transaction.
    pub transactional: bool,
}

impl BatchSequence {
    /// The sequence fields of a data batch's header, if the batch has a producer.
    pub fn of(header: &BatchHeader) -> Option<Self> {
        (header.producer_id >= 0 && !header.is_control()).then(|| BatchSequence {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: add_sequence(header.base_sequence, header.last_offset_delta as i32),
            transactional: header.is_transactional(),
        })
    }
}

/// What a producer's next batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// New: append it.
    Append,
    /// Already appended at these offsets (base, last): acknowledge without writing.
    Duplicate(u64, u64),
}

/// One appended batch: (first sequence, last sequence, base offset, last offset).
type BatchEntry = (i32, i32, u64, u64);

/// One producer's state in a partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Producer {
    pub epoch: i16,
    /// Last batches, oldest first.
    pub batches: VecDeque<BatchEntry>,
    /// First offset of its open transaction in this partition.
    pub txn_first_offset: Option<u64>,
    /// Epoch of the coordinator that wrote its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// The broker's clock when its last batch was recorded, for
    /// `producer.id.expiration.ms` (the broker's clock, not the producer's
    /// timestamps, so that producers writing old timestamps do not expire at once).
    /// Restored producers count from the restart (snapshots before this field too).
    #[serde(default = "strom_log::now_ms")]
    pub last_timestamp_ms: i64,
}

/// Equal when the sequence and transaction state are; when the producer was last
/// heard of is bookkeeping for expiry (a replay and a snapshot read it differently).
impl PartialEq for Producer {
    fn eq(&self, other: &Self) -> bool {
        (
            self.epoch,
            &self.batches,
            self.txn_first_offset,
            self.coordinator_epoch,
        ) == (
            other.epoch,
            &other.batches,
            other.txn_first_offset,
            other.coordinator_epoch,
        )
    }
}

impl Eq for Producer {}

/// A transaction that was aborted: read_committed consumers skip its producer's
/// records from `first_offset` up to the abort marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// Open transactions: (first offset, producer id).
    ongoing: BTreeSet<(u64, i64)>,
    /// Aborted transactions, in marker order.
    aborted: Vec<AbortedTxn>,
}

/// Sequence numbers wrap from `i32::MAX` to 0.
fn add_sequence(sequence: i32, n: i32) -> i32 {
    ((i64::from(sequence) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    /// The state a snapshot holds.
    pub fn from_parts(producers: HashMap<i64, Producer>, aborted: Vec<AbortedTxn>) -> Self {
        let ongoing = producers
            .iter()
            .filter_map(|(id, p)| p.txn_first_offset.map(|first| (first, *id)))
            .collect();
        ProducerStates {
            producers,
            ongoing,
            aborted,
        }
    }

    /// What a snapshot stores: every producer and the aborted transactions.
    pub fn parts(&self) -> (&HashMap<i64, Producer>, &[AbortedTxn]) {
        (&self.producers, &self.aborted)
    }

    /// Checks `batch` against what its producer appended before.
    pub fn check(&self, batch: &BatchSequence) -> Result<Check, ResponseError> {
        let Some(producer) = self.producers.get(&batch.producer_id) else {
            // A producer this partition has not seen starts at sequence 0.
            return if batch.first_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        };
        if batch.epoch < producer.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if producer.txn_first_offset.is_some() && !batch.transactional {
            // A transactional producer's open transaction cannot take plain writes.
            return Err(ResponseError::InvalidTxnState);
        }
        if batch.epoch > producer.epoch {
            return if batch.first_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some((_, _, base, last)) = producer.batches.iter().find(|(first, last, _, _)| {
            *first == batch.first_sequence && *last == batch.last_sequence
        }) {
            return Ok(Check::Duplicate(*base, *last));
        }
        let expected = producer
            .batches
            .back()
            .map_or(0, |(_, last, _, _)| add_sequence(*last, 1));
        if batch.first_sequence == expected {
            Ok(Check::Append)
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber)
        }
    }

    /// The epoch this partition last saw from `producer_id`, if any.
    #[cfg(test)]
    pub fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|p| p.epoch)
    }

    /// Every producer: (id, epoch, last sequence, coordinator epoch, open transaction's
    /// first offset), by producer id.
    pub fn active(&self) -> Vec<(i64, i16, i32, i32, Option<u64>)> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(id, p)| {
                (
                    *id,
                    p.epoch,
                    p.batches.back().map_or(-1, |b| b.1),
                    p.coordinator_epoch,
                    p.txn_first_offset,
                )
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// Records an appended batch.
    pub fn record(&mut self, batch: &BatchSequence, base_offset: u64, last_offset: u64) {
        self.record_at(batch, base_offset, last_offset, strom_log::now_ms());
    }

    /// [`record`](Self::record) with the broker's clock reading `now_ms`.
    pub fn record_at(
        &mut self,
        batch: &BatchSequence,
        base_offset: u64,
        last_offset: u64,
        now_ms: i64,
    ) {
        let producer = self.producers.entry(batch.producer_id).or_default();
        if batch.epoch != producer.epoch {
            producer.epoch = batch.epoch;
            producer.batches.clear();
        }
        producer.last_timestamp_ms = producer.last_timestamp_ms.max(now_ms);
        producer.batches.push_back((
            batch.first_sequence,
            batch.last_sequence,
            base_offset,
            last_offset,
        ));
        while producer.batches.len() > BATCHES_KEPT {
            producer.batches.pop_front();
        }
        if batch.transactional && producer.txn_first_offset.is_none() {
            producer.txn_first_offset = Some(base_offset);
            self.ongoing.insert((base_offset, batch.producer_id));
        }
    }

    /// Records the marker at `offset` that ends `producer_id`'s transaction in this
    /// partition. A marker with a newer epoch (transactions V2 bump the epoch at every
    /// end, and a coordinator that fences a producer does too) resets its sequence.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: ControlMarker,
        offset: u64,
    ) {
        let producer = self.producers.entry(producer_id).or_default();
        if epoch > producer.epoch {
            producer.epoch = epoch;
            producer.batches.clear();
        }
        producer.coordinator_epoch = marker.coordinator_epoch;
        if let Some(first) = producer.txn_first_offset.take() {
            self.ongoing.remove(&(first, producer_id));
            if !marker.commit {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset: first,
                    last_offset: offset,
                });
            }
        }
    }

    /// The first offset of the oldest open transaction: read_committed consumers read
    /// below it only (the last stable offset is the smaller of this and the log end).
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.ongoing.first().map(|(offset, _)| *offset)
    }

    /// Aborted transactions with records in `[from, to)`: those whose marker is at or
    /// after `from` and whose first record is before `to`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the aborted transactions whose markers, `(producer id, offset)`, are in
    /// `removed` (the log cleaner removed them).
    pub fn forget_aborted(&mut self, removed: &[(i64, u64)]) {
        self.aborted
            .retain(|a| !removed.contains(&(a.producer_id, a.last_offset)));
    }

    /// Forgets aborted transactions wholly before the log start.
    pub fn prune(&mut self, log_start_offset: u64) {
        let gone = self
            .aborted
            .partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..gone);
    }
}

impl ProducerStates {
    /// Makes room for `producer_id` within `max` producers: nothing to do for a known
    /// producer or below the bound; otherwise the producer heard of least recently
    /// that has no open transaction here is forgotten (its next batch must start a new
    /// sequence) and its id returned. `Err(())` when every producer is in an open
    /// transaction, which their transaction timeouts bound.
    pub fn make_room(&mut self, producer_id: i64, max: usize) -> Result<Option<i64>, ()> {
        if self.producers.len() < max || self.producers.contains_key(&producer_id) {
            return Ok(None);
        }
        let evicted = self
            .producers
            .iter()
            .filter(|(_, p)| p.txn_first_offset.is_none())
            .min_by_key(|(id, p)| (p.last_timestamp_ms, **id))
            .map(|(id, _)| *id)
            .ok_or(())?;
        self.producers.remove(&evicted);
        Ok(Some(evicted))
    }

    /// Forgets producers last heard of before `cutoff_ms` that have no open
    /// transaction here (Kafka's `producer.id.expiration.ms`); returns how many. A
    /// forgotten producer's next batch must start a new sequence.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, p| p.txn_first_offset.is_some() || p.last_timestamp_ms >= cutoff_ms);
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, first: i32, count: i32) -> BatchSequence {
        BatchSequence {
            producer_id,
            epoch,
            first_sequence: first,
            last_sequence: add_sequence(first, count - 1),
            transactional: false,
        }
    }

    fn txn_batch(producer_id: i64, epoch: i16, first: i32, count: i32) -> BatchSequence {
        BatchSequence {
            transactional: true,
            ..batch(producer_id, epoch, first, count)
        }
    }

    const COMMIT: ControlMarker = ControlMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    const ABORT: ControlMarker = ControlMarker {
        commit: false,
        coordinator_epoch: 0,
    };

    #[test]
    fn idle_producers_expire_but_not_while_their_transaction_is_open() {
        let mut states = ProducerStates::default();
        states.record_at(&batch(1, 0, 0, 1), 0, 0, 1_000);
        states.record_at(&txn_batch(2, 0, 0, 1), 1, 1, 1_000);
        states.record_at(&batch(3, 0, 0, 1), 2, 2, 5_000);
        assert_eq!(states.expire(2_000), 1, "only the idle plain producer");
        assert_eq!(
            states.check(&batch(1, 0, 1, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber),
            "a forgotten producer starts again at sequence 0"
        );
        assert_eq!(states.check(&batch(3, 0, 1, 1)), Ok(Check::Append));
        states.record_marker(2, 0, COMMIT, 3);
        assert_eq!(states.expire(2_000), 1, "its transaction ended");
    }

    #[test]
    fn a_full_partition_forgets_its_least_recent_idle_producer_for_a_new_one() {
        let mut states = ProducerStates::default();
        states.record_at(&batch(1, 0, 0, 1), 0, 0, 1_000);
        states.record_at(&txn_batch(2, 0, 0, 1), 1, 1, 500);
        states.record_at(&batch(3, 0, 0, 1), 2, 2, 2_000);
        assert_eq!(states.make_room(3, 3), Ok(None), "a known producer");
        assert_eq!(states.make_room(4, 4), Ok(None), "below the bound");
        assert_eq!(
            states.make_room(4, 3),
            Ok(Some(1)),
            "not 2: its transaction is open"
        );
        states.record_at(&batch(4, 0, 0, 1), 3, 3, 3_000);
        assert_eq!(states.make_room(5, 3), Ok(Some(3)));
        let mut all_open = ProducerStates::default();
        all_open.record_at(&txn_batch(2, 0, 0, 1), 1, 1, 500);
        assert_eq!(all_open.make_room(9, 1), Err(()));
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&batch(7, 0, 0, 3)), Ok(Check::Append));
        states.record(&batch(7, 0, 0, 3), 10, 12);
        assert_eq!(
            states.check(&batch(7, 0, 0, 3)),
            Ok(Check::Duplicate(10, 12))
        );
        assert_eq!(
            states.check(&batch(7, 0, 4, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(states.check(&batch(7, 0, 3, 2)), Ok(Check::Append));
        assert_eq!(
            states.check(&batch(8, 0, 5, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber),
            "unknown producer mid-sequence"
        );
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 1, 0, 1), 0, 0);
        assert_eq!(
            states.check(&batch(7, 0, 1, 1)),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            states.check(&batch(7, 2, 5, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(states.check(&batch(7, 2, 0, 1)), Ok(Check::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut states = ProducerStates::default();
        for n in 0..7 {
            states.record(&batch(1, 0, n, 1), n as u64, n as u64);
        }
        assert_eq!(states.check(&batch(1, 0, 6, 1)), Ok(Check::Duplicate(6, 6)));
        assert_eq!(
            states.check(&batch(1, 0, 1, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber),
            "forgotten"
        );
        let mut wrapping = ProducerStates::default();
        wrapping.record(&batch(2, 0, i32::MAX - 1, 2), 0, 1);
        assert_eq!(wrapping.check(&batch(2, 0, 0, 1)), Ok(Check::Append));
    }

    #[test]
    fn open_transactions_hold_back_the_last_stable_offset() {
        let mut states = ProducerStates::default();
        states.record(&txn_batch(1, 0, 0, 2), 10, 11);
        states.record(&txn_batch(2, 0, 0, 1), 12, 12);
        states.record(&txn_batch(1, 0, 2, 1), 13, 13);
        assert_eq!(states.first_unstable_offset(), Some(10));
        states.record_marker(1, 0, COMMIT, 14);
        assert_eq!(states.first_unstable_offset(), Some(12));
        states.record_marker(2, 0, ABORT, 15);
        assert_eq!(states.first_unstable_offset(), None);
        assert_eq!(
            states.aborted_between(0, 100),
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 12,
                last_offset: 15
            }]
        );
        // The classic protocol keeps the epoch and the sequence across transactions.
        assert_eq!(states.check(&txn_batch(1, 0, 3, 1)), Ok(Check::Append));
    }

    #[test]
    fn aborted_transactions_are_found_by_range_and_pruned_by_log_start() {
        let mut states = ProducerStates::default();
        for (n, first) in [0u64, 10, 20].into_iter().enumerate() {
            states.record(&txn_batch(5, 0, n as i32 * 2, 2), first, first + 1);
            states.record_marker(5, 0, ABORT, first + 2);
        }
        let firsts = |v: Vec<AbortedTxn>| v.iter().map(|a| a.first_offset).collect::<Vec<_>>();
        assert_eq!(firsts(states.aborted_between(3, 21)), vec![10, 20]);
        assert_eq!(firsts(states.aborted_between(2, 10)), vec![0]);
        assert_eq!(firsts(states.aborted_between(23, 50)), Vec::<u64>::new());
        states.prune(13);
        assert_eq!(firsts(states.aborted_between(0, 50)), vec![20]);
    }

    #[test]
    fn plain_writes_inside_an_open_transaction_are_refused() {
        let mut states = ProducerStates::default();
        states.record(&txn_batch(3, 0, 0, 1), 0, 0);
        assert_eq!(
            states.check(&batch(3, 0, 1, 1)),
            Err(ResponseError::InvalidTxnState)
        );
        states.record_marker(3, 0, COMMIT, 1);
        assert_eq!(states.check(&batch(3, 0, 1, 1)), Ok(Check::Append));
    }

    #[test]
    fn a_marker_with_a_bumped_epoch_fences_late_writes_of_the_old_one() {
        // Transactions V2: the coordinator ends each transaction with epoch + 1.
        let mut states = ProducerStates::default();
        states.record(&txn_batch(9, 4, 0, 3), 0, 2);
        states.record_marker(9, 5, COMMIT, 3);
        assert_eq!(
            states.check(&txn_batch(9, 4, 3, 1)),
            Err(ResponseError::InvalidProducerEpoch),
            "a late batch of the finished transaction"
        );
        assert_eq!(states.check(&txn_batch(9, 5, 0, 1)), Ok(Check::Append));
        assert_eq!(states.epoch(9), Some(5));
    }
}
