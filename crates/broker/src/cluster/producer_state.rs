//! Idempotent producers, per partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last five batches, so that a retried batch is
//! acknowledged with its original offsets instead of being written twice, and a gap
//! in the sequence is refused (OUT_OF_ORDER_SEQUENCE_NUMBER). Rebuilt from the log's
//! batch headers at start, so it survives restarts and crashes like the data does.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::ResponseError;
use strom_log::{BatchHeader, LogError, PartitionLog};

/// How much of a partition's tail is read to rebuild its producers at start.
const REBUILD_TAIL_BYTES: u64 = 256 * 1024 * 1024;

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
}

impl BatchSequence {
    /// The sequence fields of a batch header, if the batch has a producer.
    pub fn of(header: &BatchHeader) -> Option<Self> {
        (header.producer_id >= 0).then(|| BatchSequence {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: add_sequence(header.base_sequence, header.last_offset_delta as i32),
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

#[derive(Debug, Clone, Default)]
struct Producer {
    epoch: i16,
    /// (first sequence, last sequence, base offset, last offset), oldest first.
    batches: VecDeque<(i32, i32, u64, u64)>,
}

/// The producers of one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

/// Sequence numbers wrap from `i32::MAX` to 0.
fn add_sequence(sequence: i32, n: i32) -> i32 {
    ((i64::from(sequence) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
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

    /// Every producer with its epoch and last sequence, by producer id.
    pub fn active(&self) -> Vec<(i64, i16, i32)> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(id, p)| (*id, p.epoch, p.batches.back().map_or(-1, |b| b.1)))
            .collect();
        all.sort_unstable();
        all
    }

    /// Records an appended batch.
    pub fn record(&mut self, batch: &BatchSequence, base_offset: u64, last_offset: u64) {
        let producer = self.producers.entry(batch.producer_id).or_default();
        if batch.epoch != producer.epoch {
            producer.epoch = batch.epoch;
            producer.batches.clear();
        }
        producer.batches.push_back((
            batch.first_sequence,
            batch.last_sequence,
            base_offset,
            last_offset,
        ));
        while producer.batches.len() > BATCHES_KEPT {
            producer.batches.pop_front();
        }
    }

    /// Rebuilds the state from the batch headers of the log's recent segments (those
    /// within [`REBUILD_TAIL_BYTES`] of its end, the active one at least). A producer
    /// idle for longer is forgotten, as Kafka forgets producers idle for a day
    /// (`producer.id.expiration.ms`): its next batch must start a new sequence.
    pub fn rebuild(log: &PartitionLog) -> Result<Self, LogError> {
        let mut states = ProducerStates::default();
        let mut offset = log.tail_start_offset(REBUILD_TAIL_BYTES);
        let end = log.log_end_offset();
        while offset < end {
            let read = log.read(offset, 4 * 1024 * 1024, None)?;
            if read.records.is_empty() {
                break;
            }
            let mut at = 0;
            while let Ok(header) = BatchHeader::parse_unchecked(&read.records[at..]) {
                let last = header.last_offset() as u64;
                if let Some(batch) = BatchSequence::of(&header) {
                    states.record(&batch, header.base_offset as u64, last);
                }
                offset = offset.max(last + 1);
                at += header.size_bytes();
                if at >= read.records.len() {
                    break;
                }
            }
        }
        Ok(states)
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
        }
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
}
