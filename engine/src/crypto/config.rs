//! TLS configuration builders for QUIC clients and servers, with documented defaults.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::aead::Cipher;
use super::certs::{read_pem_certs, read_pem_key, SkipServerVerification};
use super::provider::crypto_provider_arc;
use super::Version;

/// Sessions a client remembers for resumption (and 0-RTT) by default.
pub const DEFAULT_SESSION_CACHE_SIZE: usize = 256;

/// Session tickets a server sends after each full handshake by default (one per future
/// connection: RFC 9001 §4.5 says clients SHOULD NOT reuse tickets).
pub const DEFAULT_TICKETS_PER_CONNECTION: usize = 2;

/// Resumption sessions a server keeps in memory when 0-RTT is on (single-use, stateful
/// tickets). Memory: a few hundred bytes per entry.
pub const DEFAULT_SERVER_SESSION_CACHE_SIZE: usize = 4096;

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// No ALPN protocol configured: QUIC requires ALPN (RFC 9001 §8.1).
    #[error("no ALPN protocol configured (QUIC requires ALPN)")]
    NoAlpn,
    /// The cipher list is empty.
    #[error("no cipher suite configured")]
    NoCiphers,
    /// Certificate verification is on but no trust anchor was given.
    #[error(
        "no trusted root certificate configured (add one, or opt out with dangerous_skip_verify)"
    )]
    NoTrustAnchors,
    /// rustls rejected the configuration (bad certificate, key, ...).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A PEM file could not be read or parsed.
    #[error("PEM {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key log file could not be opened.
    #[error("key log file {path}: {source}")]
    KeyLogFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where TLS secrets are logged, in the NSS key log format Wireshark reads. Default: nowhere.
#[derive(Clone, Default)]
pub enum KeyLogTarget {
    /// No key logging (default).
    #[default]
    Disabled,
    /// The file named by the `SSLKEYLOGFILE` environment variable, if set (rustls `KeyLogFile`).
    FromEnv,
    /// This file (appended to, created if missing); the CLI's `--keylog FILE`. The runtime
    /// opens and writes it (`worker/keylog.rs`); the TLS configuration holds only the sink.
    File(PathBuf),
    /// A custom sink (tests, or forwarding to another logger).
    Custom(Arc<dyn rustls::KeyLog>),
}

impl fmt::Debug for KeyLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLogTarget::Disabled => f.write_str("Disabled"),
            KeyLogTarget::FromEnv => f.write_str("FromEnv"),
            KeyLogTarget::File(p) => write!(f, "File({})", p.display()),
            KeyLogTarget::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A QUIC client's TLS configuration, shared by its connections. Build with
/// [`TlsClientConfig::builder`].
///
/// It holds one rustls configuration per QUIC version, identical but for their session
/// stores, so that a ticket from a v1 connection is never offered on a v2 one (RFC 9369 §5).
#[derive(Clone, Debug)]
pub struct TlsClientConfig {
    v1: Arc<rustls::ClientConfig>,
    v2: Arc<rustls::ClientConfig>,
    /// The v1 and v2 session stores (none with resumption off): a session moved to the other
    /// version by compatible negotiation stores its tickets in that version's.
    pub(crate) stores: Option<[Arc<dyn rustls::client::ClientSessionStore>; 2]>,
}

impl TlsClientConfig {
    /// A builder with the defaults listed on [`ClientConfigBuilder`].
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// The rustls configuration for connections of `version`.
    pub fn rustls(&self, version: Version) -> &Arc<rustls::ClientConfig> {
        match version {
            Version::V1 => &self.v1,
            Version::V2 => &self.v2,
        }
    }
}

/// Builds a [`TlsClientConfig`].
///
/// Defaults: TLS 1.3 only; ciphers [`Cipher::ALL`] (AES-128-GCM, AES-256-GCM,
/// ChaCha20-Poly1305); server certificate verification ON against the roots given here (none by
/// default, so at least one must be added); no ALPN (at least one must be set); SNI sent;
/// session resumption ON with [`DEFAULT_SESSION_CACHE_SIZE`] remembered sessions; 0-RTT off;
/// key logging off.
#[derive(Debug)]
pub struct ClientConfigBuilder {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    ciphers: Vec<Cipher>,
    skip_verify: bool,
    keylog: KeyLogTarget,
    early_data: bool,
    session_cache_size: usize,
}

