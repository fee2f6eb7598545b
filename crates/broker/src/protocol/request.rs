//! Decoding a request body into the message type of its API and version.

use bytes::Bytes;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, ApiKey,
    ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, DescribeProducersRequest, DescribeTransactionsRequest, EndTxnRequest,
    FetchRequest, FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, ListTransactionsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, SyncGroupRequest,
    TxnOffsetCommitRequest,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, ElectLeadersRequest, ListConfigResourcesRequest,
    ListPartitionReassignmentsRequest,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};

use super::{decode_body, supported_versions, FrameError, Header};

/// A decoded request of an API strom serves.
#[derive(Debug)]
pub(crate) enum Request {
    /// ApiVersions; `None` when the version is newer than strom knows (answered with
    /// UNSUPPORTED_VERSION so the client can fall back).
    ApiVersions(Option<ApiVersionsRequest>),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    OffsetDelete(OffsetDeleteRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    InitProducerId(InitProducerIdRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    EndTxn(EndTxnRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    DescribeProducers(DescribeProducersRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
    CreateAcls(CreateAclsRequest),
    DescribeAcls(DescribeAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    AlterReplicaLogDirs(AlterReplicaLogDirsRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    DescribeQuorum(DescribeQuorumRequest),
    DescribeTopicPartitions(DescribeTopicPartitionsRequest),
    ListConfigResources(ListConfigResourcesRequest),
}

/// Decodes the body of the request `header` describes. Unknown APIs, versions outside
/// the advertised range and undecodable bodies are errors (the connection closes).
pub(crate) fn decode_request(header: &Header, body: Bytes) -> Result<Request, FrameError> {
    let api = header.api_key.map_err(FrameError::UnsupportedApi)?;
    let version = header.api_version;
    let (min, max) = supported_versions(api).ok_or(FrameError::UnsupportedApi(api as i16))?;
    if version < min || version > max {
        return if api == ApiKey::ApiVersions {
            Ok(Request::ApiVersions(None))
        } else {
            Err(FrameError::UnsupportedVersion { api, version })
        };
    }
    Ok(match api {
        ApiKey::ApiVersions => Request::ApiVersions(Some(decode_body(api, body, version)?)),
        ApiKey::Produce => Request::Produce(decode_body(api, body, version)?),
        ApiKey::Fetch => Request::Fetch(decode_body(api, body, version)?),
        ApiKey::ListOffsets => Request::ListOffsets(decode_body(api, body, version)?),
        ApiKey::Metadata => Request::Metadata(decode_body(api, body, version)?),
        ApiKey::CreateTopics => Request::CreateTopics(decode_body(api, body, version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(decode_body(api, body, version)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(decode_body(api, body, version)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(decode_body(api, body, version)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(decode_body(api, body, version)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(decode_body(api, body, version)?),
        ApiKey::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(decode_body(api, body, version)?)
        }
        ApiKey::DescribeCluster => Request::DescribeCluster(decode_body(api, body, version)?),
        ApiKey::DescribeLogDirs => Request::DescribeLogDirs(decode_body(api, body, version)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(decode_body(api, body, version)?),
        ApiKey::JoinGroup => Request::JoinGroup(decode_body(api, body, version)?),
        ApiKey::SyncGroup => Request::SyncGroup(decode_body(api, body, version)?),
        ApiKey::Heartbeat => Request::Heartbeat(decode_body(api, body, version)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(decode_body(api, body, version)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(decode_body(api, body, version)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(decode_body(api, body, version)?),
        ApiKey::OffsetDelete => Request::OffsetDelete(decode_body(api, body, version)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(decode_body(api, body, version)?),
        ApiKey::ListGroups => Request::ListGroups(decode_body(api, body, version)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(decode_body(api, body, version)?),
        ApiKey::ConsumerGroupHeartbeat => {
            Request::ConsumerGroupHeartbeat(decode_body(api, body, version)?)
        }
        ApiKey::InitProducerId => Request::InitProducerId(decode_body(api, body, version)?),
        ApiKey::AddPartitionsToTxn => Request::AddPartitionsToTxn(decode_body(api, body, version)?),
        ApiKey::AddOffsetsToTxn => Request::AddOffsetsToTxn(decode_body(api, body, version)?),
        ApiKey::EndTxn => Request::EndTxn(decode_body(api, body, version)?),
        ApiKey::TxnOffsetCommit => Request::TxnOffsetCommit(decode_body(api, body, version)?),
        ApiKey::DescribeTransactions => {
            Request::DescribeTransactions(decode_body(api, body, version)?)
        }
        ApiKey::ListTransactions => Request::ListTransactions(decode_body(api, body, version)?),
        ApiKey::DescribeProducers => Request::DescribeProducers(decode_body(api, body, version)?),
        ApiKey::ConsumerGroupDescribe => {
            Request::ConsumerGroupDescribe(decode_body(api, body, version)?)
        }
        ApiKey::SaslHandshake => Request::SaslHandshake(decode_body(api, body, version)?),
        ApiKey::SaslAuthenticate => Request::SaslAuthenticate(decode_body(api, body, version)?),
        ApiKey::CreateAcls => Request::CreateAcls(decode_body(api, body, version)?),
        ApiKey::DescribeAcls => Request::DescribeAcls(decode_body(api, body, version)?),
        ApiKey::DeleteAcls => Request::DeleteAcls(decode_body(api, body, version)?),
        ApiKey::DescribeUserScramCredentials => {
            Request::DescribeUserScramCredentials(decode_body(api, body, version)?)
        }
        ApiKey::AlterUserScramCredentials => {
            Request::AlterUserScramCredentials(decode_body(api, body, version)?)
        }
        ApiKey::AlterReplicaLogDirs => {
            Request::AlterReplicaLogDirs(decode_body(api, body, version)?)
        }
        ApiKey::ElectLeaders => Request::ElectLeaders(decode_body(api, body, version)?),
        ApiKey::AlterPartitionReassignments => {
            Request::AlterPartitionReassignments(decode_body(api, body, version)?)
        }
        ApiKey::ListPartitionReassignments => {
            Request::ListPartitionReassignments(decode_body(api, body, version)?)
        }
        ApiKey::DescribeQuorum => Request::DescribeQuorum(decode_body(api, body, version)?),
        ApiKey::DescribeTopicPartitions => {
            Request::DescribeTopicPartitions(decode_body(api, body, version)?)
        }
        ApiKey::ListConfigResources => {
            Request::ListConfigResources(decode_body(api, body, version)?)
        }
        _ => return Err(FrameError::UnsupportedApi(api as i16)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SUPPORTED_APIS;

    #[test]
    fn every_supported_api_has_a_decoder() {
        for (api, min, _) in SUPPORTED_APIS {
            let header = Header {
                api_key: Ok(*api),
                api_version: *min,
                correlation_id: 1,
                client_id: None,
            };
            // An empty body is malformed for every API, but it must get as far as the
            // body decoder, not stop at "unsupported".
            let decoded = decode_request(&header, Bytes::new());
            assert!(
                !matches!(
                    decoded,
                    Err(FrameError::UnsupportedApi(_) | FrameError::UnsupportedVersion { .. })
                ),
                "{api:?} is advertised but has no decoder"
            );
        }
    }
}
