//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): the admin
//! APIs behind `AdminClient.describe/alter_user_scram_credentials`. Clients send the
//! salted password (never the password); the broker derives and stores StoredKey and
//! ServerKey in the metadata log. Reading needs DESCRIBE on the cluster, changing ALTER.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;

use super::{blocking, str_bytes};
use crate::broker::Shared;
use crate::security::acl::{Operation, Resource};
use crate::security::scram::{ScramCredential, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use crate::security::{Security, SecurityEvent, Session};

/// A refused change or lookup: the code and a message.
type Refused = (ResponseError, String);

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(code) = session.check(Operation::Describe, &Resource::cluster()) {
        return DescribeUserScramCredentialsResponse::default().with_error_code(code.code());
    }
    let known = shared.security.credentials.describe();
    let result = |user: &str, infos: &[(ScramMechanism, i32)]| {
        DescribeUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
            .with_credential_infos(
                infos
                    .iter()
                    .map(|(m, iterations)| {
                        CredentialInfo::default()
                            .with_mechanism(*m as i8)
                            .with_iterations(*iterations)
                    })
                    .collect(),
            )
    };
    let results = match request.users.filter(|users| !users.is_empty()) {
        None => known
            .iter()
            .map(|(user, infos)| result(user, infos))
            .collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            let duplicated: BTreeSet<String> = users
                .iter()
                .filter(|u| !seen.insert(u.name.to_string()))
                .map(|u| u.name.to_string())
                .collect();
            seen.into_iter()
                .map(|user| {
                    let refused = |(code, message): Refused| {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(str_bytes(user.clone()))
                            .with_error_code(code.code())
                            .with_error_message(Some(str_bytes(message)))
                    };
                    if duplicated.contains(&user) {
                        return refused((
                            ResponseError::DuplicateResource,
                            format!("user `{user}` is named twice"),
                        ));
                    }
                    match known.get(&user) {
                        Some(infos) => result(&user, infos),
                        None => refused((
                            ResponseError::ResourceNotFound,
                            format!("user `{user}` has no SCRAM credential"),
                        )),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub(super) async fn alter(
    shared: &Shared,
    session: &Session,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let denied = session.check(Operation::Alter, &Resource::cluster()).err();
    // (user, mechanism) pairs named more than once are refused, as Kafka does.
    let mut named = BTreeSet::new();
    let mut twice = BTreeSet::new();
    let pairs = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        );
    for pair in pairs {
        if !named.insert(pair.clone()) {
            twice.insert(pair.0);
        }
    }
    let mut outcomes: Vec<(String, Result<SecurityEvent, Refused>)> = Vec::new();
    let checks = |user: &str, code: i8| -> Result<ScramMechanism, Refused> {
        if let Some(code) = denied {
            return Err((code, "ALTER on the cluster is needed".into()));
        }
        if user.is_empty() {
            return Err((
                ResponseError::UnacceptableCredential,
                "empty user name".into(),
            ));
        }
        if twice.contains(user) {
            return Err((
                ResponseError::DuplicateResource,
                format!("user `{user}` has two changes for one mechanism"),
            ));
        }
        ScramMechanism::from_code(code).ok_or_else(|| {
            (
                ResponseError::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {code}"),
            )
        })
    };
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        let outcome = checks(&user, deletion.mechanism).and_then(|mechanism| {
            if shared.security.credentials.get(&user, mechanism).is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    format!("user `{user}` has no {} credential", mechanism.name()),
                ));
            }
            Ok(SecurityEvent::ScramCredentialDeleted {
                user: user.clone(),
                mechanism,
            })
        });
        outcomes.push((user, outcome));
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        let outcome = checks(&user, upsertion.mechanism).and_then(|mechanism| {
            if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&upsertion.iterations) {
                return Err((
                    ResponseError::UnacceptableCredential,
                    format!("iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}"),
                ));
            }
            if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "empty salt or salted password".into(),
                ));
            }
            Ok(SecurityEvent::ScramCredentialSet {
                user: user.clone(),
                credential: ScramCredential::from_salted_password(
                    mechanism,
                    &upsertion.salted_password,
                    upsertion.salt.to_vec(),
                    upsertion.iterations,
                ),
            })
        });
        outcomes.push((user, outcome));
    }
    // A user's changes are applied together or not at all.
    let failed: BTreeSet<&String> = outcomes
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(user, _)| user)
        .collect();
    let events: Vec<SecurityEvent> = outcomes
        .iter()
        .filter(|(user, _)| !failed.contains(user))
        .filter_map(|(_, o)| o.as_ref().ok().cloned())
        .collect();
    let stored = if events.is_empty() {
        Ok(())
    } else {
        let security: Arc<Security> = Arc::clone(&shared.security);
        blocking(move || security.record(events))
            .await
            .map_err(|e| (e.code, e.message))
    };
    // One result per user: its first error, if any.
    let mut results: Vec<AlterUserScramCredentialsResult> = Vec::new();
    for (user, outcome) in outcomes.clone() {
        let error = outcome.err().or_else(|| stored.clone().err());
        match results.iter_mut().find(|r| r.user.as_str() == user) {
            Some(existing) if existing.error_code != 0 => {}
            Some(existing) => set_error(existing, error),
            None => {
                let mut result =
                    AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
                set_error(&mut result, error);
                results.push(result);
            }
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn set_error(result: &mut AlterUserScramCredentialsResult, error: Option<Refused>) {
    if let Some((code, message)) = error {
        result.error_code = code.code();
        result.error_message = Some(str_bytes(message));
    }
}
