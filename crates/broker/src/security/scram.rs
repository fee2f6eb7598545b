//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side: stored
//! credentials (salt, iterations, StoredKey, ServerKey — never the password) and the
//! two-round exchange. Proofs are compared in constant time.
//!
//! ```text
//! client-first  n,,n=<user>,r=<client nonce>
//! server-first  r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
//! client-final  c=biws,r=<nonce>,p=<base64 ClientProof>
//! server-final  v=<base64 ServerSignature>
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::sasl::{AuthFailed, SaslStep};

/// Fewest PBKDF2 iterations a credential may have (Kafka's minimum).
pub(crate) const ITERATIONS_MIN: i32 = 4096;
/// Most PBKDF2 iterations a credential may have (Kafka's maximum).
pub(crate) const ITERATIONS_MAX: i32 = 16384;
/// Bytes of random salt in credentials strom creates.
const SALT_BYTES: usize = 32;
/// Bytes of randomness in a server nonce (before base64).
const NONCE_BYTES: usize = 24;

/// A SCRAM hash function. The numbers are Kafka's `ScramMechanism` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum ScramMechanism {
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256 = 1,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512 = 2,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism with Kafka's code `code`.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as i8 == code)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => mac::<Hmac<Sha256>>(key, data),
            ScramMechanism::Sha512 => mac::<Hmac<Sha512>>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this HMAC, one block.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// HMAC takes keys of any length, so keying cannot fail; an empty tag (which
/// matches nothing) stands in for the impossible error rather than a panic.
fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// What the server keeps of a password (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScramCredential {
    /// Hash function.
    pub mechanism: ScramMechanism,
    /// Random salt.
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential of `password` with a fresh random salt.
    pub fn new(
        mechanism: ScramMechanism,
        password: &[u8],
        iterations: i32,
    ) -> Result<Self, getrandom::Error> {
        let mut salt = vec![0u8; SALT_BYTES];
        getrandom::fill(&mut salt)?;
        let salted = mechanism.salted_password(password, &salt, iterations.max(1) as u32);
        Ok(Self::from_salted_password(
            mechanism, &salted, salt, iterations,
        ))
    }

    /// The credential for a salted password computed elsewhere (AlterUserScramCredentials
    /// sends the salted password, not the password).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (for SASL/PLAIN):
    /// recomputes the salted password and compares StoredKey in constant time.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted =
            self.mechanism
                .salted_password(password, &self.salt, self.iterations.max(1) as u32);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        bool::from(self.mechanism.hash(&client_key).ct_eq(&self.stored_key))
    }
}

/// Where a SCRAM exchange stands.
enum Step {
    /// Waiting for client-first.
    ClientFirst,
    /// Server-first sent; waiting for client-final.
    ClientFinal {
        user: String,
        /// `None` for an unknown user: the exchange goes on with a made-up salt so
        /// that a client cannot tell unknown users from wrong passwords, then fails.
        credential: Option<ScramCredential>,
        gs2_header: String,
        nonce: String,
        /// client-first-bare "," server-first: the start of AuthMessage.
        auth_start: String,
    },
    /// Finished, one way or the other.
    Done,
}

/// The server side of one SCRAM exchange.
pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    step: Step,
}

impl ScramServer {
    /// A new exchange with a random server nonce.
    pub fn new(mechanism: ScramMechanism) -> Result<Self, getrandom::Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)?;
        Ok(Self::with_nonce(mechanism, BASE64.encode(nonce)))
    }

    /// A new exchange with a given server nonce (tests use RFC 7677's).
    pub fn with_nonce(mechanism: ScramMechanism, server_nonce: String) -> Self {
        ScramServer {
            mechanism,
            server_nonce,
            step: Step::ClientFirst,
        }
    }

    /// The hash function of this exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Handles the next client message; `lookup` finds a user's stored credential.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<SaslStep, AuthFailed> {
        let message = std::str::from_utf8(message)
            .map_err(|_| AuthFailed::malformed("SCRAM message is not UTF-8"))?;
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::ClientFirst => self.client_first(message, lookup),
            Step::ClientFinal {
                user,
                credential,
                gs2_header,
                nonce,
                auth_start,
            } => {
                let expected = Final {
                    gs2_header: &gs2_header,
                    nonce: &nonce,
                    auth_start: &auth_start,
                };
                let credential = credential.ok_or_else(|| AuthFailed::credentials(&user))?;
                let signature = expected.verify(message, &credential, &user)?;
                Ok(SaslStep::Authenticated {
                    user,
                    token: format!("v={}", BASE64.encode(signature)).into_bytes(),
                })
            }
            Step::Done => Err(AuthFailed::malformed("SCRAM exchange already finished")),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<SaslStep, AuthFailed> {
        // gs2-header: channel-binding flag "," [authzid] ","
        let mut parts = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailed::malformed("client-first has no gs2 header"));
        };
        if flag != "n" && flag != "y" {
            return Err(AuthFailed::malformed("channel binding is not supported"));
        }
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", name)) => user = Some(decode_saslname(name)?),
                Some(("r", nonce)) => client_nonce = Some(nonce),
                Some(("m", _)) => return Err(AuthFailed::malformed("mandatory extension")),
                // Kafka's extensions (e.g. tokenauth) are ignored.
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(AuthFailed::malformed("client-first lacks n= or r="));
        };
        if client_nonce.is_empty() {
            return Err(AuthFailed::malformed("empty client nonce"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_saslname(authzid)? != user {
                return Err(AuthFailed::malformed("authorization id differs from user"));
            }
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                self.mechanism
                    .hmac(self.server_nonce.as_bytes(), user.as_bytes()),
                ITERATIONS_MIN,
            ),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        self.step = Step::ClientFinal {
            auth_start: format!("{bare},{server_first}"),
            gs2_header: format!("{flag},{authzid},"),
            nonce,
            user,
            credential,
        };
        Ok(SaslStep::Challenge(server_first.into_bytes()))
    }
}