impl Default for ClientConfigBuilder {
    fn default() -> Self {
        Self {
            roots: RootCertStore::empty(),
            alpn: Vec::new(),
            ciphers: Cipher::ALL.to_vec(),
            skip_verify: false,
            keylog: KeyLogTarget::Disabled,
            early_data: false,
            session_cache_size: DEFAULT_SESSION_CACHE_SIZE,
        }
    }
}

impl ClientConfigBuilder {
    /// Trusts this root (or self-signed) certificate.
    pub fn add_root_certificate(
        mut self,
        cert: CertificateDer<'_>,
    ) -> Result<Self, TlsConfigError> {
        self.roots.add(cert)?;
        Ok(self)
    }

    /// Trusts every certificate of a PEM file (the CLI's `--ca FILE`).
    pub fn add_root_pem_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        for cert in read_pem_certs(path.as_ref())? {
            self.roots.add(cert)?;
        }
        Ok(self)
    }

    /// Replaces the trust anchors.
    pub fn root_certificates(mut self, roots: RootCertStore) -> Self {
        self.roots = roots;
        self
    }

    /// ALPN protocols to offer, in order of preference (e.g. `b"h3"`, `b"hq-interop"`).
    pub fn alpn_protocols<P: Into<Vec<u8>>>(
        mut self,
        protocols: impl IntoIterator<Item = P>,
    ) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Cipher suites to offer, in order of preference.
    pub fn ciphers(mut self, ciphers: &[Cipher]) -> Self {
        self.ciphers = ciphers.to_vec();
        self
    }

    /// **DANGER: turns server certificate verification off.** Any certificate for any name is
    /// accepted, so anyone on the path can impersonate the server. Tests and lab setups only.
    pub fn dangerous_skip_verify(mut self) -> Self {
        self.skip_verify = true;
        self
    }

    /// Where to log TLS secrets (default [`KeyLogTarget::Disabled`]).
    pub fn keylog(mut self, target: KeyLogTarget) -> Self {
        self.keylog = target;
        self
    }

    /// Attempt 0-RTT when resuming a session whose ticket allows it (default off: 0-RTT data
    /// can be replayed, RFC 9001 §9.2).
    pub fn enable_early_data(mut self, on: bool) -> Self {
        self.early_data = on;
        self
    }

    /// Sessions remembered for resumption (default [`DEFAULT_SESSION_CACHE_SIZE`]; 0 turns
    /// resumption off). Memory: one ticket (~a few hundred bytes) per entry.
    pub fn session_cache_size(mut self, entries: usize) -> Self {
        self.session_cache_size = entries;
        self
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<TlsClientConfig, TlsConfigError> {
        if self.alpn.is_empty() {
            return Err(TlsConfigError::NoAlpn);
        }
        if self.ciphers.is_empty() {
            return Err(TlsConfigError::NoCiphers);
        }
        if !self.skip_verify && self.roots.is_empty() {
            return Err(TlsConfigError::NoTrustAnchors);
        }
        let provider = crypto_provider_arc(&self.ciphers);
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.2
        //# Clients MUST NOT offer TLS versions older than 1.3.
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.4
        //# A client MUST authenticate the identity of the server.
        let mut config = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(SkipServerVerification::new(provider))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(self.roots).with_no_client_auth()
        };
        //= https://www.rfc-editor.org/rfc/rfc9001#section-8.1
        //# Unless another mechanism is used for agreeing on an application
        //# protocol, endpoints MUST use ALPN for this purpose.
        config.alpn_protocols = self.alpn;
        config.key_log = crate::worker::keylog::sink(&self.keylog)?;
        config.enable_early_data = self.early_data;
        let n = self.session_cache_size;
        let store = || -> Arc<dyn rustls::client::ClientSessionStore> {
            Arc::new(rustls::client::ClientSessionMemoryCache::new(n))
        };
        let stores = (n > 0).then(|| [store(), store()]);
        let resumption = |i: usize| match &stores {
            Some(s) => Resumption::store(s[i].clone()),
            None => Resumption::disabled(),
        };
        //= https://www.rfc-editor.org/rfc/rfc9369#section-5
        //# Clients MUST NOT use a
        //# session ticket or token from a QUIC version 1 connection to initiate
        //# a QUIC version 2 connection, and vice versa.
        config.resumption = resumption(0);
        let mut v2 = config.clone();
        v2.resumption = resumption(1);
        Ok(TlsClientConfig { v1: Arc::new(config), v2: Arc::new(v2), stores })
    }
}

