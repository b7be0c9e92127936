//! [`TlsSession`]: the TLS 1.3 handshake through rustls's QUIC API, per encryption level.
//!
//! The connection drives it like this (RFC 9001 §4.1.3, Figure 5):
//! 1. a client calls [`TlsSession::write_hs`] right away to get its ClientHello;
//! 2. each time new in-order CRYPTO data arrives at [`TlsSession::read_level`], pass it to
//!    [`TlsSession::read_hs`] (data for a later level is buffered by the connection until TLS
//!    reads at that level; new data at an earlier level is a PROTOCOL_VIOLATION);
//! 3. after every `read_hs`, call `write_hs` in a loop: each call appends the bytes to send at
//!    [`HandshakeWrite::level`] and may hand over keys for the next level; stop when a call
//!    returns no keys (it has then written everything it had);
//! 4. 0-RTT keys, when resuming with early data, come from [`TlsSession::zero_rtt_keys`] (client:
//!    after the first `write_hs`; server: after reading the ClientHello).

use std::sync::{Arc, Mutex};

use rustls::quic;
use rustls::HandshakeType;

use super::config::{TlsClientConfig, TlsServerConfig};
use super::hkdf::Secret;
use super::key_update::OneRttKeys;
use super::keys::{DirectionalKeys, Keys};
use super::{Cipher, CryptoError, Level, Side, Version};
use crate::error::{Error, TransportErrorCode};

/// A handshake failure: the code for CONNECTION_CLOSE (a CRYPTO_ERROR carrying the TLS alert,
/// RFC 9001 §4.8, or a transport error), a static reason, and rustls's detailed error if any.
#[derive(Clone, Debug)]
pub struct TlsError {
    /// The error code to close the connection with.
    pub code: TransportErrorCode,
    /// Short reason, usable as the CONNECTION_CLOSE reason phrase.
    pub reason: &'static str,
    /// rustls's error, when rustls reported one.
    pub tls: Option<rustls::Error>,
}

impl TlsError {
    fn protocol_violation(reason: &'static str) -> Self {
        Self { code: TransportErrorCode::PROTOCOL_VIOLATION, reason, tls: None }
    }

    fn internal(reason: &'static str) -> Self {
        Self { code: TransportErrorCode::INTERNAL_ERROR, reason, tls: None }
    }

    /// The connection error to close with.
    pub fn to_error(&self) -> Error {
        Error::new(self.code, self.reason)
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)?;
        if let Some(e) = &self.tls {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Error {
        e.to_error()
    }
}

impl From<CryptoError> for TlsError {
    fn from(_: CryptoError) -> Self {
        TlsError::internal("packet protection key setup failed")
    }
}

/// New keys TLS hands over.
#[derive(Debug)]
pub enum KeyChange {
    /// Handshake keys: both directions.
    Handshake(Keys),
    /// 1-RTT keys (generation 0) with the key-update machinery (boxed: it is large).
    OneRtt(Box<OneRttKeys>),
}

/// The result of one [`TlsSession::write_hs`] call.
#[derive(Debug)]
#[must_use = "the bytes written must be sent at `level` and the keys installed"]
pub struct HandshakeWrite {
    /// Encryption level of the bytes this call appended (possibly none).
    pub level: Level,
    /// Keys for the next level, available after those bytes. `None` means TLS has nothing more
    /// to write until it reads more.
    pub keys: Option<KeyChange>,
}

/// The key log labels of the four traffic secrets a [`SecretCapture`] keeps.
const CLIENT_HS: &str = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
const SERVER_HS: &str = "SERVER_HANDSHAKE_TRAFFIC_SECRET";
const CLIENT_AP: &str = "CLIENT_TRAFFIC_SECRET_0";
const SERVER_AP: &str = "SERVER_TRAFFIC_SECRET_0";

/// One connection's handshake and application traffic secrets, as rustls logs them (its
/// key log is the only way rustls hands them out), so that the packet keys can be derived
/// with another QUIC version's labels than the one rustls was started with: a client whose
/// ClientHello went out in v1 follows a server that moved the connection to v2 (RFC 9368
/// compatible negotiation). Whatever key log the configuration had still gets every secret.
struct SecretCapture {
    secrets: Mutex<[Option<Vec<u8>>; 4]>,
    forward: Arc<dyn rustls::KeyLog>,
}

impl SecretCapture {
    fn slot(label: &str) -> Option<usize> {
        [CLIENT_HS, SERVER_HS, CLIENT_AP, SERVER_AP].iter().position(|l| *l == label)
    }

