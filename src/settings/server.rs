//! `weir serve`'s options: the config file, the password file and the TLS certificate, loaded once
//! and shared by both front ends (pgwire and HTTP), which apply one rule: every client is trusted
//! on a loopback address only, unless passwords are required.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// `weir serve --config weir.toml`: the server's options in one file. Command-line flags win.
///
/// ```toml
/// listen = "127.0.0.1:4566"
/// max_connections = 256
/// tls_cert = "server.crt"
/// tls_key = "server.key"
/// file_roots = ["/srv/inputs"]   # directories SQL may use besides the data directory
/// [users]            # SCRAM-SHA-256 (pgwire) and Basic (HTTP) passwords; without it every client is trusted
/// alice = "s3cret"
/// [http]             # /metrics, the JSON API and the dashboard
/// listen = "127.0.0.1:8081"
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<SocketAddr>,
    pub max_connections: Option<usize>,
    pub max_startup_connections: Option<usize>,
    pub insecure_trust_remote: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub file_roots: Option<Vec<PathBuf>>,
    pub users: Option<HashMap<String, String>>,
    pub http: Option<HttpConfig>,
}

/// The `[http]` table of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: Option<SocketAddr>,
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::invalid(format!("cannot read config {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::invalid(format!("config {}: {e}", path.display())))
    }
}

/// Users and their passwords: a file of `user:password` lines, or the config's `[users]` table.
pub struct PasswordFile {
    users: HashMap<String, String>,
}

/// The users only: passwords never reach a log.
impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::invalid(format!("cannot read password file {}: {e}", path.display())))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line
                .split_once(':')
                .ok_or_else(|| Error::invalid(format!("{}:{}: expected user:password", path.display(), n + 1)))?;
            users.insert(user.trim().to_string(), password.to_string());
        }
        if users.is_empty() {
            return Err(Error::invalid(format!("password file {} names no user", path.display())));
        }
        Ok(PasswordFile { users })
    }

    /// Users given inline (the `[users]` table of the config file).
    pub fn from_users(users: HashMap<String, String>) -> Result<Self> {
        if users.is_empty() {
            return Err(Error::invalid("the [users] table names no user"));
        }
        Ok(PasswordFile { users })
    }

    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// Whether `password` is `user`'s, compared in time that does not depend on where they differ.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(expected) = self.password(user) else { return false };
        let (a, b) = (expected.as_bytes(), password.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

/// The TLS side of a listener, from a PEM certificate chain and private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let bad = |what: &Path, e: &dyn std::fmt::Display| Error::invalid(format!("cannot load TLS file {}: {e}", what.display()));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| Error::invalid(format!("TLS certificate and key do not fit: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The one rule of both front ends: off a loopback address, clients must give a password, unless
/// the operator trusts the network explicitly.
pub fn check_listen_address(listen: SocketAddr, passwords: Option<&PasswordFile>, trust_remote: bool, what: &str) -> Result<()> {
    if listen.ip().is_loopback() || passwords.is_some() || trust_remote {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "refusing to serve {what} on {listen} with every client trusted; give --password-file, use a loopback address, or pass --insecure-trust-remote"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_exactly() {
        let users = PasswordFile::from_users(HashMap::from([("alice".to_string(), "s3cret".to_string())])).expect("users");
        assert!(users.verify("alice", "s3cret"));
        assert!(!users.verify("alice", "s3cre"));
        assert!(!users.verify("alice", "s3cret "));
        assert!(!users.verify("bob", "s3cret"));
    }

    #[test]
    fn remote_addresses_need_passwords_or_explicit_trust() {
        let remote: SocketAddr = "0.0.0.0:8081".parse().expect("address");
        let error = check_listen_address(remote, None, false, "HTTP").expect_err("refused");
        assert!(error.to_string().contains("refusing to serve HTTP on 0.0.0.0:8081"), "{error}");
        assert!(check_listen_address(remote, None, true, "HTTP").is_ok());
        assert!(check_listen_address("127.0.0.1:0".parse().expect("address"), None, false, "HTTP").is_ok());
        assert!(check_listen_address("[::1]:0".parse().expect("address"), None, false, "HTTP").is_ok());
    }
}
