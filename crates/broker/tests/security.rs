//! Security end to end, in process: listeners with their own advertised addresses,
//! SASL (PLAIN, SCRAM-SHA-256/512, failures, requests before authentication, the
//! KIP-368 session lifetime), TLS with client certificates (rcgen, made here), ACL
//! enforcement on the data and group paths, and credentials and ACLs that survive a
//! restart. Real clients over the same paths are in `tests/compat`.

#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, GroupId, JoinGroupRequest,
    MetadataRequest, ProduceRequest, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use strom_broker::testing::ScramClient;
use strom_broker::{
    AuthorizerConfig, BrokerConfig, BrokerHandle, ListenerConfig, SaslConfig, SecurityProtocol,
    TlsConfig, UserConfig,
};
use support::Client;

const ADMIN: (&str, &str) = ("admin", "admin-secret");
const ALICE: (&str, &str) = ("alice", "alice-secret");

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn listener(name: &str, protocol: SecurityProtocol, advertised: Option<&str>) -> ListenerConfig {
    ListenerConfig {
        name: name.into(),
        address: "127.0.0.1:0".parse().expect("addr"),
        security_protocol: protocol,
        advertised_address: advertised.map(str::to_string),
    }
}

fn user((name, password): (&str, &str)) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: password.into(),
        mechanisms: None,
    }
}

/// A broker with a SASL_PLAINTEXT listener `sasl`, a PLAINTEXT listener `plain`, the
/// users admin (a super user) and alice, and the authorizer on.
fn secured_config(dir: &Path) -> BrokerConfig {
    let mut config = BrokerConfig {
        http_addr: None,
        listeners: vec![
            listener("sasl", SecurityProtocol::SaslPlaintext, None),
            listener(
                "plain",
                SecurityProtocol::Plaintext,
                Some("plain.example:1234"),
            ),
        ],
        ..BrokerConfig::ephemeral(dir)
    };
    config.security.users = vec![user(ADMIN), user(ALICE)];
    config.security.sasl = SaslConfig {
        connections_max_reauth_ms: Some(60_000),
        ..SaslConfig::default()
    };
    config.security.authorizer = AuthorizerConfig {
        enabled: true,
        super_users: vec!["User:admin".into()],
        allow_everyone_if_no_acl_found: false,
    };
    config
}

fn sasl_addr(broker: &BrokerHandle) -> SocketAddr {
    broker.listener_addr("sasl").expect("sasl listener")
}

/// Authenticates `client`: Ok(session lifetime) or Err(error code).
async fn login(
    client: &mut Client,
    mechanism: &str,
    (name, password): (&str, &str),
) -> Result<i64, i16> {
    let handshake = client
        .send(
            1,
            &SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
        )
        .await;
    if handshake.error_code != 0 {
        return Err(handshake.error_code);
    }
    let authenticate =
        |bytes: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
    if mechanism == "PLAIN" {
        let token = format!("\0{name}\0{password}").into_bytes();
        let response = client.send(2, &authenticate(token)).await;
        return if response.error_code == 0 {
            Ok(response.session_lifetime_ms)
        } else {
            Err(response.error_code)
        };
    }
    let mut scram = ScramClient::new(mechanism, name, password, "test-nonce").expect("mechanism");
    let first = client.send(2, &authenticate(scram.first())).await;
    if first.error_code != 0 {
        return Err(first.error_code);
    }
    let last = scram.last(&first.auth_bytes).expect("server-first");
    let response = client.send(2, &authenticate(last)).await;
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    assert!(
        scram.verify(&response.auth_bytes),
        "server proves it knows the key"
    );
    Ok(response.session_lifetime_ms)
}

async fn logged_in(addr: SocketAddr, who: (&str, &str)) -> Client {
    let mut client = Client::connect(addr).await;
    login(&mut client, "SCRAM-SHA-512", who)
        .await
        .expect("login");
    client
}

fn metadata(topics: Option<&[&str]>, auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n)))))
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create)
}

fn produce(topic: &str) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(support::batch(&[(None, Some(b"v"), 1)])))])])
}

async fn produce_code(client: &mut Client, topic: &str) -> i16 {
    client.send(9, &produce(topic)).await.responses[0].partition_responses[0].error_code
}

fn join(group: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::new())])
}

