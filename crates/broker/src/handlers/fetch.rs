//! Fetch: stored batches served as they are on disk, with long polling (the request
//! waits up to `max_wait_ms` for `min_bytes`, woken by appends, never by a sleep loop),
//! `max_bytes` and per-partition limits (KIP-74: the first batch is returned whole even
//! if larger), and the offsets every answer carries: log start, high watermark and
//! last stable offset (below the first record of the oldest open transaction).
//!
//! Isolation: read_uncommitted consumers read up to the high watermark; read_committed
//! ones up to the last stable offset, with the list of aborted transactions in what
//! they read, so that they drop those records (clients skip control batches and
//! aborted producers' records themselves, as with Kafka).
//!
//! Fetch sessions (KIP-227): strom declines to create incremental sessions, as a Kafka
//! broker with a full session cache does, by answering session id 0; clients then keep
//! sending full fetches. A request naming a session strom never created gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use strom_log::LogError;
use tokio::sync::futures::Notified;
use tokio::sync::watch;

use super::Reply;
use crate::broker::BrokerStats;
use crate::cluster::{Cluster, Partition, Topic};
use crate::metrics::Metrics;
use crate::protocol::{encode_response_sharing, log_error_code, Header};

/// Longest wait a client may ask for; bounds how long a request can pin a task.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

pub(super) fn handle(
    cluster: &Arc<Cluster>,
    metrics: &Arc<Metrics>,
    stats: &Arc<BrokerStats>,
    request: FetchRequest,
    header: &Header,
    shutdown: watch::Receiver<bool>,
    unauthorized: Vec<FetchableTopicResponse>,
) -> Reply {
    let cluster = Arc::clone(cluster);
    let metrics = Arc::clone(metrics);
    let stats = Arc::clone(stats);
    let (version, correlation_id) = (header.api_version, header.correlation_id);
    Reply::Later(tokio::spawn(async move {
        let mut response = long_poll(&cluster, &stats, &request, version, shutdown).await;
        response.responses.extend(unauthorized);
        for topic in &response.responses {
            let bytes: usize = topic
                .partitions
                .iter()
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            let name = if topic.topic.0.is_empty() {
                cluster
                    .topic_by_id(&topic.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                topic.topic.0.to_string()
            };
            metrics.fetched(&name, bytes);
        }
        // The record sets read from the log go to the socket as they are (no copy).
        let records: Vec<Bytes> = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().filter_map(|p| p.records.clone()))
            .collect();
        encode_response_sharing(ApiKey::Fetch, version, correlation_id, &response, &records)
    }))
}

/// Answers the fetch once it has `min_bytes`, an error, or `max_wait_ms` passed (or
/// the broker is shutting down).
async fn long_poll(
    cluster: &Cluster,
    stats: &BrokerStats,
    request: &FetchRequest,
    version: i16,
    mut shutdown: watch::Receiver<bool>,
) -> FetchResponse {
    if version >= 7 {
        let session_error = match (request.session_id, request.session_epoch) {
            (0, 0 | -1) => None,
            (0, _) => Some(ResponseError::InvalidFetchSessionEpoch),
            _ => Some(ResponseError::FetchSessionIdNotFound),
        };
        if let Some(error) = session_error {
            return FetchResponse::default().with_error_code(error.code());
        }
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        let partitions = resolve(cluster, request, version);
        // Register for wake-ups before reading, so an append between the read and the
        // wait is not missed.
        let mut wakers: Vec<Pin<Box<Notified<'_>>>> = partitions
            .iter()
            .flat_map(|(_, parts)| parts.iter())
            .filter_map(|(_, p)| p.as_ref().ok())
            .map(|p| Box::pin(p.appended.notified()))
            .collect();
        for waker in &mut wakers {
            waker.as_mut().enable();
        }
        let (response, bytes, has_error) = read_all(request, version, &partitions);
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes || has_error || expired || wait.is_zero() {
            return response;
        }
        let waiting = !wakers.is_empty();
        let any_append = std::future::poll_fn(|cx| {
            if wakers.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let _waiting = Waiting::count(stats);
        let woken = tokio::select! {
            // Nothing to wait for (no partition exists) waits out max_wait, as Kafka does.
            () = any_append, if waiting => true,
            () = tokio::time::sleep_until(deadline) => false,
            _ = shutdown.wait_for(|stop| *stop) => false,
        };
        if !woken {
            // Answer with whatever there is now.
            return read_all(request, version, &resolve(cluster, request, version)).0;
        }
    }
}

/// Counts a fetch in [`BrokerStats::fetches_waiting`] while it waits.
struct Waiting<'s>(&'s BrokerStats);

impl<'s> Waiting<'s> {
    fn count(stats: &'s BrokerStats) -> Self {
        stats.fetches_waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(stats)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetches_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A requested partition: the topic it belongs to, and the partition or why not.
type Resolved = Vec<(
    Option<Arc<Topic>>,
    Vec<(i32, Result<Arc<Partition>, ResponseError>)>,
)>;

fn resolve(cluster: &Cluster, request: &FetchRequest, version: i16) -> Resolved {
    request
        .topics
        .iter()
        .map(|wanted| {
            let (topic, missing) = if version >= 13 {
                (
                    cluster.topic_by_id(&wanted.topic_id),
                    ResponseError::UnknownTopicId,
                )
            } else {
                (
                    cluster.topic(wanted.topic.0.as_str()),
                    ResponseError::UnknownTopicOrPartition,
                )
            };
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let found = topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition).cloned());
                    let missing = if topic.is_some() {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        missing
                    };
                    (p.partition, found.ok_or(missing))
                })
                .collect();
            (topic, partitions)
        })
        .collect()
}

