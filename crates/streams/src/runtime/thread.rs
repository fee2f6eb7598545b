//! A stream thread: one OS thread with its consumer (group = application id, cooperative
//! rebalancing), its producer (transactional under exactly-once) and its tasks.
//!
//! The loop and the commit protocol follow STREAMS.md:
//!
//! ```text
//! poll → (restore newly assigned tasks, partitions paused) → process → commit when due
//! commit: changelog records of every overlay → send_offsets_to_transaction (group
//!         metadata fetched now) → commit_transaction → apply overlays + changelog
//!         offsets to the stores atomically
//! ```
//!
//! Failure handling:
//! - abortable transaction error → abort, drop overlays, seek to committed offsets;
//! - retriable commit error (timeout) → call `commit_transaction` again, never abort;
//! - fatal/fenced → new producer, every task reopened from its store and restored from the
//!   changelog tail (the outcome of the last commit is unknown), seek to committed offsets;
//! - revocation → commit first; lost assignment → abort.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::admin::client_config;
use super::config::ProcessingGuarantee;
use super::Shared;
use crate::error::StreamsError;
use crate::record::{OutputRecord, RawRecord, TaskId};
use crate::task::{Processed, Task};
use crate::topology::Topology;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kafka(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Kafka(e.to_string())
}

/// Records the offsets the producer's delivery reports confirm, per topic-partition.
#[derive(Default)]
struct DeliveryCtx {
    delivered: Mutex<HashMap<(String, i32), i64>>,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for DeliveryCtx {}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut d = lock(&self.delivered);
                let e = d
                    .entry((m.topic().to_string(), m.partition()))
                    .or_insert(-1);
                *e = (*e).max(m.offset());
            }
            Err((e, m)) => lock(&self.errors).push(format!("{}-{}: {e}", m.topic(), m.partition())),
        }
    }
}

type Producer_ = BaseProducer<DeliveryCtx>;
type Consumer_ = BaseConsumer<ThreadCtx>;

/// The consumer's context: owns the thread state so that rebalance callbacks (which run
/// inside `poll`) can commit and move tasks.
pub(crate) struct ThreadCtx {
    state: Mutex<ThreadState>,
    /// For callbacks that must not take the state lock (statistics).
    shared: Arc<Shared>,
}

