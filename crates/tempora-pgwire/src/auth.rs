//! Who may connect. A client logs in as a role of the catalog with its
//! password, by SCRAM-SHA-256 (PostgreSQL's default) or MD5; loopback
//! connections may be trusted when the server is started so. TLS, when
//! configured, is offered to every client that asks for it.
//!
//! Secrets are the ones PostgreSQL stores: a SCRAM verifier
//! (StoredKey/ServerKey) proves the client knows the password without the
//! server holding it; an MD5 secret is `md5(password || name)`. As in
//! PostgreSQL a login for an unknown role, a role without a password, or one
//! whose secret does not fit the method runs the exchange to its end with a
//! made-up secret and then fails the same way a wrong password does, so a
//! client learns nothing about which roles exist.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use parking_lot::Mutex;
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::tokio::tokio_rustls::rustls;
use sha2::{Digest, Sha256};
use tempora_catalog::RoleDef;
use tempora_common::SqlState;

/// How a client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (RFC 7677), PostgreSQL's default.
    ScramSha256,
    /// MD5 for roles whose password is kept as an MD5 hash, SCRAM for the
    /// others (as PostgreSQL's `md5` method does).
    Md5,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "scram-sha-256" => Ok(Self::ScramSha256),
            "md5" => Ok(Self::Md5),
            other => Err(format!(
                "unknown authentication method \"{other}\" (scram-sha-256 or md5)"
            )),
        }
    }
}

/// The server's login settings, shared by every connection.
pub struct Security {
    pub method: AuthMethod,
    /// Loopback clients log in without a password.
    pub trust_loopback: bool,
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// Made once per server: the salts of made-up secrets derive from it,
    /// so they are the same for a name every time, as a real salt would be.
    mock_key: [u8; 32],
    /// Open sessions by role oid, for `CONNECTION LIMIT`.
    sessions: Arc<Mutex<HashMap<u32, i32>>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("method", &self.method)
            .field("trust_loopback", &self.trust_loopback)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Security {
    pub fn new(method: AuthMethod, trust_loopback: bool) -> Self {
        Self {
            method,
            trust_loopback,
            tls: None,
            mock_key: rand::random(),
            sessions: Default::default(),
        }
    }

    /// Offers TLS with the certificate chain and private key in these PEM files.
    pub fn with_tls(mut self, cert: &Path, key: &Path) -> Result<Self, String> {
        self.tls = Some(tls_acceptor(cert, key)?);
        Ok(self)
    }

    /// Counts a session of `role` against its connection limit; the
    /// returned guard gives the slot back when the connection ends.
    pub(crate) fn admit(&self, role: &RoleDef) -> Result<SessionSlot, PgWireError> {
        let mut sessions = self.sessions.lock();
        let open = sessions.entry(role.oid).or_insert(0);
        if role.connection_limit >= 0 && !role.superuser && *open >= role.connection_limit {
            return Err(fatal(
                SqlState("53300"),
                format!("too many connections for role \"{}\"", role.name),
            ));
        }
        *open += 1;
        Ok(SessionSlot {
            role: role.oid,
            sessions: self.sessions.clone(),
        })
    }

    /// A SCRAM secret that matches no password, for logins that must fail.
    fn mock_scram(&self, user: &str) -> ScramSecret {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.mock_key)
            .expect("HMAC takes any key length");
        mac.update(user.as_bytes());
        let digest = mac.finalize().into_bytes();
        ScramSecret {
            iterations: 4096,
            salt: B64.encode(&digest[..16]),
            stored_key: vec![0; 32],
            server_key: vec![0; 32],
        }
    }

    /// The MD5 secret of `role` when it has one and the method allows it.
    pub(crate) fn md5_secret(&self, role: Option<&RoleDef>) -> Option<Option<String>> {
        if self.method != AuthMethod::Md5 {
            return None;
        }
        match role.and_then(|r| r.password.as_deref()) {
            Some(p) if p.starts_with("md5") => Some(Some(p.to_string())),
            // A SCRAM secret: the md5 method uses SCRAM for it.
            Some(p) if p.starts_with("SCRAM-SHA-256$") => None,
            // No role or no password: an MD5 exchange that fails.
            _ => Some(None),
        }
    }