    /// The secret logged under `label`, for a suite hashing with `cipher`'s hash.
    fn secret(&self, label: &str, cipher: Cipher) -> Result<Secret, TlsError> {
        let missing = TlsError::internal("traffic secret not available for the new version");
        let i = Self::slot(label).ok_or(missing.clone())?;
        let guard = self.secrets.lock().map_err(|_| missing.clone())?;
        let bytes = guard[i].as_deref().ok_or(missing)?;
        Ok(Secret::new(cipher.hash(), bytes)?)
    }
}

impl std::fmt::Debug for SecretCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("SecretCapture(..)")
    }
}

impl rustls::KeyLog for SecretCapture {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Some(i) = Self::slot(label) {
            if let Ok(mut g) = self.secrets.lock() {
                g[i] = Some(secret.to_vec());
            }
        }
        if self.forward.will_log(label) {
            self.forward.log(label, client_random, secret);
        }
    }

    fn will_log(&self, label: &str) -> bool {
        Self::slot(label).is_some() || self.forward.will_log(label)
    }
}

/// A client session store that forwards to the v1 or the v2 store: the original version's
/// for the ClientHello (tickets offered), the negotiated version's once a compatible
/// negotiation moved the connection (tickets received), so a ticket is only ever offered on
/// the version it was issued on (RFC 9369 §5).
#[derive(Debug)]
struct VersionedStore {
    stores: [Arc<dyn rustls::client::ClientSessionStore>; 2],
    current: std::sync::atomic::AtomicUsize,
}

impl VersionedStore {
    fn index(v: Version) -> usize {
        match v {
            Version::V1 => 0,
            Version::V2 => 1,
        }
    }

    fn store(&self) -> &dyn rustls::client::ClientSessionStore {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed).min(1);
        self.stores[i].as_ref()
    }
}

impl rustls::client::ClientSessionStore for VersionedStore {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.store().set_kx_hint(name, group)
    }

    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.store().kx_hint(name)
    }

    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.store().set_tls12_session(name, value)
    }

    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.store().tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.store().remove_tls12_session(name)
    }

    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.store().insert_tls13_ticket(name, value)
    }

    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.store().take_tls13_ticket(name)
    }
}

/// One connection's TLS 1.3 handshake (client or server) over QUIC CRYPTO frames.
pub struct TlsSession {
    conn: quic::Connection,
    side: Side,
    version: Version,
    /// The version whose labels derive Handshake and 1-RTT packet keys: `version` unless a
    /// compatible negotiation moved the connection (then from `capture`'s secrets).
    key_version: Version,
    capture: Option<Arc<SecretCapture>>,
    /// Client offering compatible versions: the store its tickets go to.
    store: Option<Arc<VersionedStore>>,
    write_level: Level,
    has_handshake_keys: bool,
    has_one_rtt_keys: bool,
}

impl TlsSession {
    /// Starts a client handshake with `server_name` (a DNS name or an IP address, used for SNI
    /// and certificate verification) carrying the encoded `transport_params`.
    pub fn client(
        config: &TlsClientConfig,
        version: Version,
        server_name: &str,
        transport_params: &[u8],
    ) -> Result<Self, TlsError> {
        Self::client_with(config, version, server_name, transport_params, false)
    }

    /// [`TlsSession::client`] that can also derive its packet keys for another QUIC version
    /// later ([`TlsSession::set_key_version`]), for a client that offers compatible versions.
    /// It costs a copy of the rustls configuration (to capture this session's secrets).
    pub fn client_compatible(
        config: &TlsClientConfig,
        version: Version,
        server_name: &str,
        transport_params: &[u8],
    ) -> Result<Self, TlsError> {
        Self::client_with(config, version, server_name, transport_params, true)
    }

