//! Request handlers, one module per API family, and the dispatch from API key to
//! handler. A handler turns a decoded request into a response; errors that concern
//! one topic or partition become error codes inside the response, and only a request
//! that cannot be decoded at all ends the connection.

mod acls;
mod api_versions;
mod broker_configs;
mod cluster_info;
mod configs;
mod consumer_groups;
mod describe_topic_partitions;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod offsets;
mod produce;
mod producers;
mod records;
mod replicas;
mod scram_credentials;
mod topics;
mod transactions;
mod unauthorized;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::task::JoinHandle;

use crate::broker::Shared;
use crate::protocol::{encode_response, FrameError, Header, Request, ResponseFrame};
use crate::security::Session;

/// What the connection sends back for one request.
pub(crate) enum Reply {
    /// Nothing (produce with acks=0).
    None,
    /// This response, now.
    Ready(ResponseFrame),
    /// The response this task produces (it waits for a sync or for data).
    Later(JoinHandle<Result<ResponseFrame, FrameError>>),
}

/// Runs the handler of `request`, which `session` has admitted.
pub(crate) async fn dispatch(
    shared: &Shared,
    header: &Header,
    request: Request,
    session: &Session,
) -> Result<Reply, FrameError> {
    let cluster = &shared.cluster;
    let version = header.api_version;
    let ready = |api: ApiKey, response: &dyn EncodeResponse| {
        response.frame(api, version, header.correlation_id)
    };
    match request {
        Request::ApiVersions(request) => api_versions::handle(header, request),
        Request::Produce(mut r) => {
            let denied = unauthorized::produce(cluster, session, &mut r, version);
            produce::handle(shared, r, header, denied).await
        }
        Request::Fetch(mut r) => {
            let denied = unauthorized::fetch(cluster, session, &mut r, version);
            Ok(fetch::handle(
                cluster,
                &shared.metrics,
                &shared.stats,
                r,
                header,
                shared.shutdown.clone(),
                denied,
            ))
        }
        Request::ListOffsets(r) => ready(
            ApiKey::ListOffsets,
            &list_offsets::handle(cluster, session, r, version),
        ),
        Request::Metadata(r) => ready(
            ApiKey::Metadata,
            &metadata::handle(cluster, session, r, version).await,
        ),
        Request::CreateTopics(r) => ready(
            ApiKey::CreateTopics,
            &topics::create(cluster, session, r, version).await,
        ),
        Request::DeleteTopics(r) => ready(
            ApiKey::DeleteTopics,
            &topics::delete(cluster, session, &shared.coordinator, r, version).await,
        ),
        Request::CreatePartitions(r) => ready(
            ApiKey::CreatePartitions,
            &topics::create_partitions(cluster, session, r).await,
        ),
        Request::DeleteRecords(r) => ready(
            ApiKey::DeleteRecords,
            &records::delete(cluster, session, r).await,
        ),
        Request::DescribeConfigs(r) => ready(
            ApiKey::DescribeConfigs,
            &configs::describe(shared, session, r, version),
        ),
        Request::AlterConfigs(r) => ready(
            ApiKey::AlterConfigs,
            &configs::alter(cluster, session, r).await,
        ),
        Request::IncrementalAlterConfigs(r) => ready(
            ApiKey::IncrementalAlterConfigs,
            &configs::incremental_alter(cluster, session, r).await,
        ),
        Request::DescribeCluster(r) => ready(
            ApiKey::DescribeCluster,
            &cluster_info::describe_cluster(cluster, session, r),
        ),
        Request::DescribeLogDirs(r) => ready(
            ApiKey::DescribeLogDirs,
            &cluster_info::describe_log_dirs(cluster, session, r),
        ),
        Request::FindCoordinator(r) => ready(
            ApiKey::FindCoordinator,
            &groups::find_coordinator(shared, session, r, version),
        ),
        Request::JoinGroup(r) => Ok(groups::join(shared, session, r, header, session.host())),
        Request::SyncGroup(r) => Ok(groups::sync(shared, session, r, header)),
        Request::Heartbeat(r) => ready(ApiKey::Heartbeat, &groups::heartbeat(shared, session, r)),
        Request::LeaveGroup(r) => ready(
            ApiKey::LeaveGroup,
            &groups::leave(shared, session, r, version).await,
        ),
        Request::OffsetCommit(r) => ready(
            ApiKey::OffsetCommit,
            &offsets::commit(shared, session, r, version).await,
        ),
        Request::OffsetFetch(r) => ready(
            ApiKey::OffsetFetch,
            &offsets::fetch(shared, session, r, version),
        ),
        Request::OffsetDelete(r) => ready(
            ApiKey::OffsetDelete,
            &offsets::delete(shared, session, r).await,
        ),
        Request::DescribeGroups(r) => ready(
            ApiKey::DescribeGroups,
            &groups::describe(shared, session, r, version),
        ),
        Request::ListGroups(r) => ready(ApiKey::ListGroups, &groups::list(shared, session, r)),
        Request::DeleteGroups(r) => ready(
            ApiKey::DeleteGroups,
            &groups::delete(shared, session, r).await,
        ),
        Request::ConsumerGroupHeartbeat(r) => ready(
            ApiKey::ConsumerGroupHeartbeat,
            &consumer_groups::heartbeat(
                shared,
                session,
                r,
                header.client_id.as_deref(),
                session.host(),
            ),
        ),
        Request::InitProducerId(r) => ready(
            ApiKey::InitProducerId,
            &producers::init_producer_id(shared, session, r, version).await,
        ),
        Request::AddPartitionsToTxn(r) => ready(
            ApiKey::AddPartitionsToTxn,
            &transactions::add_partitions(shared, session, r, version).await,
        ),
        Request::AddOffsetsToTxn(r) => ready(
            ApiKey::AddOffsetsToTxn,
            &transactions::add_offsets(shared, session, r, version).await,
        ),
        Request::EndTxn(r) => ready(
            ApiKey::EndTxn,
            &transactions::end(shared, session, r, version).await,
        ),
        Request::TxnOffsetCommit(r) => ready(
            ApiKey::TxnOffsetCommit,
            &transactions::commit_offsets(shared, session, r, version).await,
        ),
        Request::DescribeTransactions(r) => ready(
            ApiKey::DescribeTransactions,
            &transactions::describe(shared, session, r),
        ),
        Request::ListTransactions(r) => ready(
            ApiKey::ListTransactions,
            &transactions::list(shared, session, r),
        ),
        Request::DescribeProducers(r) => ready(
            ApiKey::DescribeProducers,
            &producers::describe_producers(shared, session, r),
        ),
        Request::ConsumerGroupDescribe(r) => ready(
            ApiKey::ConsumerGroupDescribe,
            &consumer_groups::describe(shared, session, r),
        ),
        Request::CreateAcls(r) => {
            ready(ApiKey::CreateAcls, &acls::create(shared, session, r).await)
        }
        Request::DescribeAcls(r) => {
            ready(ApiKey::DescribeAcls, &acls::describe(shared, session, r))
        }
        Request::DeleteAcls(r) => {
            ready(ApiKey::DeleteAcls, &acls::delete(shared, session, r).await)
        }
        Request::DescribeUserScramCredentials(r) => ready(
            ApiKey::DescribeUserScramCredentials,
            &scram_credentials::describe(shared, session, r),
        ),
        Request::AlterUserScramCredentials(r) => ready(
            ApiKey::AlterUserScramCredentials,
            &scram_credentials::alter(shared, session, r).await,
        ),
        Request::AlterReplicaLogDirs(r) => ready(
            ApiKey::AlterReplicaLogDirs,
            &replicas::alter_replica_log_dirs(cluster, session, r),
        ),
        Request::ElectLeaders(r) => ready(
            ApiKey::ElectLeaders,
            &replicas::elect_leaders(cluster, session, r, version),
        ),
        Request::AlterPartitionReassignments(r) => ready(
            ApiKey::AlterPartitionReassignments,
            &replicas::alter_partition_reassignments(cluster, session, r),
        ),
        Request::ListPartitionReassignments(r) => ready(
            ApiKey::ListPartitionReassignments,
            &replicas::list_partition_reassignments(session, r),
        ),
        Request::DescribeQuorum(r) => ready(
            ApiKey::DescribeQuorum,
            &replicas::describe_quorum(shared, session, r, version),
        ),
        Request::DescribeTopicPartitions(r) => ready(
            ApiKey::DescribeTopicPartitions,
            &describe_topic_partitions::handle(cluster, session, r),
        ),
        Request::ListConfigResources(r) => ready(
            ApiKey::ListConfigResources,
            &configs::list_resources(cluster, session, r, version),
        ),
        // The session answers these itself (`Session::admit`); they never get here.
        Request::SaslHandshake(_) | Request::SaslAuthenticate(_) => Err(FrameError::Malformed {
            what: "SASL request".into(),
            reason: "not admitted by the session".into(),
        }),
    }
}

/// A response that can be framed (object-safe wrapper over [`Encodable`]).
trait EncodeResponse {
    fn frame(&self, api: ApiKey, version: i16, correlation_id: i32) -> Result<Reply, FrameError>;
}

impl<R: Encodable> EncodeResponse for R {
    fn frame(&self, api: ApiKey, version: i16, correlation_id: i32) -> Result<Reply, FrameError> {
        encode_response(api, version, correlation_id, self).map(Reply::Ready)
    }
}

/// Runs blocking work (metadata changes sync the metadata log) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// PRODUCER_FENCED as a request of `version` understands it: versions before
/// `first_version` (KIP-588) know only INVALID_PRODUCER_EPOCH.
fn fenced_as(
    error: kafka_protocol::ResponseError,
    version: i16,
    first_version: i16,
) -> kafka_protocol::ResponseError {
    use kafka_protocol::ResponseError;
    if error == ResponseError::ProducerFenced && version < first_version {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

/// A protocol string from a Rust one.
fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