    /// The SCRAM secret of `role`, or a made-up one.
    pub(crate) fn scram_secret(&self, user: &str, role: Option<&RoleDef>) -> ScramSecret {
        role.and_then(|r| r.password.as_deref())
            .and_then(ScramSecret::parse)
            .unwrap_or_else(|| self.mock_scram(user))
    }
}

/// A counted session of a role; dropped when the connection ends.
pub(crate) struct SessionSlot {
    role: u32,
    sessions: Arc<Mutex<HashMap<u32, i32>>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(n) = self.sessions.lock().get_mut(&self.role) {
            *n -= 1;
        }
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<pgwire::tokio::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("could not read {}: {e}", path.display()))
    };
    let cert_pem = read(cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("could not load certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| format!("could not load private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not fit: {e}",
                cert.display(),
                key.display()
            )
        })?;
    // PostgreSQL 17 clients may open TLS directly, naming this protocol.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

/// An error that ends the login.
pub(crate) fn fatal(code: SqlState, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.code().into(),
        message.into(),
    )))
}

/// PostgreSQL's answer to a failed password login, whatever the cause.
pub(crate) fn password_failed(user: &str) -> PgWireError {
    fatal(
        SqlState::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

fn malformed(detail: &str) -> PgWireError {
    let mut info = ErrorInfo::new(
        "FATAL".into(),
        SqlState::PROTOCOL_VIOLATION.code().into(),
        "malformed SCRAM message".into(),
    );
    info.detail = Some(detail.into());
    PgWireError::UserError(Box::new(info))
}

/// The MD5 response a client computes for `secret` (`md5` + hex of
/// md5(password || name)) and the 4-byte `salt`.
pub(crate) fn md5_response(secret: &str, salt: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(secret.trim_start_matches("md5").as_bytes());
    hasher.update(salt);
    format!("md5{}", hex(&hasher.finalize()))
}

/// Whether a client's MD5 response is the expected one.
pub(crate) fn md5_matches(expected: Option<&str>, sent: &str) -> bool {
    expected.is_some_and(|e| same_bytes(e.as_bytes(), sent.as_bytes()))
}

/// Compares secrets in time that does not depend on where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SCRAM-SHA-256 verifier: `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`.
#[derive(Debug, Clone)]
pub(crate) struct ScramSecret {
    iterations: u32,
    /// Base64, as sent to the client.
    salt: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramSecret {
    fn parse(secret: &str) -> Option<Self> {
        let (iterations, salt, stored, server) = tempora_sql::scram_verifier_parts(secret)?;
        Some(Self {
            iterations,
            salt: salt.to_string(),
            stored_key: B64.decode(stored).ok()?,
            server_key: B64.decode(server).ok()?,
        })
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A SCRAM exchange after the server's first message.
#[derive(Debug)]
pub(crate) struct ScramExchange {
    secret: ScramSecret,
    /// The GS2 header the client sent, which `c=` must repeat.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Reads the client's first message and makes the server's.
    pub(crate) fn start(secret: ScramSecret, client_first: &[u8]) -> Result<Self, PgWireError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| malformed("The message is not valid UTF-8."))?;
        let mut parts = text.splitn(3, ',');
        let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("The GS2 header is incomplete."));
        };
        match binding {
            // "y": the client could bind to the channel but the server
            // offered no -PLUS mechanism, which is so.
            "n" | "y" => {}
            b if b.starts_with("p=") => {
                return Err(malformed(
                    "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.",
                ))
            }
            _ => return Err(malformed("Unexpected channel-binding flag.")),
        }
        if !authzid.is_empty() {
            return Err(fatal(
                SqlState::FEATURE_NOT_SUPPORTED,
                "client uses authorization identity, but it is not supported",
            ));
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed("The client nonce is missing."))?;
        let server_nonce: [u8; 18] = rand::random();
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={}", secret.salt, secret.iterations);
        Ok(Self {
            secret,
            gs2_header: format!("{binding},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }

    pub(crate) fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client's proof; on success the server's final message
    /// (its signature, proving it knew the verifier), on a wrong password None.
    pub(crate) fn finish(&self, client_final: &[u8]) -> Result<Option<String>, PgWireError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| malformed("The message is not valid UTF-8."))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("The client proof is missing."))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                binding = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        if binding != Some(B64.encode(self.gs2_header.as_bytes()).as_str()) {
            return Err(malformed(
                "The channel binding data does not match the GS2 header.",
            ));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(malformed("The nonce does not match."));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("The client proof is not valid base64."))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Ok(None);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let stored_key = Sha256::digest(&client_key);
        if !same_bytes(stored_key.as_slice(), &self.secret.stored_key) {
            return Ok(None);
        }
        let server_signature = hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(Some(format!("v={}", B64.encode(server_signature))))
    }
}

/// Where a connection's login stands.
#[derive(Debug, Default)]
pub(crate) enum Login {
    #[default]
    Start,
    /// AuthenticationMD5Password sent; the expected response, if any can match.
    Md5 {
        user: String,
        expected: Option<String>,
    },
    /// AuthenticationSASL sent, waiting for the client's first message.
    ScramStart { user: String, secret: ScramSecret },
    /// Server-first sent, waiting for the proof.
    ScramFinal {
        user: String,
        exchange: Box<ScramExchange>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(stored_password: &str, client_password: &str) -> Result<bool, PgWireError> {
        let verifier = postgres_protocol::password::scram_sha_256(stored_password.as_bytes());
        let secret = ScramSecret::parse(&verifier).unwrap();
        let mut client =
            ScramSha256::new(client_password.as_bytes(), ChannelBinding::unsupported());
        let exchange = ScramExchange::start(secret, client.message())?;
        client
            .update(exchange.server_first().as_bytes())
            .expect("client accepts server-first");
        match exchange.finish(client.message())? {
            Some(server_final) => {
                client
                    .finish(server_final.as_bytes())
                    .expect("client accepts the server's signature");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    #[test]
    fn scram_accepts_the_password_and_only_it() {
        assert!(run("s3cret", "s3cret").unwrap());
        assert!(!run("s3cret", "wrong").unwrap());
        assert!(!run("s3cret", "").unwrap());
    }

    #[test]
    fn made_up_secrets_match_nothing_and_keep_their_salt() {
        let security = Security::new(AuthMethod::ScramSha256, false);
        let a = security.scram_secret("nobody", None);
        let b = security.scram_secret("nobody", None);
        assert_eq!(a.salt, b.salt);
        assert_ne!(a.salt, security.scram_secret("other", None).salt);
        let mut client = ScramSha256::new(b"anything", ChannelBinding::unsupported());
        let exchange = ScramExchange::start(a, client.message()).unwrap();
        client.update(exchange.server_first().as_bytes()).unwrap();
        assert!(exchange.finish(client.message()).unwrap().is_none());
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        let security = Security::new(AuthMethod::ScramSha256, false);
        let secret = || security.scram_secret("u", None);
        for bad in [
            &b"garbage"[..],
            b"n,,",
            b"x,,n=,r=abc",
            b"n,,n=",
            &[0xff, 0xfe],
        ] {
            assert!(ScramExchange::start(secret(), bad).is_err(), "{bad:?}");
        }
        let exchange = ScramExchange::start(secret(), b"n,,n=,r=abc").unwrap();
        for bad in [
            &b"c=biws,r=abc"[..],
            b"c=eSws,r=x,p=AAAA",
            b"c=biws,r=abc,p=!!",
        ] {
            assert!(exchange.finish(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn md5_response_matches_libpq() {
        let secret = postgres_protocol::password::md5(b"pw", "alice");
        let salt = [1u8, 2, 3, 4];
        // What libpq sends: md5(hex(md5(password || user)) || salt).
        let inner = hex(&Md5::digest(b"pwalice"));
        let mut h = Md5::new();
        h.update(inner.as_bytes());
        h.update(salt);
        assert_eq!(
            md5_response(&secret, &salt),
            format!("md5{}", hex(&h.finalize()))
        );
    }
}