impl ClientContext for ThreadCtx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = lock(&self.shared.metrics.lag);
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), partition), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for ThreadCtx {
    fn pre_rebalance(&self, consumer: &Consumer_, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            lock(&self.state).on_revoke(consumer, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &Consumer_, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => lock(&self.state).on_assign(consumer, tpl),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Progress of one changelog partition's restore.
struct Restoring {
    task: TaskId,
    start: i64,
    next: i64,
    /// The read_committed end offset when the restore began.
    high: i64,
    /// Offsets already subtracted from the restore-remaining gauge.
    accounted: u64,
    batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    last_progress: Instant,
}

/// How a transactional call failed.
enum TxnFailure {
    Abortable(String),
    Fatal(String),
}

struct ThreadState {
    shared: Arc<Shared>,
    index: usize,
    eos: bool,
    producer: Option<Producer_>,
    in_txn: bool,
    tasks: BTreeMap<TaskId, Task>,
    /// Input partitions assigned to this thread, per task.
    partitions: BTreeMap<TaskId, BTreeSet<(String, i32)>>,
    /// Next offset to commit per input partition, since the last commit.
    positions: BTreeMap<String, BTreeMap<i32, i64>>,
    pending_restore: BTreeSet<TaskId>,
    /// Partitions paused because a record asked to be retried later, and when to resume.
    retry_at: BTreeMap<(String, i32), Instant>,
    /// Restore consumers, one per store (its changelog topic).
    restore_consumers: BTreeMap<String, BaseConsumer<DefaultConsumerContext>>,
    /// Changelog partitions being restored: (store, topic, partition) → progress.
    restoring: BTreeMap<(String, String, i32), Restoring>,
    /// Tasks whose restore was planned.
    restore_started: BTreeSet<TaskId>,
    restored_by_task: BTreeMap<TaskId, u64>,
    /// When each restore in progress began (its span's start).
    restore_began: BTreeMap<TaskId, SystemTime>,
    /// Committed offsets of repartition topics not yet purged, and the last purge.
    purge: BTreeMap<(String, i32), i64>,
    last_purge: Instant,
    admin: Option<AdminClient<DefaultClientContext>>,
    since_commit: usize,
    last_commit: Instant,
    fatal: Option<StreamsError>,
    /// Interactive-query requests for this thread's tasks.
    queries: Option<std::sync::mpsc::Receiver<super::query::QueryRequest>>,
}

impl ThreadState {
    fn new(shared: Arc<Shared>, index: usize) -> Result<Self, StreamsError> {
        let eos = shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let mut st = ThreadState {
            shared,
            index,
            eos,
            producer: None,
            in_txn: false,
            tasks: BTreeMap::new(),
            partitions: BTreeMap::new(),
            positions: BTreeMap::new(),
            pending_restore: BTreeSet::new(),
            retry_at: BTreeMap::new(),
            restore_consumers: BTreeMap::new(),
            restoring: BTreeMap::new(),
            restore_started: BTreeSet::new(),
            restored_by_task: BTreeMap::new(),
            restore_began: BTreeMap::new(),
            purge: BTreeMap::new(),
            last_purge: Instant::now(),
            admin: None,
            since_commit: 0,
            last_commit: Instant::now(),
            fatal: None,
            queries: None,
        };
        st.producer = Some(st.new_producer()?);
        Ok(st)
    }

    /// Answers interactive queries from the committed state of the tasks this thread
    /// holds (never from uncommitted overlays; restoring tasks do not answer).
    fn answer_queries(&mut self) {
        use super::query::QueryReply;
        let Some(rx) = &self.queries else {
            return;
        };
        while let Ok(q) = rx.try_recv() {
            let reply = match self.tasks.get(&q.task) {
                Some(task) if !self.pending_restore.contains(&q.task) => {
                    match task.committed_range(
                        &q.store,
                        crate::processor::as_ref(&q.from),
                        crate::processor::as_ref(&q.to),
                    ) {
                        Ok(rows) => QueryReply::Rows(rows),
                        Err(e) => QueryReply::Failed(e.to_string()),
                    }
                }
                _ => QueryReply::NotHere,
            };
            let _ = q.reply.send(reply);
        }
    }

    fn app(&self) -> &str {
        &self.shared.config.application_id
    }

    fn timeout(&self) -> Duration {
        self.shared.config.request_timeout
    }

    fn new_producer(&self) -> Result<Producer_, StreamsError> {
        let cfg = &self.shared.config;
        let mut c = client_config(cfg);
        c.set("enable.idempotence", "true")
            // Java's partitioner, so that co-partitioning with Java producers holds.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            .set(
                "message.timeout.ms",
                (cfg.request_timeout.min(cfg.transaction_timeout).as_millis() as u64).to_string(),
            );
        if self.eos {
            // app + instance id (persisted in the state dir) + thread: a restart fences
            // its own zombie at once.
            let id = format!(
                "{}-{}-{}",
                cfg.application_id, self.shared.instance_id, self.index
            );
            c.set("transactional.id", &id).set(
                "transaction.timeout.ms",
                (cfg.transaction_timeout.as_millis() as u64).to_string(),
            );
        }
        let producer: Producer_ = c
            .create_with_context(DeliveryCtx::default())
            .map_err(kafka)?;
        if self.eos {
            producer.init_transactions(self.timeout()).map_err(kafka)?;
        }
        Ok(producer)
    }

    fn producer(&self) -> Result<&Producer_, StreamsError> {
        self.producer
            .as_ref()
            .ok_or_else(|| StreamsError::Kafka("no producer".into()))
    }

    fn ensure_txn(&mut self) -> Result<(), StreamsError> {
        if self.eos && !self.in_txn {
            self.producer()?.begin_transaction().map_err(kafka)?;
            self.in_txn = true;
        }
        Ok(())
    }

    fn send(&self, out: &OutputRecord) -> Result<(), StreamsError> {
        let producer = self.producer()?;
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&out.topic).timestamp(out.timestamp_ms);
        if !out.headers.is_empty() {
            // Only when there are headers: an empty header list is still an allocation
            // in librdkafka per record.
            let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
            for (k, v) in &out.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            record = record.headers(headers);
        }
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = out.partition {
            record = record.partition(p);
        }
        let deadline = Instant::now() + self.timeout();
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(kafka(format!("producing to {}: {e}", out.topic))),
            }
        }
    }

    fn task_of(&self, topic: &str, partition: i32) -> Option<TaskId> {
        self.shared.sources.get(topic).map(|&(sub, _)| TaskId {
            subtopology: sub,
            partition,
        })
    }

    fn process(&mut self, consumer: &Consumer_, msg: &BorrowedMessage<'_>) {
        if let Err(e) = self.try_process(consumer, msg) {
            self.fatal = Some(e);
        }
    }

    fn try_process(
        &mut self,
        consumer: &Consumer_,
        msg: &BorrowedMessage<'_>,
    ) -> Result<(), StreamsError> {
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        let Some(id) = self.task_of(topic, partition) else {
            return Ok(());
        };
        if !self.tasks.contains_key(&id) || self.pending_restore.contains(&id) {
            // Revoked in this poll, or not restored yet (its partition is paused; the
            // record will be fetched again from the committed offset).
            return Ok(());
        }
        self.ensure_txn()?;
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let raw = RawRecord {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp_ms: msg.timestamp().to_millis().unwrap_or(0),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(());
        };
        let _span = tracing::trace_span!("task", task = %id, offset).entered();
        let started = Instant::now();
        task.set_wall_clock(wall_clock_ms());
        let record_span =
            self.shared
                .tracer
                .record_span(id, &self.shared.config.application_id, &raw);
        let outcome = task.process(&raw);
        let mut outputs = task.take_outputs();
        record_span.finish(&outcome, &mut outputs);
        let outcome = outcome?;
        let m = &self.shared.metrics;
        m.late_records
            .fetch_add(task.take_late_records(), Ordering::Relaxed);
        m.retry_topic_records
            .fetch_add(task.take_retry_topic_records(), Ordering::Relaxed);
        match outcome {
            Processed::Ok => m.records_processed.fetch_add(1, Ordering::Relaxed),
            Processed::Skipped => m.records_skipped.fetch_add(1, Ordering::Relaxed),
            Processed::Retry(after_ms) => {
                // Not processed: pause the partition and fetch this record again after
                // the wait. The thread keeps polling, so the instance stays in its group.
                m.retries.fetch_add(1, Ordering::Relaxed);
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, partition);
                consumer.pause(&tpl).map_err(kafka)?;
                consumer
                    .seek(topic, partition, Offset::Offset(offset), self.timeout())
                    .map_err(kafka)?;
                self.retry_at.insert(
                    (topic.to_string(), partition),
                    Instant::now() + Duration::from_millis(after_ms as u64),
                );
                return Ok(());
            }
        };
        for out in &outputs {
            self.send(out)?;
        }
        self.shared
            .metrics
            .process_latency
            .observe(started.elapsed());
        // Update in place: no key allocation per record.
        match self.positions.get_mut(topic) {
            Some(parts) => {
                parts.insert(partition, offset + 1);
            }
            None => {
                self.positions.insert(
                    topic.to_string(),
                    [(partition, offset + 1)].into_iter().collect(),
                );
            }
        }
        self.since_commit += 1;
        Ok(())
    }

    /// Resumes partitions whose retry wait is over (if they are still ours).
    fn resume_due(&mut self, consumer: &Consumer_) -> Result<(), StreamsError> {
        if self.retry_at.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let due: Vec<(String, i32)> = self
            .retry_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for (topic, partition) in due {
            self.retry_at.remove(&(topic.clone(), partition));
            let owned = self.task_of(&topic, partition).is_some_and(|id| {
                self.tasks.contains_key(&id) && !self.pending_restore.contains(&id)
            });
            if owned {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topic, partition);
                consumer.resume(&tpl).map_err(kafka)?;
            }
        }
        Ok(())
    }

    fn punctuate_wall_clock(&mut self) -> Result<(), StreamsError> {
        let lag_ms = self
            .shared
            .config
            .stream_time_wall_clock_lag
            .map(|d| d.as_millis().min(i64::MAX as u128) as i64);
        let wanted = |t: &Task| lag_ms.is_some() || t.has_wall_clock_schedules();
        if !self.tasks.values().any(wanted) {
            return Ok(());
        }
        let now_ms = wall_clock_ms();
        let ids: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| wanted(t) && !self.pending_restore.contains(id))
            .map(|(id, _)| *id)
            .collect();
        let started = Instant::now();
        let any = !ids.is_empty();
        for id in ids {
            self.ensure_txn()?;
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            task.advance_wall_clock(now_ms, lag_ms)
                .map_err(|e| StreamsError::Processing {
                    topic: String::new(),
                    partition: id.partition,
                    offset: -1,
                    source: e,
                })?;
            let outputs = task.take_outputs();
            for out in &outputs {
                self.send(out)?;
            }
        }

        if any {
            self.shared
                .metrics
                .punctuate_latency
                .observe(started.elapsed());
        }
        Ok(())
    }

    fn commit_due(&self) -> bool {
        let overlay: usize = self.tasks.values().map(Task::overlay_bytes).sum();
        self.since_commit >= self.shared.config.commit_records_max
            || overlay >= self.shared.config.overlay_bytes_max
            || (self.last_commit.elapsed() >= self.shared.config.commit_interval
                && (self.in_txn || !self.positions.is_empty()))
    }

    fn offsets_to_commit(&self) -> Result<TopicPartitionList, StreamsError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, next) in self
            .positions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, n)| (t, p, n)))
        {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*next))
                .map_err(kafka)?;
            if let Some(task) = self.task_of(topic, *p).and_then(|id| self.tasks.get(&id)) {
                if let Some(mut e) = tpl.find_partition(topic, *p) {
                    // The task's stream time travels with the committed offset.
                    e.set_metadata(task.stream_time_ms().to_string());
                }
            }
        }
        Ok(tpl)
    }

    /// True when there is nothing to commit: no input consumed, no transaction open, no
    /// store written.
    fn nothing_to_commit(&self) -> bool {
        self.positions.is_empty()
            && !self.in_txn
            && self.tasks.values().all(|t| t.overlay_bytes() == 0)
    }

    /// Commits and handles every failure; only unrecoverable errors are returned.
    fn commit(&mut self, consumer: &Consumer_) {
        let traced = (!self.nothing_to_commit())
            .then(|| (SystemTime::now(), self.tasks.len(), self.since_commit));
        let result = self.try_commit(consumer);
        if let Some((started, tasks, records)) = traced {
            let error = match &result {
                Ok(()) => None,
                Err(TxnFailure::Abortable(e) | TxnFailure::Fatal(e)) => Some(e.as_str()),
            };
            self.shared
                .tracer
                .commit_span(self.index, tasks, records, started, error);
        }
        match result {
            Ok(()) => {}
            Err(TxnFailure::Abortable(e)) => {
                tracing::warn!(thread = self.index, error = %e, "commit failed: aborting and rewinding");
                self.abort_and_rewind(consumer);
            }
            Err(TxnFailure::Fatal(e)) => {
                tracing::warn!(thread = self.index, error = %e, "producer fenced or fatal: recreating it");
                self.recover_fatal(consumer);
            }
        }
    }

    fn try_commit(&mut self, consumer: &Consumer_) -> Result<(), TxnFailure> {
        let _span =
            tracing::debug_span!("commit", thread = self.index, tasks = self.tasks.len()).entered();
        if self.nothing_to_commit() {
            self.last_commit = Instant::now();
            return Ok(());
        }
        let started = Instant::now();
        let timeout = self.timeout();
        self.ensure_txn()
            .map_err(|e| TxnFailure::Fatal(e.to_string()))?;
        let changelog: Vec<OutputRecord> = self
            .tasks
            .values()
            .flat_map(|t| t.changelog_records().into_iter().map(|(_, r)| r))
            .collect();
        for r in &changelog {
            self.send(r)
                .map_err(|e| TxnFailure::Abortable(e.to_string()))?;
        }
        let tpl = self
            .offsets_to_commit()
            .map_err(|e| TxnFailure::Fatal(e.to_string()))?;
        let producer = self
            .producer
            .as_ref()
            .ok_or_else(|| TxnFailure::Fatal("no producer".into()))?;
        if self.eos {
            if tpl.count() > 0 {
                let metadata = consumer
                    .group_metadata()
                    .ok_or_else(|| TxnFailure::Abortable("no group metadata".into()))?;
                producer
                    .send_offsets_to_transaction(&tpl, &metadata, timeout)
                    .map_err(classify)?;
            }
            let mut attempts = 0;
            loop {
                match producer.commit_transaction(timeout) {
                    Ok(()) => break,
                    Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 5 => {
                        // A timed-out commit may have succeeded: retry, never abort.
                        attempts += 1;
                        tracing::warn!(thread = self.index, error = %e, attempts, "commit_transaction retriable; retrying");
                    }
                    Err(e) => return Err(classify(e)),
                }
            }
            self.in_txn = false;
        } else {
            producer
                .flush(timeout)
                .map_err(|e| TxnFailure::Abortable(e.to_string()))?;
            let errors = std::mem::take(&mut *lock(&producer.context().errors));
            if !errors.is_empty() {
                return Err(TxnFailure::Abortable(format!(
                    "delivery failed: {}",
                    errors.join("; ")
                )));
            }
        }
        producer.poll(Duration::ZERO);
        // The transaction is committed: apply overlays with their changelog offsets.
        let delivered = std::mem::take(&mut *lock(&producer.context().delivered));
        let app = self.app().to_string();
        for task in self.tasks.values_mut() {
            let mut next = BTreeMap::new();
            for store in task.stores() {
                let topic = Topology::changelog_topic(&app, store);
                if let Some(o) = delivered.get(&(topic, task.id.partition)) {
                    next.insert(store.clone(), o + 1);
                }
            }
            if let Err(e) = task.apply(&next) {
                // The changelog has the data: a restart restores it.
                self.fatal = Some(e.into());
                return Ok(());
            }
            let mut keys = lock(&self.shared.metrics.store_keys);
            for store in task.stores() {
                keys.insert((store.clone(), task.id), task.store_len(store));
            }
        }
        if !self.eos && tpl.count() > 0 {
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| TxnFailure::Abortable(e.to_string()))?;
        }
        self.purge_repartition_topics();
        self.positions.clear();
        self.since_commit = 0;
        self.last_commit = Instant::now();
        let m = &self.shared.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.changelog_records
            .fetch_add(changelog.len() as u64, Ordering::Relaxed);
        m.commit_latency.observe(started.elapsed());
        Ok(())
    }

    /// Repartition records below the committed offsets are consumed for good: delete
    /// them (DeleteRecords), at most once a second, without waiting for the answer.
    fn purge_repartition_topics(&mut self) {
        let internal = &self.shared.repartition_topics;
        for (topic, p, next) in self
            .positions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, n)| (t, p, n)))
        {
            if internal.contains(topic) {
                self.purge.insert((topic.clone(), *p), *next);
            }
        }
        if self.purge.is_empty() || self.last_purge.elapsed() < Duration::from_secs(1) {
            return;
        }
        if self.admin.is_none() {
            match client_config(&self.shared.config).create::<AdminClient<DefaultClientContext>>() {
                Ok(a) => self.admin = Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "admin client for purging repartition topics");
                    return;
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), next) in std::mem::take(&mut self.purge) {
            if tpl
                .add_partition_offset(&topic, p, Offset::Offset(next))
                .is_err()
            {
                continue;
            }
        }
        if let Some(admin) = &self.admin {
            // The request is sent now; its answer is not needed (a failed purge is
            // retried with higher offsets after the next commit).
            drop(admin.delete_records(&tpl, &AdminOptions::new()));
        }
        self.last_purge = Instant::now();
    }

    fn abort_and_rewind(&mut self, consumer: &Consumer_) {
        self.shared.metrics.aborts.fetch_add(1, Ordering::Relaxed);
        if self.eos && self.in_txn {
            if let Some(p) = &self.producer {
                // Drop what is still queued, and serve the delivery reports of what is in
                // flight: with a delivery callback, abort_transaction waits for reports that
                // only polling delivers ("the event queue must be polled").
                p.purge(PurgeConfig::default().queue());
                let _ = p.flush(self.timeout());
                if let Err(e) = p.abort_transaction(self.timeout()) {
                    tracing::warn!(thread = self.index, error = %e, "abort failed: recreating the producer");
                    self.recover_fatal(consumer);
                    return;
                }
            }
        }
        self.in_txn = false;
        if let Some(p) = &self.producer {
            lock(&p.context().delivered).clear();
            lock(&p.context().errors).clear();
        }
        for task in self.tasks.values_mut() {
            task.abort(None);
        }
        self.rewind(consumer, None);
    }

    /// Seeks the partitions of the given tasks (all when `None`) to their committed
    /// offsets and resets those tasks' stream time from the commit metadata.
    fn rewind(&mut self, consumer: &Consumer_, only: Option<&BTreeSet<TaskId>>) {
        self.positions.clear();
        self.since_commit = 0;
        self.last_commit = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for (id, parts) in &self.partitions {
            if only.is_some_and(|o| !o.contains(id)) {
                continue;
            }
            for (t, p) in parts {
                tpl.add_partition(t, *p);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let committed = match consumer.committed_offsets(tpl, self.timeout()) {
            Ok(c) => c,
            Err(e) => {
                self.fatal = Some(kafka(format!("reading committed offsets: {e}")));
                return;
            }
        };
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            if let Err(err) = consumer.seek(e.topic(), e.partition(), offset, self.timeout()) {
                if only.is_none() {
                    // After an abort the consumer is past the committed offset: going on
                    // without the seek would skip the aborted records. Stop instead.
                    tracing::error!(topic = e.topic(), partition = e.partition(), error = %err, "seek after abort failed");
                    self.fatal = Some(kafka(format!(
                        "seek of {}-{} to the committed offset failed after an abort: {err}",
                        e.topic(),
                        e.partition()
                    )));
                } else {
                    // A freshly assigned partition starts at its committed offset anyway.
                    tracing::debug!(topic = e.topic(), partition = e.partition(), error = %err, "seek failed");
                }
            }
            if let (Ok(t), Some(id)) = (
                e.metadata().parse::<i64>(),
                self.task_of(e.topic(), e.partition()),
            ) {
                if let Some(task) = self.tasks.get_mut(&id) {
                    task.set_committed_stream_time(t);
                }
            }
        }
    }

    /// Fenced or fatal: a new producer; every task reopened from its store (which holds
    /// only committed state) and restored from its changelog; inputs rewound.
    fn recover_fatal(&mut self, consumer: &Consumer_) {
        self.shared
            .metrics
            .producer_recreations
            .fetch_add(1, Ordering::Relaxed);
        self.producer = None;
        self.in_txn = false;
        match self.new_producer() {
            Ok(p) => self.producer = Some(p),
            Err(e) => {
                self.fatal = Some(e);
                return;
            }
        }
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.cancel_restores(&ids.iter().copied().collect());
        self.tasks.clear();
        for id in ids {
            if let Err(e) = self.open_task(id) {
                self.fatal = Some(e);
                return;
            }
        }
        self.pause_pending(consumer);
        self.rewind(consumer, None);
    }

    fn open_task(&mut self, id: TaskId) -> Result<(), StreamsError> {
        let stores = crate::task::subtopology_stores(&self.shared.topology, id.subtopology);
        let state = self.shared.backend.open_task(id, &stores)?;
        let cfg = &self.shared.config;
        let task = Task::new(
            &self.shared.topology,
            &cfg.application_id,
            id,
            state,
            cfg.deserialization_errors.clone(),
            cfg.processing_errors.clone(),
            self.shared.globals.clone(),
        )?;
        self.tasks.insert(id, task);
        self.pending_restore.insert(id);
        Ok(())
    }

    fn pause_pending(&self, consumer: &Consumer_) {
        let mut tpl = TopicPartitionList::new();
        for id in &self.pending_restore {
            for (t, p) in self.partitions.get(id).into_iter().flatten() {
                tpl.add_partition(t, *p);
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.pause(&tpl) {
                tracing::warn!(error = %e, "pause failed");
            }
        }
    }

    fn on_assign(&mut self, consumer: &Consumer_, tpl: &TopicPartitionList) {
        self.shared
            .metrics
            .rebalances
            .fetch_add(1, Ordering::Relaxed);
        for e in tpl.elements() {
            let Some(id) = self.task_of(e.topic(), e.partition()) else {
                continue;
            };
            self.partitions
                .entry(id)
                .or_default()
                .insert((e.topic().to_string(), e.partition()));
            if !self.tasks.contains_key(&id) {
                if let Err(err) = self.open_task(id) {
                    self.fatal = Some(err);
                    return;
                }
            }
        }
        tracing::info!(
            thread = self.index,
            assigned = tpl.count(),
            tasks = self.tasks.len(),
            "partitions assigned"
        );
        self.pause_pending(consumer);
    }

    fn on_revoke(&mut self, consumer: &Consumer_, tpl: &TopicPartitionList) {
        self.shared
            .metrics
            .rebalances
            .fetch_add(1, Ordering::Relaxed);
        let lost = consumer.assignment_lost();
        let mut revoked = BTreeSet::new();
        for e in tpl.elements() {
            if let Some(id) = self.task_of(e.topic(), e.partition()) {
                if let Some(parts) = self.partitions.get_mut(&id) {
                    parts.remove(&(e.topic().to_string(), e.partition()));
                    if parts.is_empty() {
                        revoked.insert(id);
                    }
                }
            }
        }
        if lost {
            // Another member may own these partitions already: never commit for them.
            tracing::warn!(thread = self.index, "assignment lost: aborting");
            self.cancel_restores(&revoked);
            for id in &revoked {
                self.tasks.remove(id);
                self.partitions.remove(id);
                self.pending_restore.remove(id);
            }
            self.abort_and_rewind(consumer);
            return;
        }
        // The transaction spans every task: commit it before giving any away.
        self.commit(consumer);
        self.cancel_restores(&revoked);
        for id in &revoked {
            // Closing keeps the store on disk: coming back restores only the delta.
            self.tasks.remove(id);
            self.partitions.remove(id);
            self.pending_restore.remove(id);
        }
        let m = &self.shared.metrics;
        lock(&m.store_keys).retain(|(_, task), _| !revoked.contains(task));
        let mut lag = lock(&m.lag);
        for e in tpl.elements() {
            lag.remove(&(e.topic().to_string(), e.partition()));
        }
        tracing::info!(
            thread = self.index,
            revoked = tpl.count(),
            tasks = self.tasks.len(),
            "partitions revoked"
        );
    }

    /// The restore consumer of a store's changelog (one per store: end-of-partition
    /// events name only the partition).
    fn restore_consumer(
        &mut self,
        store: &str,
    ) -> Result<&BaseConsumer<DefaultConsumerContext>, StreamsError> {
        if !self.restore_consumers.contains_key(store) {
            let cfg = &self.shared.config;
            let mut c = client_config(cfg);
            c.set(
                "group.id",
                format!("{}-restore-{}", cfg.application_id, self.shared.instance_id),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            // End of partition is the restore's stop signal: do not let the broker
            // hold an empty fetch for long.
            .set("fetch.wait.max.ms", "10")
            .set("auto.offset.reset", "earliest");
            let consumer: BaseConsumer<DefaultConsumerContext> = c.create().map_err(kafka)?;
            self.restore_consumers.insert(store.to_string(), consumer);
        }
        self.restore_consumers
            .get(store)
            .ok_or_else(|| StreamsError::Kafka("no restore consumer".into()))
    }

    /// Drives restores without blocking the loop: starts the restore of newly assigned
    /// tasks, applies what the restore consumers have fetched (in batches that each
    /// advance the applied offset, so a crash mid-restore resumes), and resumes the
    /// partitions of tasks whose stores caught up. Meanwhile the main consumer keeps
    /// polling (the thread stays in its group) and other tasks keep processing.
    fn drive_restores(&mut self, consumer: &Consumer_) -> Result<(), StreamsError> {
        if self.pending_restore.is_empty() && self.restoring.is_empty() {
            return Ok(());
        }
        let to_start: Vec<TaskId> = self
            .pending_restore
            .iter()
            .filter(|id| !self.restore_started.contains(id))
            .copied()
            .collect();
        for id in to_start {
            self.begin_restore(id)?;
        }
        let stores: Vec<String> = self
            .restoring
            .keys()
            .map(|(s, _, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let timeout = self.timeout();
        for store in stores {
            let mut finished: BTreeSet<(String, i32)> = BTreeSet::new();
            for _ in 0..5000 {
                let Some(rc) = self.restore_consumers.get(&store) else {
                    break;
                };
                let Some(polled) = rc.poll(Duration::ZERO) else {
                    break;
                };
                match polled {
                    Ok(m) => {
                        let key = (store.clone(), m.topic().to_string(), m.partition());
                        let Some(r) = self.restoring.get_mut(&key) else {
                            continue;
                        };
                        r.batch.push((
                            m.key().map(<[u8]>::to_vec).unwrap_or_default(),
                            m.payload().map(<[u8]>::to_vec),
                        ));
                        r.next = m.offset() + 1;
                        r.last_progress = Instant::now();
                        if r.batch.len() >= 1000 || r.next >= r.high {
                            self.flush_restore_batch(&key)?;
                        }
                        if self.restoring.get(&key).is_some_and(|r| r.next >= r.high) {
                            finished.insert((key.1, key.2));
                        }
                    }
                    Err(KafkaError::PartitionEOF(p)) => {
                        if let Some(key) = self
                            .restoring
                            .keys()
                            .find(|(s, _, q)| *s == store && *q == p)
                            .cloned()
                        {
                            finished.insert((key.1, key.2));
                        }
                    }
                    Err(e) => tracing::warn!(store, error = %e, "restore consumer error"),
                }
            }
            for (topic, p) in finished {
                self.finish_restore_partition(&(store.clone(), topic, p))?;
            }
        }
        if let Some((key, _)) = self
            .restoring
            .iter()
            .find(|(_, r)| r.last_progress.elapsed() > timeout)
        {
            return Err(kafka(format!(
                "restore of {}-{} made no progress for {timeout:?}",
                key.1, key.2
            )));
        }
        // Tasks whose every store caught up: resume from the committed offsets.
        let done: Vec<TaskId> = self
            .restore_started
            .iter()
            .filter(|id| !self.restoring.values().any(|r| r.task == **id))
            .copied()
            .collect();
        for id in done {
            self.restore_started.remove(&id);
            self.pending_restore.remove(&id);
            let restored = self.restored_by_task.remove(&id).unwrap_or(0);
            if let Some(began) = self.restore_began.remove(&id) {
                self.shared.tracer.restore_span(id, restored, began);
            }
            let only: BTreeSet<TaskId> = [id].into_iter().collect();
            let mut tpl = TopicPartitionList::new();
            for (t, p) in self.partitions.get(&id).into_iter().flatten() {
                tpl.add_partition(t, *p);
            }
            let positions = std::mem::take(&mut self.positions);
            self.rewind(consumer, Some(&only));
            self.positions = positions;
            if tpl.count() > 0 {
                consumer.resume(&tpl).map_err(kafka)?;
            }
            tracing::info!(thread = self.index, task = %id, restored, "task restored");
        }
        Ok(())
    }

    /// Plans the restore of a task: per store, `[applied, read_committed end)` of its
    /// changelog partition (the whole changelog when its start moved past `applied`).
    fn begin_restore(&mut self, id: TaskId) -> Result<(), StreamsError> {
        let _span = tracing::info_span!("restore", task = %id).entered();
        self.restore_started.insert(id);
        let Some(stores) = self.tasks.get(&id).map(|t| t.stores().to_vec()) else {
            return Ok(());
        };
        if !stores.is_empty() {
            self.restore_began.insert(id, SystemTime::now());
        }
        let app = self.app().to_string();
        let timeout = self.timeout();
        for store in stores {
            let topic = Topology::changelog_topic(&app, &store);
            let (low, high) = self
                .restore_consumer(&store)?
                .fetch_watermarks(&topic, id.partition, timeout)
                .map_err(kafka)?;
            let task = self
                .tasks
                .get_mut(&id)
                .ok_or_else(|| StreamsError::Kafka("task vanished during restore".into()))?;
            let applied = task
                .meta()?
                .changelog_next
                .get(&store)
                .copied()
                .unwrap_or(0);
            let mut start = applied;
            if applied < low {
                if applied > 0 {
                    tracing::warn!(task = %id, store, applied, low, "changelog start moved past the store: wiping it");
                    task.wipe()?;
                }
                start = low;
            }
            if start >= high {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, id.partition, Offset::Offset(start))
                .map_err(kafka)?;
            self.restore_consumer(&store)?
                .incremental_assign(&tpl)
                .map_err(kafka)?;
            self.shared
                .metrics
                .restore_remaining
                .fetch_add((high - start) as u64, Ordering::Relaxed);
            self.restoring.insert(
                (store.clone(), topic, id.partition),
                Restoring {
                    task: id,
                    start,
                    next: start,
                    high,
                    accounted: 0,
                    batch: Vec::new(),
                    last_progress: Instant::now(),
                },
            );
        }
        Ok(())
    }

    fn flush_restore_batch(&mut self, key: &(String, String, i32)) -> Result<(), StreamsError> {
        let Some(r) = self.restoring.get_mut(key) else {
            return Ok(());
        };
        if r.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut r.batch);
        let n = batch.len() as u64;
        let (task_id, next) = (r.task, r.next);
        let step = ((r.next - r.start) as u64).min((r.high - r.start) as u64) - r.accounted;
        r.accounted += step;
        if let Some(task) = self.tasks.get_mut(&task_id) {
            task.restore_batch(&key.0, batch, next)?;
        }
        let m = &self.shared.metrics;
        m.restore_remaining.fetch_sub(step, Ordering::Relaxed);
        m.restored_records.fetch_add(n, Ordering::Relaxed);
        *self.restored_by_task.entry(task_id).or_default() += n;
        Ok(())
    }

    fn finish_restore_partition(
        &mut self,
        key: &(String, String, i32),
    ) -> Result<(), StreamsError> {
        self.flush_restore_batch(key)?;
        let Some(r) = self.restoring.remove(key) else {
            // Finished already (the end offset and end-of-partition both say so).
            return Ok(());
        };
        // Whatever was not replayed were transaction markers.
        let rest = (r.high - r.start) as u64 - r.accounted;
        self.shared
            .metrics
            .restore_remaining
            .fetch_sub(rest, Ordering::Relaxed);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&key.1, key.2);
        if let Some(rc) = self.restore_consumers.get(&key.0) {
            rc.incremental_unassign(&tpl).map_err(kafka)?;
        }
        Ok(())
    }

    /// Stops restoring tasks that were revoked or are being reopened.
    fn cancel_restores(&mut self, ids: &BTreeSet<TaskId>) {
        let keys: Vec<(String, String, i32)> = self
            .restoring
            .iter()
            .filter(|(_, r)| ids.contains(&r.task))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(r) = self.restoring.remove(&key) {
                let rest = (r.high - r.start) as u64 - r.accounted;
                self.shared
                    .metrics
                    .restore_remaining
                    .fetch_sub(rest, Ordering::Relaxed);
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.1, key.2);
            if let Some(rc) = self.restore_consumers.get(&key.0) {
                let _ = rc.incremental_unassign(&tpl);
            }
        }
        for id in ids {
            self.restore_started.remove(id);
            self.restored_by_task.remove(id);
            self.restore_began.remove(id);
        }
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Classifies a transactional error (librdkafka semantics).
fn classify(e: KafkaError) -> TxnFailure {
    match &e {
        KafkaError::Transaction(r) if r.txn_requires_abort() => {
            TxnFailure::Abortable(e.to_string())
        }
        KafkaError::Transaction(r) if r.is_fatal() => TxnFailure::Fatal(e.to_string()),
        KafkaError::Transaction(r) if r.is_retriable() => TxnFailure::Abortable(e.to_string()),
        _ => TxnFailure::Fatal(e.to_string()),
    }
}

/// `cooperative-sticky` (incremental rebalances) unless a sub-topology reads several
/// topics: their partition *n* must land on the same member (one task), which librdkafka's
/// cooperative assignor does not promise and the `range` assignor does (for topics of
/// equal partition count and identical subscriptions), at the price of eager rebalances.
pub(crate) fn assignment_strategy(topology: &Topology) -> &'static str {
    if topology
        .inner
        .subtopologies
        .iter()
        .any(|s| s.sources.len() > 1)
    {
        "range"
    } else {
        "cooperative-sticky"
    }
}

/// Runs one stream thread until shutdown or an unrecoverable error.
pub(crate) fn run(shared: Arc<Shared>, index: usize) -> Result<(), StreamsError> {
    let cfg = shared.config.clone();
    let mut state = ThreadState::new(shared.clone(), index)?;
    state.queries = shared
        .query_rx
        .get(index)
        .and_then(|rx| rx.lock().ok().and_then(|mut r| r.take()));
    let mut c = client_config(&cfg);
    if let Some(server) = &cfg.application_server {
        // Other instances find this one's query address through the group.
        c.set(
            "client.id",
            format!("{}{server}", super::query::CLIENT_ID_PREFIX),
        );
    }
    c.set("group.id", &cfg.application_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set(
            "partition.assignment.strategy",
            assignment_strategy(&shared.topology),
        )
        // Consumer lag per partition for the metrics comes from librdkafka's statistics.
        .set("statistics.interval.ms", "5000")
        // Prefetch at most 16 MiB per thread (librdkafka's default is 64 MiB): the
        // memory budget of an instance, overridable through `client_config`.
        .set("queued.max.messages.kbytes", "16384");
    for (k, v) in &cfg.client_config {
        c.set(k, v);
    }
    let consumer: Consumer_ = c
        .create_with_context(ThreadCtx {
            state: Mutex::new(state),
            shared: shared.clone(),
        })
        .map_err(kafka)?;
    let topics = shared.topology.source_topics(&cfg.application_id);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs).map_err(kafka)?;
    let result = run_loop(&shared, &consumer);
    // Graceful shutdown: commit → unsubscribe → poll until revoked → drop.
    if result.is_ok() {
        lock(&consumer.context().state).commit(&consumer);
    }
    consumer.unsubscribe();
    let deadline = Instant::now() + cfg.request_timeout;
    while Instant::now() < deadline
        && consumer
            .assignment()
            .map(|a| a.count() > 0)
            .unwrap_or(false)
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    if result.is_ok() {
        let _ = shared.backend.persist();
    }
    result
}

fn run_loop(shared: &Shared, consumer: &Consumer_) -> Result<(), StreamsError> {
    while !shared.shutdown.load(Ordering::Relaxed) {
        let polled = consumer.poll(Duration::from_millis(20));
        let mut st = lock(&consumer.context().state);
        if let Some(e) = st.fatal.take() {
            return Err(e);
        }
        st.drive_restores(consumer)?;
        match polled {
            Some(Ok(m)) => st.process(consumer, &m),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => tracing::warn!(thread = st.index, error = %e, "consumer error"),
            None => {}
        }
        if let Some(e) = st.fatal.take() {
            return Err(e);
        }
        st.resume_due(consumer)?;
        st.punctuate_wall_clock()?;
        st.answer_queries();
        if st.commit_due() {
            st.commit(consumer);
        }
        if let Some(e) = st.fatal.take() {
            return Err(e);
        }
    }
    Ok(())
}