/// A QUIC server's TLS configuration, shared by its connections. Build with
/// [`TlsServerConfig::builder`].
///
/// It holds one rustls configuration per QUIC version, identical but for their session ticket
/// keys (or session caches), so that a ticket issued on one version never resumes on the other
/// (RFC 9369 §5).
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    v1: Arc<rustls::ServerConfig>,
    v2: Arc<rustls::ServerConfig>,
}

impl TlsServerConfig {
    /// A builder serving `cert_chain` (end-entity first) with `key`; other settings default as
    /// listed on [`ServerConfigBuilder`].
    pub fn builder(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> ServerConfigBuilder {
        ServerConfigBuilder {
            cert_chain,
            key,
            alpn: Vec::new(),
            ciphers: Cipher::ALL.to_vec(),
            keylog: KeyLogTarget::Disabled,
            early_data: false,
            tickets: DEFAULT_TICKETS_PER_CONNECTION,
            session_cache_size: DEFAULT_SERVER_SESSION_CACHE_SIZE,
        }
    }

    /// A builder reading the certificate chain and private key from PEM files (the CLI's
    /// `--cert` / `--key`).
    pub fn builder_from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerConfigBuilder, TlsConfigError> {
        let chain = read_pem_certs(cert_chain.as_ref())?;
        let key = read_pem_key(key.as_ref())?;
        Ok(Self::builder(chain, key))
    }

    /// The rustls configuration for connections of `version`.
    pub fn rustls(&self, version: Version) -> &Arc<rustls::ServerConfig> {
        match version {
            Version::V1 => &self.v1,
            Version::V2 => &self.v2,
        }
    }
}

/// Builds a [`TlsServerConfig`].
///
/// Defaults: TLS 1.3 only; ciphers [`Cipher::ALL`], chosen in the server's order (the first
/// of them the client offers, whatever the client's order: rustls clients list AES-256-GCM
/// first, and its SHA-384 key schedule costs a handshake more than AES-128-GCM's SHA-256); no
/// client authentication; no ALPN (at least one must be set); session tickets on, [`DEFAULT_TICKETS_PER_CONNECTION`] per connection:
/// stateless (aws-lc-rs ticketer, key rotated every 6 hours, no server memory) while 0-RTT is
/// off, stateful and single-use (an in-memory cache of [`DEFAULT_SERVER_SESSION_CACHE_SIZE`]
/// sessions) when 0-RTT is on; 0-RTT off; key logging off.
#[derive(Debug)]
pub struct ServerConfigBuilder {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
    ciphers: Vec<Cipher>,
    keylog: KeyLogTarget,
    early_data: bool,
    tickets: usize,
    session_cache_size: usize,
}

impl ServerConfigBuilder {
    /// ALPN protocols accepted, in order of preference.
    pub fn alpn_protocols<P: Into<Vec<u8>>>(
        mut self,
        protocols: impl IntoIterator<Item = P>,
    ) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Cipher suites accepted (the client's preference order wins).
    pub fn ciphers(mut self, ciphers: &[Cipher]) -> Self {
        self.ciphers = ciphers.to_vec();
        self
    }

    /// Where to log TLS secrets (default [`KeyLogTarget::Disabled`]).
    pub fn keylog(mut self, target: KeyLogTarget) -> Self {
        self.keylog = target;
        self
    }

    /// Accept 0-RTT on resumed sessions (default off). Tickets then carry
    /// max_early_data_size = 0xffffffff, the QUIC sentinel, and become stateful and single-use
    /// (TLS 1.3's anti-replay for early data): the server remembers issued sessions.
    pub fn enable_early_data(mut self, on: bool) -> Self {
        self.early_data = on;
        self
    }

    /// Session tickets sent per connection (default [`DEFAULT_TICKETS_PER_CONNECTION`]; 0 turns
    /// resumption off). Each costs one NewSessionTicket in 1-RTT CRYPTO frames.
    pub fn session_tickets(mut self, per_connection: usize) -> Self {
        self.tickets = per_connection;
        self
    }

    /// Sessions remembered when 0-RTT is on (default [`DEFAULT_SERVER_SESSION_CACHE_SIZE`]; the
    /// oldest are evicted first).
    pub fn session_cache_size(mut self, entries: usize) -> Self {
        self.session_cache_size = entries;
        self
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<TlsServerConfig, TlsConfigError> {
        if self.alpn.is_empty() {
            return Err(TlsConfigError::NoAlpn);
        }
        if self.ciphers.is_empty() {
            return Err(TlsConfigError::NoCiphers);
        }
        let provider = crypto_provider_arc(&self.ciphers);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.cert_chain, self.key)?;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-8.1
        //# The server MUST
        //# treat the inability to select a compatible application protocol as a
        //# connection error of type 0x0178 (no_application_protocol).
        config.alpn_protocols = self.alpn;
        config.ignore_client_order = true;
        config.key_log = crate::worker::keylog::sink(&self.keylog)?;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.6.1
        //# Servers MUST NOT send the early_data extension with a
        //# max_early_data_size field set to any value other than 0xffffffff.
        config.max_early_data_size = if self.early_data { u32::MAX } else { 0 };
        config.send_tls13_tickets = self.tickets;
        //= https://www.rfc-editor.org/rfc/rfc9369#section-5
        //# Servers MUST validate the originating version of any session ticket
        //# or token and not accept one issued from a different version.
        // Each version gets its own ticket key (or session cache): a ticket from the other
        // version does not decrypt (is not found), and the handshake falls back to a full one.
        let mut v2 = config.clone();
        for c in [&mut config, &mut v2] {
            if self.tickets > 0 && self.early_data {
                //= https://www.rfc-editor.org/rfc/rfc9001#section-9.2
                //# Endpoints MUST implement and use the replay protections described in
                //# [TLS13], however it is recognized that these protections are
                //# imperfect.
                // Single-use tickets (RFC 8446 §8.1): each session leaves the cache when a
                // resumption consumes it, so a replayed ClientHello cannot get 0-RTT accepted.
                c.session_storage =
                    rustls::server::ServerSessionMemoryCache::new(self.session_cache_size);
            } else if self.tickets > 0 {
                c.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
            }
        }
        Ok(TlsServerConfig { v1: Arc::new(config), v2: Arc::new(v2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_reject_unusable_configs() {
        assert!(matches!(
            TlsClientConfig::builder().dangerous_skip_verify().build(),
            Err(TlsConfigError::NoAlpn)
        ));
        assert!(matches!(
            TlsClientConfig::builder().alpn_protocols([b"h3"]).build(),
            Err(TlsConfigError::NoTrustAnchors)
        ));
        assert!(matches!(
            TlsClientConfig::builder()
                .alpn_protocols([b"h3"])
                .dangerous_skip_verify()
                .ciphers(&[])
                .build(),
            Err(TlsConfigError::NoCiphers)
        ));
        let c = TlsClientConfig::builder()
            .alpn_protocols(["h3"])
            .dangerous_skip_verify()
            .build()
            .unwrap();
        assert_eq!(c.rustls(Version::V2).alpn_protocols, vec![b"h3".to_vec()]);
        assert!(matches!(
            TlsClientConfig::builder().add_root_pem_file("/nonexistent/ca.pem"),
            Err(TlsConfigError::Pem { .. })
        ));
        assert!(matches!(
            TlsClientConfig::builder()
                .alpn_protocols(["h3"])
                .dangerous_skip_verify()
                .keylog(KeyLogTarget::File("/nonexistent/dir/keys.log".into()))
                .build(),
            Err(TlsConfigError::KeyLogFile { .. })
        ));
    }
}