/// What client-final must match.
struct Final<'a> {
    gs2_header: &'a str,
    nonce: &'a str,
    auth_start: &'a str,
}

impl Final<'_> {
    /// Checks client-final and returns the ServerSignature.
    fn verify(
        &self,
        message: &str,
        credential: &ScramCredential,
        user: &str,
    ) -> Result<Vec<u8>, AuthFailed> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| AuthFailed::malformed("client-final has no proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", value)) => binding = Some(value),
                Some(("r", value)) => nonce = Some(value),
                _ => {}
            }
        }
        if binding != Some(BASE64.encode(self.gs2_header.as_bytes()).as_str()) {
            return Err(AuthFailed::malformed("channel binding mismatch"));
        }
        if nonce != Some(self.nonce) {
            return Err(AuthFailed::malformed("nonce mismatch"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| AuthFailed::malformed("proof is not base64"))?;
        let mechanism = credential.mechanism;
        let auth_message = format!("{},{without_proof}", self.auth_start);
        let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(AuthFailed::credentials(user));
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(AuthFailed::credentials(user));
        }
        Ok(mechanism.hmac(&credential.server_key, auth_message.as_bytes()))
    }
}

/// A saslname with RFC 5802's escapes (`=2C` for `,`, `=3D` for `=`) undone.
fn decode_saslname(name: &str) -> Result<String, AuthFailed> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(AuthFailed::malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Serde of byte strings as base64 text, so the metadata log stays readable JSON.
mod base64_bytes {
    use super::{Engine, BASE64};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The client side of SCRAM, for tests that log in over the wire.
pub mod client {
    use super::{ScramMechanism, BASE64};
    use base64::Engine;

    /// A client's SCRAM exchange.
    pub struct ScramClient {
        mechanism: ScramMechanism,
        password: String,
        client_first_bare: String,
        client_nonce: String,
        server_signature: Vec<u8>,
    }

    impl ScramClient {
        /// Starts an exchange for `user` (`mechanism` is `SCRAM-SHA-256` or `-512`).
        pub fn new(
            mechanism: &str,
            user: &str,
            password: &str,
            client_nonce: &str,
        ) -> Option<Self> {
            let user = user.replace('=', "=3D").replace(',', "=2C");
            Some(ScramClient {
                mechanism: ScramMechanism::from_name(mechanism)?,
                password: password.to_string(),
                client_first_bare: format!("n={user},r={client_nonce}"),
                client_nonce: client_nonce.to_string(),
                server_signature: Vec::new(),
            })
        }

        /// client-first-message.
        pub fn first(&self) -> Vec<u8> {
            format!("n,,{}", self.client_first_bare).into_bytes()
        }

        /// client-final-message for `server_first`; `None` if it is malformed.
        pub fn last(&mut self, server_first: &[u8]) -> Option<Vec<u8>> {
            let server_first = std::str::from_utf8(server_first).ok()?;
            let mut nonce = None;
            let mut salt = None;
            let mut iterations = None;
            for attribute in server_first.split(',') {
                match attribute.split_once('=') {
                    Some(("r", v)) => nonce = Some(v),
                    Some(("s", v)) => salt = BASE64.decode(v).ok(),
                    Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                    _ => {}
                }
            }
            let (nonce, salt, iterations) = (nonce?, salt?, iterations?);
            if !nonce.starts_with(&self.client_nonce) {
                return None;
            }
            let m = self.mechanism;
            let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
            let client_key = m.hmac(&salted, b"Client Key");
            let stored_key = m.hash(&client_key);
            let without_proof = format!("c=biws,r={nonce}");
            let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
            let signature = m.hmac(&stored_key, auth_message.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(k, s)| k ^ s)
                .collect();
            let server_key = m.hmac(&salted, b"Server Key");
            self.server_signature = m.hmac(&server_key, auth_message.as_bytes());
            Some(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
        }

        /// Whether server-final proves the server knew the credential.
        pub fn verify(&self, server_final: &[u8]) -> bool {
            server_final
                .strip_prefix(b"v=")
                .and_then(|v| BASE64.decode(v).ok())
                .is_some_and(|v| v == self.server_signature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client::ScramClient;
    use super::*;

    /// RFC 7677 section 3.
    #[test]
    fn rfc7677_sha256_test_vector() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential =
            ScramCredential::from_salted_password(ScramMechanism::Sha256, &salted, salt, 4096);
        let mut server = ScramServer::with_nonce(
            ScramMechanism::Sha256,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        );
        let first = server
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |user| {
                (user == "user").then(|| credential.clone())
            })
            .expect("client-first");
        assert_eq!(
            first,
            SaslStep::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let last = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                |_| None,
            )
            .expect("client-final");
        assert_eq!(
            last,
            SaslStep::Authenticated {
                user: "user".into(),
                token: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
    }

    fn exchange(mechanism: ScramMechanism, stored: &str, tried: &str) -> Result<bool, AuthFailed> {
        let credential = ScramCredential::new(mechanism, stored.as_bytes(), 4096).expect("rng");
        let mut client =
            ScramClient::new(mechanism.name(), "al,i=ce", tried, "clientnonce").expect("client");
        let mut server = ScramServer::new(mechanism).expect("rng");
        let SaslStep::Challenge(challenge) = server.step(&client.first(), |user| {
            (user == "al,i=ce").then(|| credential.clone())
        })?
        else {
            panic!("expected a challenge");
        };
        let last = client.last(&challenge).expect("valid server-first");
        match server.step(&last, |_| None)? {
            SaslStep::Authenticated { user, token } => {
                assert_eq!(user, "al,i=ce");
                Ok(client.verify(&token))
            }
            SaslStep::Challenge(_) => panic!("expected the end"),
        }
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_and_refuse_a_wrong_one() {
        for mechanism in ScramMechanism::ALL {
            assert_eq!(exchange(mechanism, "s3cret", "s3cret"), Ok(true));
            assert!(exchange(mechanism, "s3cret", "secret").is_err());
        }
    }

    #[test]
    fn unknown_users_get_a_challenge_then_fail() {
        let mut server = ScramServer::new(ScramMechanism::Sha512).expect("rng");
        let mut client = ScramClient::new("SCRAM-SHA-512", "nobody", "pw", "n0nce").expect("c");
        let SaslStep::Challenge(challenge) =
            server.step(&client.first(), |_| None).expect("challenge")
        else {
            panic!("expected a challenge");
        };
        let last = client.last(&challenge).expect("valid");
        assert!(server.step(&last, |_| None).is_err());
    }

    #[test]
    fn malformed_messages_fail_without_panicking() {
        for message in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=a,r=b",
            b"n,,n=a",
            b"n,,r=x",
            b"n,,n=a=,r=b",
            b"n,a=b,n=a,r=b",
            b"\xff\xfe",
        ] {
            let mut server = ScramServer::new(ScramMechanism::Sha256).expect("rng");
            assert!(server.step(message, |_| None).is_err(), "{message:?}");
        }
        let mut server = ScramServer::new(ScramMechanism::Sha256).expect("rng");
        let credential = ScramCredential::new(ScramMechanism::Sha256, b"pw", 4096).expect("rng");
        server
            .step(b"n,,n=a,r=b", |_| Some(credential))
            .expect("challenge");
        assert!(server.step(b"c=biws,r=wrong,p=AAAA", |_| None).is_err());
    }

    #[test]
    fn plain_passwords_verify_against_the_stored_credential() {
        let password = b"correct horse battery staple";
        let credential = ScramCredential::new(ScramMechanism::Sha512, password, 4096).expect("rng");
        assert!(credential.verify_password(password));
        assert!(!credential.verify_password(b"correct horse"));
        let json = serde_json::to_string(&credential).expect("json");
        assert!(!json.contains("horse"), "{json}");
        let back: ScramCredential = serde_json::from_str(&json).expect("parse");
        assert!(back.verify_password(password));
    }
}