    fn client_with(
        config: &TlsClientConfig,
        version: Version,
        server_name: &str,
        transport_params: &[u8],
        compatible: bool,
    ) -> Result<Self, TlsError> {
        let name =
            rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|_| {
                TlsError {
                    code: TransportErrorCode::INTERNAL_ERROR,
                    reason: "invalid server name",
                    tls: None,
                }
            })?;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.3
        //# Before starting the handshake, QUIC provides TLS with the transport
        //# parameters (see Section 8.2) that it wishes to carry.
        let mut rustls_config = config.rustls(version).clone();
        let mut capture = None;
        let mut store = None;
        if compatible {
            let c = Arc::new(SecretCapture {
                secrets: Mutex::new(Default::default()),
                forward: rustls_config.key_log.clone(),
            });
            let mut own = (*rustls_config).clone();
            own.key_log = c.clone();
            if let Some(stores) = config.stores.clone() {
                let vs = Arc::new(VersionedStore {
                    stores,
                    current: VersionedStore::index(version).into(),
                });
                own.resumption = rustls::client::Resumption::store(vs.clone());
                store = Some(vs);
            }
            rustls_config = Arc::new(own);
            capture = Some(c);
        }
        let conn = quic::ClientConnection::new(
            rustls_config,
            version.rustls(),
            name,
            transport_params.to_vec(),
        )
        .map_err(|e| TlsError {
            code: TransportErrorCode::INTERNAL_ERROR,
            reason: "TLS setup failed",
            tls: Some(e),
        })?;
        let mut s = Self::new(conn.into(), Side::Client, version);
        s.capture = capture;
        s.store = store;
        Ok(s)
    }

    /// Starts a server handshake carrying the encoded `transport_params`.
    pub fn server(
        config: &TlsServerConfig,
        version: Version,
        transport_params: &[u8],
    ) -> Result<Self, TlsError> {
        Self::server_with_limits(config, version, transport_params, &[])
    }

    /// [`TlsSession::server`] for a connection whose 0-RTT-relevant transport limits are
    /// `limits` (a fixed order of values that must not shrink, RFC 9000 §7.4.1). With 0-RTT
    /// on, the tickets this connection issues remember them, and a session issued under a
    /// larger value at any position does not resume here (so its 0-RTT is rejected). It costs
    /// a copy of the rustls configuration per connection, only with 0-RTT on.
    pub fn server_with_limits(
        config: &TlsServerConfig,
        version: Version,
        transport_params: &[u8],
        limits: &[u64],
    ) -> Result<Self, TlsError> {
        let mut rustls_config = config.rustls(version).clone();
        if rustls_config.max_early_data_size > 0 && !limits.is_empty() {
            let mut own = (*rustls_config).clone();
            own.session_storage = Arc::new(super::session::LimitBoundStore::new(
                own.session_storage.clone(),
                limits.to_vec(),
            ));
            rustls_config = Arc::new(own);
        }
        let conn =
            quic::ServerConnection::new(rustls_config, version.rustls(), transport_params.to_vec())
                .map_err(|e| TlsError {
                    code: TransportErrorCode::INTERNAL_ERROR,
                    reason: "TLS setup failed",
                    tls: Some(e),
                })?;
        Ok(Self::new(conn.into(), Side::Server, version))
    }

    /// Wraps a rustls connection built elsewhere (tests that need a misbehaving peer).
    #[cfg(test)]
    pub(crate) fn from_rustls_for_tests(
        conn: quic::Connection,
        side: Side,
        version: Version,
    ) -> Self {
        Self::new(conn, side, version)
    }

    fn new(conn: quic::Connection, side: Side, version: Version) -> Self {
        Self {
            conn,
            side,
            version,
            key_version: version,
            capture: None,
            store: None,
            write_level: Level::Initial,
            has_handshake_keys: false,
            has_one_rtt_keys: false,
        }
    }

    /// Client or server.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The QUIC version the handshake was started for.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The QUIC version whose labels derive the Handshake and 1-RTT packet keys.
    pub fn key_version(&self) -> Version {
        self.key_version
    }

    /// Whether [`TlsSession::set_key_version`] can still move the keys to another version.
    pub fn can_change_key_version(&self) -> bool {
        self.capture.is_some() && !self.has_handshake_keys
    }

    /// Derives the Handshake and 1-RTT packet keys with `version`'s labels (RFC 9369 §3.3.2)
    /// from the traffic secrets, instead of the version the session was started for: the
    /// connection was moved by compatible version negotiation. Only before Handshake keys were
    /// handed over, and only for a session built with [`TlsSession::client_compatible`].
    pub fn set_key_version(&mut self, version: Version) -> Result<(), TlsError> {
        if version != self.version && !self.can_change_key_version() {
            return Err(TlsError::internal("cannot change the version of the packet keys"));
        }
        if self.has_handshake_keys && version != self.key_version {
            return Err(TlsError::internal("cannot change the version of the packet keys"));
        }
        self.key_version = version;
        if let Some(vs) = &self.store {
            let i = VersionedStore::index(version);
            vs.current.store(i, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// The captured secrets `(local, remote)` of one level, by their client and server labels.
    fn captured(
        &self,
        client: &str,
        server: &str,
        cipher: Cipher,
    ) -> Result<(Secret, Secret), TlsError> {
        let cap = self.capture.as_ref().ok_or(TlsError::internal("no captured secrets"))?;
        let (c, s) = (cap.secret(client, cipher)?, cap.secret(server, cipher)?);
        Ok(match self.side {
            Side::Client => (c, s),
            Side::Server => (s, c),
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.3
    //# At any time, the TLS stack at an endpoint will have a current sending
    //# encryption level and a receiving encryption level.
    /// The level TLS reads CRYPTO data at now.
    pub fn read_level(&self) -> Level {
        if !self.has_handshake_keys {
            Level::Initial
        } else if !self.has_one_rtt_keys || self.conn.is_handshaking() {
            Level::Handshake
        } else {
            Level::OneRtt
        }
    }

    /// The level of the bytes the next [`TlsSession::write_hs`] appends.
    pub fn write_level(&self) -> Level {
        self.write_level
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.1
    //# In this document, the TLS handshake is considered complete when the
    //# TLS stack has reported that the handshake is complete.  This happens
    //# when the TLS stack has both sent a Finished message and verified the
    //# peer's Finished message.
    /// True until the handshake is complete.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Feeds in-order CRYPTO data received at `level`.
    ///
    /// Errors carry the code to close the connection with: a CRYPTO_ERROR (0x100 + TLS alert)
    /// for TLS failures, PROTOCOL_VIOLATION for data at the wrong level.
    pub fn read_hs(&mut self, level: Level, data: &[u8]) -> Result<(), TlsError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-8.3
        //# A server MUST
        //# treat receipt of a CRYPTO frame in a 0-RTT packet as a connection
        //# error of type PROTOCOL_VIOLATION.
        if level == Level::ZeroRtt {
            return Err(TlsError::protocol_violation("CRYPTO frame in a 0-RTT packet"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.3
        //# *  If the packet is from a previously installed encryption level, it
        //#    MUST NOT contain data that extends past the end of previously
        //#    received data in that flow.  Implementations MUST treat any
        //#    violations of this requirement as a connection error of type
        //#    PROTOCOL_VIOLATION.
        let expected = self.read_level();
        if level < expected {
            return Err(TlsError::protocol_violation(
                "new CRYPTO data at a previous encryption level",
            ));
        }
        if level > expected {
            return Err(TlsError::protocol_violation(
                "CRYPTO data at an encryption level not yet readable",
            ));
        }
        self.conn.read_hs(data).map_err(|e| self.map_error(e))
    }

    fn map_error(&self, e: rustls::Error) -> TlsError {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.4
        //# More specifically, servers MUST NOT send post-
        //# handshake TLS CertificateRequest messages, and clients MUST treat
        //# receipt of such messages as a connection error of type
        //# PROTOCOL_VIOLATION.
        if let rustls::Error::InappropriateHandshakeMessage {
            got_type: HandshakeType::CertificateRequest,
            ..
        } = e
        {
            if self.side == Side::Client && !self.conn.is_handshaking() {
                return TlsError {
                    code: TransportErrorCode::PROTOCOL_VIOLATION,
                    reason: "post-handshake CertificateRequest",
                    tls: Some(e),
                };
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.8
        //# A TLS alert is converted into a QUIC connection error.  The
        //# AlertDescription value is added to 0x0100 to produce a QUIC error
        //# code from the range reserved for CRYPTO_ERROR; see Section 20.1 of
        //# [QUIC-TRANSPORT].
        //
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.8
        //# As QUIC provides
        //# alternative mechanisms for connection termination and the TLS
        //# connection is only closed if an error is encountered, a QUIC endpoint
        //# MUST treat any alert from TLS as if it were at the "fatal" level.
        let code = match self.conn.alert() {
            Some(alert) => TransportErrorCode::crypto(u8::from(alert)),
            None => TransportErrorCode::INTERNAL_ERROR,
        };
        let reason = match &e {
            rustls::Error::InvalidCertificate(_) => "peer certificate rejected",
            rustls::Error::NoApplicationProtocol => "no application protocol",
            rustls::Error::NoCertificatesPresented => "no certificate presented",
            rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => "unexpected TLS message",
            rustls::Error::InvalidMessage(_) => "malformed TLS message",
            rustls::Error::PeerIncompatible(_) => "peer incompatible",
            rustls::Error::PeerMisbehaved(_) => "peer misbehaved",
            rustls::Error::DecryptError => "TLS decryption failed",
            rustls::Error::AlertReceived(_) => "TLS alert received",
            _ => "TLS handshake failed",
        };
        TlsError { code, reason, tls: Some(e) }
    }

    fn cipher(&self) -> Result<Cipher, TlsError> {
        self.negotiated_cipher().ok_or(TlsError::internal("no QUIC cipher suite negotiated"))
    }

    /// Appends the handshake bytes TLS has to send to `out` and reports their level and any
    /// keys that become available after them. Call in a loop until `keys` is `None`.
    pub fn write_hs(&mut self, out: &mut Vec<u8>) -> Result<HandshakeWrite, TlsError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.3
        //# When TLS provides handshake bytes to be sent, they are appended to
        //# the handshake bytes for the current encryption level.
        let level = self.write_level;
        let keys = match self.conn.write_hs(out) {
            None => None,
            Some(quic::KeyChange::Handshake { keys }) => {
                let cipher = self.cipher()?;
                self.write_level = Level::Handshake;
                self.has_handshake_keys = true;
                if self.key_version == self.version {
                    Some(KeyChange::Handshake(Keys::from_rustls(keys, cipher)))
                } else {
                    let (l, r) = self.captured(CLIENT_HS, SERVER_HS, cipher)?;
                    let v = self.key_version;
                    Some(KeyChange::Handshake(Keys {
                        local: DirectionalKeys::from_secret(cipher, v, &l)?,
                        remote: DirectionalKeys::from_secret(cipher, v, &r)?,
                    }))
                }
            }
            Some(quic::KeyChange::OneRtt { keys, next }) => {
                let cipher = self.cipher()?;
                self.write_level = Level::OneRtt;
                self.has_one_rtt_keys = true;
                let keys = if self.key_version == self.version {
                    OneRttKeys::from_rustls(cipher, keys, next)?
                } else {
                    let (l, r) = self.captured(CLIENT_AP, SERVER_AP, cipher)?;
                    OneRttKeys::from_secrets(cipher, self.key_version, &l, &r)?
                };
                Some(KeyChange::OneRtt(Box::new(keys)))
            }
        };
        Ok(HandshakeWrite { level, keys })
    }

    /// 0-RTT keys, when this handshake resumes a session with early data: the client's keys
    /// to send, or the server's to receive.
    pub fn zero_rtt_keys(&self) -> Option<DirectionalKeys> {
        let keys = self.conn.zero_rtt_keys()?;
        Some(DirectionalKeys::from_rustls(keys, self.negotiated_cipher()?))
    }

    /// The AEAD of the negotiated cipher suite, once known.
    pub fn negotiated_cipher(&self) -> Option<Cipher> {
        Cipher::from_tls_suite(self.conn.negotiated_cipher_suite()?.suite())
    }

    /// The negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The peer's encoded transport parameters (authenticated once the handshake completes).
    pub fn peer_transport_parameters(&self) -> Option<&[u8]> {
        self.conn.quic_transport_parameters()
    }

    /// The peer's certificate chain, end-entity first.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// True when the handshake resumed an earlier session.
    pub fn is_resumed(&self) -> bool {
        matches!(self.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed))
    }

    /// The SNI the client sent (server side).
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            quic::Connection::Server(s) => s.server_name(),
            quic::Connection::Client(_) => None,
        }
    }

    /// Whether the server accepted 0-RTT (client side).
    pub fn is_early_data_accepted(&self) -> bool {
        match &self.conn {
            quic::Connection::Client(c) => c.is_early_data_accepted(),
            quic::Connection::Server(_) => false,
        }
    }

    /// Session tickets received so far (client side).
    pub fn tickets_received(&self) -> u32 {
        match &self.conn {
            quic::Connection::Client(c) => c.tls13_tickets_received(),
            quic::Connection::Server(_) => 0,
        }
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("side", &self.side)
            .field("version", &self.version)
            .field("key_version", &self.key_version)
            .field("read_level", &self.read_level())
            .field("write_level", &self.write_level)
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}