/// Reads every requested partition within the request's byte limits. Returns the
/// response, the record bytes in it, and whether any partition had an error.
fn read_all(
    request: &FetchRequest,
    version: i16,
    resolved: &Resolved,
) -> (FetchResponse, usize, bool) {
    let mut budget = if version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut has_error = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for (wanted, (_, partitions)) in request.topics.iter().zip(resolved) {
        let mut out = Vec::with_capacity(partitions.len());
        for (spec, (index, found)) in wanted.partitions.iter().zip(partitions) {
            let data = PartitionData::default()
                .with_partition_index(*index)
                .with_preferred_read_replica(BrokerId(-1));
            let data = match found {
                Err(code) => {
                    has_error = true;
                    error_data(data, *code)
                }
                Ok(partition) => match read_partition(
                    partition,
                    spec,
                    request.isolation_level == READ_COMMITTED,
                    total == 0,
                    &mut budget,
                ) {
                    Ok(data_read) => {
                        total += data_read.records.as_ref().map_or(0, |r| r.len());
                        data_read
                            .with_partition_index(*index)
                            .with_preferred_read_replica(BrokerId(-1))
                    }
                    Err(code) => {
                        has_error = true;
                        let log = &partition.log;
                        error_data(data, code)
                            .with_high_watermark(partition.high_watermark() as i64)
                            .with_last_stable_offset(partition.last_stable_offset() as i64)
                            .with_log_start_offset(log.log_start_offset() as i64)
                    }
                },
            };
            out.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_topic_id(wanted.topic_id)
                .with_partitions(out),
        );
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        has_error,
    )
}

/// Fetch's `isolation_level` for read_committed.
const READ_COMMITTED: i8 = 1;

/// Reads one partition. `first` says whether nothing has been added to the response
/// yet: only then may a batch larger than the limits be returned (KIP-74).
fn read_partition(
    partition: &Partition,
    spec: &FetchPartition,
    read_committed: bool,
    first: bool,
    budget: &mut usize,
) -> Result<PartitionData, ResponseError> {
    if spec.current_leader_epoch > 0 {
        return Err(ResponseError::UnknownLeaderEpoch);
    }
    let log = &partition.log;
    let offset = u64::try_from(spec.fetch_offset).map_err(|_| ResponseError::OffsetOutOfRange)?;
    let limit = (spec.partition_max_bytes.max(0) as usize).min(*budget);
    let (stable, aborted) = if read_committed {
        let (stable, aborted) = partition.committed_view(offset);
        (stable, Some(aborted))
    } else {
        (partition.last_stable_offset(), None)
    };
    // Read after the stable offset: the high watermark only grows, so it is at least
    // the one the stable offset was bounded by.
    let high_watermark = partition.high_watermark();
    let end = if read_committed {
        stable
    } else {
        high_watermark
    };
    let read = log
        .read(offset, limit.max(1), Some(end))
        .map_err(|e| match e {
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            other => log_error_code(&other),
        })?;
    let mut records = read.records;
    if records.len() > limit && !first {
        records = bytes::Bytes::new();
    }
    *budget = budget.saturating_sub(records.len());
    let aborted = aborted.map(|list| {
        list.into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset as i64)
            })
            .collect()
    });
    Ok(PartitionData::default()
        .with_high_watermark(high_watermark as i64)
        .with_last_stable_offset(stable.min(high_watermark) as i64)
        .with_log_start_offset(read.log_start_offset as i64)
        .with_aborted_transactions(aborted)
        .with_records(Some(records)))
}

pub(super) fn error_data(data: PartitionData, code: ResponseError) -> PartitionData {
    data.with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(bytes::Bytes::new()))
}

#[cfg(test)]
mod tests {
    use strom_log::batch::builder::BatchBuilder;
    use strom_log::{FlushPolicy, LogConfig, PartitionLog};

    use super::*;

    #[test]
    fn a_record_appended_but_not_flushed_is_not_fetched_under_always() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            flush_policy: FlushPolicy::Always,
            ..LogConfig::default()
        };
        let log = Arc::new(PartitionLog::open(dir.path(), config).expect("open"));
        let partition = Partition::open(0, Arc::clone(&log)).expect("partition");
        let mut builder = BatchBuilder::new(0);
        builder.push(Some(b"k"), Some(b"v"), 0);
        let info = log.append(&mut builder.finish()).expect("append");
        let spec = FetchPartition::default()
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20);
        let fetch = |read_committed| {
            let mut budget = usize::MAX;
            read_partition(&partition, &spec, read_committed, true, &mut budget).expect("fetch")
        };
        for read_committed in [false, true] {
            let data = fetch(read_committed);
            assert!(data.records.as_ref().is_some_and(Bytes::is_empty));
            assert_eq!((data.high_watermark, data.last_stable_offset), (0, 0));
        }
        log.await_durability(&info).expect("flush");
        for read_committed in [false, true] {
            let data = fetch(read_committed);
            assert!(data.records.as_ref().is_some_and(|r| !r.is_empty()));
            assert_eq!((data.high_watermark, data.last_stable_offset), (1, 1));
        }
    }
}