fn allow(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

async fn create_acls(client: &mut Client, acls: Vec<AclCreation>) -> Vec<i16> {
    let response = client
        .send(3, &CreateAclsRequest::default().with_creations(acls))
        .await;
    response.results.iter().map(|r| r.error_code).collect()
}

#[tokio::test]
async fn every_mechanism_authenticates_and_bad_credentials_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start_with(secured_config(dir.path())).await;
    let addr = sasl_addr(&broker);
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mut client = Client::connect(addr).await;
        let lifetime = login(&mut client, mechanism, ALICE).await;
        assert_eq!(
            lifetime,
            Ok(60_000),
            "{mechanism}: KIP-368 session lifetime"
        );
        // Re-authentication on the same connection, as the same user, is accepted.
        assert_eq!(login(&mut client, mechanism, ALICE).await, Ok(60_000));
        // ...but not as somebody else.
        assert_eq!(login(&mut client, mechanism, ADMIN).await, Err(58));
        assert!(
            client.is_closed().await,
            "{mechanism}: closed after a failed re-auth"
        );

        for wrong in [("alice", "wrong"), ("nobody", "alice-secret")] {
            let mut client = Client::connect(addr).await;
            assert_eq!(
                login(&mut client, mechanism, wrong).await,
                Err(58),
                "{mechanism} {wrong:?}: SASL_AUTHENTICATION_FAILED"
            );
            assert!(
                client.is_closed().await,
                "{mechanism}: closed after a failure"
            );
        }
    }
    let mut client = Client::connect(addr).await;
    assert_eq!(
        login(&mut client, "GSSAPI", ALICE).await,
        Err(33),
        "UNSUPPORTED_SASL_MECHANISM"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn requests_before_authentication_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start_with(secured_config(dir.path())).await;
    let mut client = Client::connect(sasl_addr(&broker)).await;
    let versions = client
        .send(3, &kafka_protocol::messages::ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0, "ApiVersions is allowed first");
    assert!(client.try_send(12, &metadata(None, false)).await.is_none());
    assert!(client.is_closed().await);
    // SaslAuthenticate without a handshake.
    let mut client = Client::connect(sasl_addr(&broker)).await;
    let response = client
        .send(
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::new()),
        )
        .await;
    assert_eq!(response.error_code, 34, "ILLEGAL_SASL_STATE");
    assert!(client.is_closed().await);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn acls_gate_produce_metadata_and_groups_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start_with(secured_config(dir.path())).await;
    let addr = sasl_addr(&broker);
    let mut admin = logged_in(addr, ADMIN).await;
    let mut alice = logged_in(addr, ALICE).await;

    // A super user may do everything, including auto-creating topics.
    let created = admin.send(12, &metadata(Some(&["orders"]), true)).await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(produce_code(&mut admin, "orders").await, 0);

    // Alice has no ACL: the topic is invisible, writes and groups are refused.
    let listed = alice.send(12, &metadata(None, false)).await;
    assert!(listed.topics.is_empty(), "no describable topic");
    let named = alice
        .send(12, &metadata(Some(&["orders", "new-topic"]), true))
        .await;
    assert_eq!(named.topics[0].error_code, 29, "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(named.topics[1].error_code, 29, "no CREATE either");
    assert_eq!(produce_code(&mut alice, "orders").await, 29);
    assert_eq!(
        alice.send(9, &join("g")).await.error_code,
        30,
        "GROUP_AUTHORIZATION_FAILED"
    );
    // Alice cannot grant herself anything.
    let own = create_acls(&mut alice, vec![allow(2, "orders", 3, "User:alice", 2)]).await;
    assert_eq!(own, [31], "CLUSTER_AUTHORIZATION_FAILED");

    // The admin grants WRITE on a prefix and READ on the group.
    let granted = create_acls(
        &mut admin,
        vec![
            allow(2, "ord", 4, "User:alice", 4),
            allow(3, "g", 3, "User:alice", 3),
        ],
    )
    .await;
    assert_eq!(granted, [0, 0]);
    let listed = alice.send(12, &metadata(None, false)).await;
    let names: Vec<_> = listed
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, ["orders"], "WRITE implies DESCRIBE");
    assert_eq!(produce_code(&mut alice, "orders").await, 0);
    let joined = alice.send(9, &join("g")).await;
    assert_ne!(joined.error_code, 30, "READ on the group lets alice join");

    // A new user through AlterUserScramCredentials, then a restart.
    let salt = b"pepper".to_vec();
    let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(b"bob-secret", &salt, 4096).to_vec();
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s("bob"))
            .with_mechanism(1)
            .with_iterations(4096)
            .with_salt(salt.into())
            .with_salted_password(salted.into()),
    ]);
    assert_eq!(admin.send(0, &upsert).await.results[0].error_code, 0);
    drop((admin, alice));
    broker.shutdown().await.expect("shutdown");

    let broker = support::start_with(secured_config(dir.path())).await;
    let addr = sasl_addr(&broker);
    let mut bob = Client::connect(addr).await;
    assert_eq!(
        login(&mut bob, "SCRAM-SHA-256", ("bob", "bob-secret")).await,
        Ok(60_000)
    );
    let mut alice = logged_in(addr, ALICE).await;
    assert_eq!(
        produce_code(&mut alice, "orders").await,
        0,
        "ACLs survive the restart"
    );
    assert_eq!(produce_code(&mut bob, "orders").await, 29);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn each_listener_advertises_its_own_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = secured_config(dir.path());
    config.security.authorizer.enabled = false;
    let broker = support::start_with(config).await;
    let mut plain = Client::connect(broker.listener_addr("plain").expect("plain")).await;
    let brokers = plain.send(12, &metadata(None, false)).await.brokers;
    assert_eq!(
        (brokers[0].host.as_str(), brokers[0].port),
        ("plain.example", 1234)
    );
    let addr = sasl_addr(&broker);
    let mut sasl = logged_in(addr, ALICE).await;
    let brokers = sasl.send(12, &metadata(None, false)).await.brokers;
    assert_eq!(
        (brokers[0].host.as_str(), brokers[0].port),
        ("127.0.0.1", i32::from(addr.port()))
    );
    broker.shutdown().await.expect("shutdown");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate (CN=writer,
/// O=strom), written as PEM files into `dir`.
struct Pki {
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    tls: TlsConfig,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "strom test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "strom");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "writer");
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let tls = TlsConfig {
        cert_file: write("server.pem", server.pem()),
        key_file: write("server.key", server_key.serialize_pem()),
        client_ca_file: Some(write("ca.pem", ca.pem())),
        client_auth: strom_broker::ClientAuth::Required,
    };
    Pki {
        ca: ca.der().clone(),
        client_chain: vec![client.der().clone()],
        client_key: PrivateKeyDer::try_from(client_key.serialize_der()).expect("key der"),
        tls,
    }
}

async fn tls_connect(
    addr: SocketAddr,
    pki: &Pki,
    with_certificate: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if with_certificate {
        builder
            .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate only at the first read.
    use tokio::io::AsyncWriteExt;
    stream.flush().await?;
    Ok(stream)
}

#[tokio::test]
async fn tls_client_certificates_become_principals_and_garbage_closes_only_that_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let mut config = BrokerConfig {
        http_addr: None,
        listeners: vec![listener("ssl", SecurityProtocol::Ssl, None)],
        ..BrokerConfig::ephemeral(dir.path().join("data"))
    };
    config.security.tls = Some(pki.tls.clone());
    config.security.authorizer = AuthorizerConfig {
        enabled: true,
        // rcgen writes CN as the first RDN: RFC 4514 (Kafka's format) puts it last.
        super_users: vec!["User:O=strom,CN=writer".into()],
        allow_everyone_if_no_acl_found: false,
    };
    let broker = support::start_with(config).await;
    let addr = broker.listener_addr("ssl").expect("ssl");

    // Plain Kafka bytes on the TLS port: that connection closes.
    let mut garbage = Client::connect(addr).await;
    assert!(garbage.try_send(12, &metadata(None, false)).await.is_none());

    // The client certificate's subject is the principal, a super user here.
    let stream = tls_connect(addr, &pki, true)
        .await
        .expect("TLS with a certificate");
    let mut writer = Client::over(stream);
    let created = writer.send(12, &metadata(Some(&["tls-topic"]), true)).await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(produce_code(&mut writer, "tls-topic").await, 0);

    // Without a certificate the handshake (or the first exchange) fails.
    let refused = match tls_connect(addr, &pki, false).await {
        Err(_) => true,
        Ok(stream) => Client::over(stream)
            .try_send(12, &metadata(None, false))
            .await
            .is_none(),
    };
    assert!(refused, "a client certificate is required");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn transactional_ids_need_their_own_acls() {
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, InitProducerIdRequest, ListTransactionsRequest, TransactionalId,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start_with(secured_config(dir.path())).await;
    let addr = sasl_addr(&broker);
    let mut admin = logged_in(addr, ADMIN).await;
    let mut alice = logged_in(addr, ALICE).await;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("payments"))))
        .with_transaction_timeout_ms(60_000);
    assert_eq!(
        alice.send(4, &init).await.error_code,
        53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
    // WRITE on the transactional id (resource type 5) lets alice start a producer,
    // but committing offsets for a group still needs READ on it.
    let granted = create_acls(&mut admin, vec![allow(5, "pay", 4, "User:alice", 4)]).await;
    assert_eq!(granted, [0]);
    let producer = alice.send(4, &init).await;
    assert_eq!(producer.error_code, 0);
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("payments")))
        .with_producer_id(producer.producer_id)
        .with_producer_epoch(producer.producer_epoch)
        .with_group_id(GroupId(s("ledger")));
    assert_eq!(
        alice.send(3, &add_offsets).await.error_code,
        30,
        "GROUP_AUTHORIZATION_FAILED"
    );
    // Listing shows only the ids the principal may describe: the admin's own
    // producer stays hidden from alice.
    let other = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("audit"))))
        .with_transaction_timeout_ms(60_000);
    assert_eq!(admin.send(4, &other).await.error_code, 0);
    let listed = alice
        .send(
            1,
            &ListTransactionsRequest::default().with_duration_filter(-1),
        )
        .await;
    let ids: Vec<_> = listed
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.0.to_string())
        .collect();
    assert_eq!(ids, ["payments"]);
    broker.shutdown().await.expect("shutdown");
}
