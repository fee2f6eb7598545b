//! One transactional id's state and its transitions, as Kafka's transaction
//! coordinator defines them, without I/O: every transition returns the next state
//! for the caller to make durable before it takes effect (so a refused request
//! changes nothing). Times are passed in (tests inject them).
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn──▶ PrepareCommit ─▶ CompleteCommit
//!   ▲                                   │                 PrepareAbort  ─▶ CompleteAbort
//!   └──────── InitProducerId ◀──────────┴─ (timeout or a new InitProducerId aborts)
//! ```
//!
//! Transactions V2 (KIP-890) bump the producer epoch at every transaction end, so a
//! late write of a finished transaction is fenced instead of joining the next one.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Largest `transaction.timeout.ms` a producer may ask for (Kafka's
/// `transaction.max.timeout.ms` default: 15 minutes).
pub(crate) const TRANSACTION_TIMEOUT_MAX_MS: i64 = 15 * 60 * 1000;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions or offsets added; records may be written.
    Ongoing,
    /// Committing: markers being written.
    PrepareCommit,
    /// Aborting: markers being written.
    PrepareAbort,
    /// Last transaction committed.
    CompleteCommit,
    /// Last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name for the state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state a preparing transaction ends in.
    fn completed(self) -> Self {
        match self {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        }
    }
}

/// A transactional id's producer and its current transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch before the last bump: a retry that carries them is recognised.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i64,
    pub state: TxnState,
    /// Partitions written in the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the current transaction commits.
    pub groups: BTreeSet<String>,
    /// When the current transaction started (ms), -1 if none is open.
    pub started_ms: i64,
    /// Last change (ms).
    pub updated_ms: i64,
}

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// Persist this state and answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// An open transaction must be aborted first (fencing its producer): persist this
    /// PrepareAbort state, write the markers, complete, then run InitProducerId again.
    AbortFirst(TxnMetadata),
}

/// What EndTxn does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndStep {
    /// A retry of an end that already happened: answer with this id and epoch.
    AlreadyDone(i64, i16),
    /// Persist this Prepare state, write its markers, then complete it.
    Prepare(TxnMetadata),
}

/// The epoch after a bump, or `None` when the epoch is exhausted and a new producer id
/// is needed.
fn bumped(epoch: i16) -> Option<i16> {
    (epoch < i16::MAX - 1).then(|| epoch.saturating_add(1).max(0))
}

/// A new transactional id's first producer, or an existing one's next (epoch bumped,
/// or a new id once the epoch is exhausted). `expected` is the id and epoch a
/// producer that already had one sends (KIP-360); `new_producer_id` allocates an id.
pub(crate) fn init(
    existing: Option<&TxnMetadata>,
    timeout_ms: i64,
    expected: Option<(i64, i16)>,
    now_ms: i64,
    new_producer_id: &mut dyn FnMut() -> Result<i64, ResponseError>,
) -> Result<InitStep, ResponseError> {
    if timeout_ms <= 0 || timeout_ms > TRANSACTION_TIMEOUT_MAX_MS {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let Some(current) = existing else {
        let producer_id = new_producer_id()?;
        return Ok(InitStep::Ready(TxnMetadata {
            producer_id,
            producer_epoch: 0,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now_ms,
        }));
    };
    let is_retry = match expected {
        Some((id, epoch)) if id >= 0 => {
            if (id, epoch) == (current.producer_id, current.producer_epoch) {
                false
            } else if (id, epoch) == (current.last_producer_id, current.last_producer_epoch) {
                true
            } else {
                return Err(ResponseError::ProducerFenced);
            }
        }
        _ => false,
    };
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(ResponseError::ConcurrentTransactions)
        }
        TxnState::Ongoing => {
            let mut next = current.clone();
            next.state = TxnState::PrepareAbort;
            next.last_producer_id = current.producer_id;
            next.last_producer_epoch = current.producer_epoch;
            if let Some(epoch) = bumped(current.producer_epoch) {
                next.producer_epoch = epoch;
            }
            next.updated_ms = now_ms;
            Ok(InitStep::AbortFirst(next))
        }
        TxnState::Empty if is_retry => Ok(InitStep::Ready(current.clone())),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let mut next = current.clone();
            next.last_producer_id = current.producer_id;
            next.last_producer_epoch = current.producer_epoch;
            match bumped(current.producer_epoch) {
                Some(epoch) => next.producer_epoch = epoch,
                None => {
                    next.producer_id = new_producer_id()?;
                    next.producer_epoch = 0;
                }
            }
            next.timeout_ms = timeout_ms;
            next.state = TxnState::Empty;
            next.partitions.clear();
            next.groups.clear();
            next.started_ms = -1;
            next.updated_ms = now_ms;
            Ok(InitStep::Ready(next))
        }
    }
}

impl TxnMetadata {
    /// Checks that a request comes from the current producer.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            Err(ResponseError::InvalidProducerIdMapping)
        } else if epoch != self.producer_epoch {
            Err(ResponseError::ProducerFenced)
        } else {
            Ok(())
        }
    }

    /// Adds partitions and groups to the transaction, opening it if needed. `None`:
    /// all were in it already.
    pub fn add(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        groups: &[String],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing
                if partitions.iter().all(|p| self.partitions.contains(p))
                    && groups.iter().all(|g| self.groups.contains(g)) =>
            {
                return Ok(None)
            }
            _ => {}
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.partitions.clear();
            next.groups.clear();
            next.started_ms = now_ms;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.groups.extend(groups.iter().cloned());
        next.updated_ms = now_ms;
        Ok(Some(next))
    }

    /// Whether the open transaction includes `partition` (produce verification).
    pub fn verify(
        &self,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch < self.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if epoch > self.producer_epoch
            || self.state != TxnState::Ongoing
            || !self.partitions.contains(partition)
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Starts ending the transaction (EndTxn). `v2`: the request is EndTxn v5 or
    /// later, so the epoch is bumped for the markers and the next transaction.
    pub fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
        now_ms: i64,
    ) -> Result<EndStep, ResponseError> {
        let (prepare, complete) = if commit {
            (TxnState::PrepareCommit, TxnState::CompleteCommit)
        } else {
            (TxnState::PrepareAbort, TxnState::CompleteAbort)
        };
        let current = (self.producer_id, self.producer_epoch);
        if v2
            && self.state == complete
            && (producer_id, epoch) == (self.last_producer_id, self.last_producer_epoch)
        {
            // The retry of an end whose answer (the bumped epoch) was lost.
            return Ok(EndStep::AlreadyDone(current.0, current.1));
        }
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::Ongoing => {
                let mut next = self.clone();
                next.state = prepare;
                if v2 {
                    next.last_producer_id = self.producer_id;
                    next.last_producer_epoch = self.producer_epoch;
                    next.producer_epoch = self.producer_epoch.saturating_add(1);
                }
                next.updated_ms = now_ms;
                Ok(EndStep::Prepare(next))
            }
            state if state == prepare => Err(ResponseError::ConcurrentTransactions),
            state if state == complete && !v2 => Ok(EndStep::AlreadyDone(current.0, current.1)),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Aborts a transaction that outlived its timeout, bumping the epoch so that its
    /// producer is fenced. `None` if it is not open or not yet expired.
    pub fn expire(&self, now_ms: i64) -> Option<TxnMetadata> {
        if self.state != TxnState::Ongoing || now_ms < self.started_ms + self.timeout_ms {
            return None;
        }
        let mut next = self.clone();
        next.state = TxnState::PrepareAbort;
        next.last_producer_id = self.producer_id;
        next.last_producer_epoch = self.producer_epoch;
        if let Some(epoch) = bumped(self.producer_epoch) {
            next.producer_epoch = epoch;
        }
        next.updated_ms = now_ms;
        Some(next)
    }

    /// The state once a prepared end's markers are written. An epoch bumped to the
    /// maximum moves the producer to `new_producer_id`.
    pub fn complete(
        &self,
        now_ms: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, ResponseError>,
    ) -> Result<TxnMetadata, ResponseError> {
        let mut next = self.clone();
        next.state = self.state.completed();
        next.partitions.clear();
        next.groups.clear();
        next.started_ms = -1;
        next.updated_ms = now_ms;
        if self.producer_epoch == i16::MAX {
            next.last_producer_id = self.producer_id;
            next.last_producer_epoch = self.producer_epoch;
            next.producer_id = new_producer_id()?;
            next.producer_epoch = 0;
        }
        Ok(next)
    }

    /// Whether a preparing end is waiting for its markers (after a crash).
    pub fn is_preparing(&self) -> bool {
        matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether a transaction commits (as opposed to aborts), for the markers.
    pub fn commits(&self) -> bool {
        self.state == TxnState::PrepareCommit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> Result<i64, ResponseError> {
        let mut next = 100;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn ready(step: Result<InitStep, ResponseError>) -> TxnMetadata {
        match step {
            Ok(InitStep::Ready(m)) => m,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    fn prepared(step: Result<EndStep, ResponseError>) -> TxnMetadata {
        match step {
            Ok(EndStep::Prepare(m)) => m,
            other => panic!("expected Prepare, got {other:?}"),
        }
    }

    fn tp(partition: i32) -> (String, i32) {
        ("t".to_string(), partition)
    }

    #[test]
    fn a_transaction_goes_from_empty_through_ongoing_to_complete() {
        let mut alloc = ids();
        let m = ready(init(None, 60_000, None, 0, &mut alloc));
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (101, 0, TxnState::Empty)
        );
        let m = m
            .add(101, 0, &[tp(0)], &[], 10)
            .expect("add")
            .expect("changed");
        assert_eq!((m.state, m.started_ms), (TxnState::Ongoing, 10));
        assert_eq!(m.add(101, 0, &[tp(0)], &[], 11), Ok(None), "already in it");
        assert_eq!(m.verify(101, 0, &tp(0)), Ok(()));
        assert_eq!(
            m.verify(101, 0, &tp(1)),
            Err(ResponseError::InvalidTxnState)
        );
        let p = prepared(m.end(101, 0, true, false, 20));
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert!(p.commits() && p.is_preparing());
        assert_eq!(
            p.add(101, 0, &[tp(1)], &[], 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        let done = p.complete(30, &mut alloc).expect("complete");
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty() && done.started_ms == -1);
        assert_eq!(
            done.end(101, 0, true, false, 31),
            Ok(EndStep::AlreadyDone(101, 0)),
            "a retried commit"
        );
        assert_eq!(
            done.end(101, 0, false, false, 31),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn bad_requests_change_nothing() {
        let mut alloc = ids();
        assert_eq!(
            init(None, TRANSACTION_TIMEOUT_MAX_MS + 1, None, 0, &mut alloc),
            Err(ResponseError::InvalidTransactionTimeout)
        );
        let m = ready(init(None, 1_000, None, 0, &mut alloc));
        assert_eq!(
            m.end(m.producer_id, 0, true, false, 1),
            Err(ResponseError::InvalidTxnState),
            "nothing open"
        );
        assert_eq!(
            m.add(m.producer_id + 1, 0, &[tp(0)], &[], 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            m.add(m.producer_id, 3, &[tp(0)], &[], 1),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            m.verify(m.producer_id, 0, &tp(0)),
            Err(ResponseError::InvalidTxnState),
            "a transactional write outside a transaction"
        );
    }

    #[test]
    fn a_new_producer_aborts_the_open_transaction_and_fences_the_old_one() {
        let mut alloc = ids();
        let m = ready(init(None, 60_000, None, 0, &mut alloc));
        let open = m
            .add(101, 0, &[tp(0)], &[], 5)
            .expect("add")
            .expect("changed");
        let abort = match init(Some(&open), 60_000, None, 6, &mut alloc) {
            Ok(InitStep::AbortFirst(m)) => m,
            other => panic!("expected AbortFirst, got {other:?}"),
        };
        assert_eq!(
            (abort.state, abort.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert!(!abort.commits());
        let aborted = abort.complete(7, &mut alloc).expect("complete");
        let next = ready(init(Some(&aborted), 60_000, None, 8, &mut alloc));
        assert_eq!((next.producer_id, next.producer_epoch), (101, 2));
        assert_eq!(
            next.add(101, 0, &[tp(0)], &[], 9),
            Err(ResponseError::ProducerFenced),
            "the old producer"
        );
        assert_eq!(
            next.verify(101, 0, &tp(0)),
            Err(ResponseError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn transactions_time_out_with_an_injected_clock() {
        let mut alloc = ids();
        let m = ready(init(None, 1_000, None, 0, &mut alloc));
        let open = m
            .add(101, 0, &[tp(0)], &[], 100)
            .expect("add")
            .expect("changed");
        assert_eq!(open.expire(1_099), None);
        let aborting = open.expire(1_100).expect("expired");
        assert_eq!(
            (aborting.state, aborting.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(m.expire(1_000_000), None, "nothing open");
    }

    #[test]
    fn v2_bumps_the_epoch_at_every_end_and_recognises_retries() {
        let mut alloc = ids();
        let m = ready(init(None, 60_000, None, 0, &mut alloc));
        let open = m
            .add(101, 0, &[tp(0)], &[], 1)
            .expect("add")
            .expect("changed");
        let p = prepared(open.end(101, 0, true, true, 2));
        assert_eq!(p.producer_epoch, 1, "markers carry the bumped epoch");
        let done = p.complete(3, &mut alloc).expect("complete");
        assert_eq!(
            done.end(101, 0, true, true, 4),
            Ok(EndStep::AlreadyDone(101, 1)),
            "the retry of the end"
        );
        assert_eq!(
            done.add(101, 0, &[tp(0)], &[], 5),
            Err(ResponseError::ProducerFenced),
            "the finished transaction's epoch"
        );
        // An exhausted epoch moves the producer to a new id.
        let mut last = done.clone();
        last.producer_epoch = i16::MAX - 1;
        let open = last
            .add(101, i16::MAX - 1, &[tp(0)], &[], 6)
            .expect("add")
            .expect("changed");
        let p = prepared(open.end(101, i16::MAX - 1, false, true, 7));
        let moved = p.complete(8, &mut alloc).expect("complete");
        assert_eq!((moved.producer_id, moved.producer_epoch), (102, 0));
        assert_eq!(
            (moved.last_producer_id, moved.last_producer_epoch),
            (101, i16::MAX)
        );
    }
}
