//! Connection configuration: validated transport settings with named defaults, and the CID source.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cid::{ConnectionId, ResetToken, MAX_CID_LEN};
use crate::congestion::{self, Algorithm};
use crate::crypto::{TlsClientConfig, TlsServerConfig};
use crate::endpoint::{CidFormat, RetryPolicy};
use crate::streams::StreamsConfig;

use super::token_store::TokenStore;

/// Default idle timeout we advertise: 30 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default handshake timeout: 5 s. A connection whose handshake has not completed by then is
/// dropped silently, whatever the idle timeout, so half-open state that a flood of Initials
/// creates does not live for the whole idle timeout. With the 333 ms initial RTT the first
/// probe timeout is about 1 s and then doubles, so 5 s lets a handshake survive a flight lost
/// twice in a row (probes at about 1 s and 3 s) on any RTT up to a few hundred ms; three
/// losses in a row (the third probe at about 7 s) need a longer timeout (MsQuic's is 10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest UDP payload we build: 1200 bytes, the size every QUIC path must carry.
pub const DEFAULT_MAX_DATAGRAM_SIZE: u16 = 1200;
/// Largest UDP payload this implementation ever builds: QUIC's largest max_udp_payload_size
/// (RFC 9000 §18.2), what a 65536-byte loopback MTU carries over IPv6.
pub const MAX_DATAGRAM_SIZE_LIMIT: u16 = 65527;
/// Default length of the connection IDs we issue: 8 bytes.
pub const DEFAULT_CID_LEN: usize = 8;
/// Default active_connection_id_limit we advertise (how many of the peer's CIDs we keep).
pub const DEFAULT_ACTIVE_CID_LIMIT: u64 = 4;
/// Most connection IDs we issue to the peer at once, whatever its limit.
pub const MAX_ISSUED_CIDS: u64 = 8;
/// Default max_ack_delay we advertise: 25 ms (RFC 9000 §18.2 default).
pub const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);
/// Default ack_delay_exponent we advertise (RFC 9000 §18.2 default).
pub const DEFAULT_ACK_DELAY_EXPONENT: u8 = 3;
/// Default initial RTT before the first sample (RFC 9002 §6.2.2: 333 ms).
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(333);
/// Default for initiating key updates: never on a packet count (only on demand or near the
/// AEAD confidentiality limit).
pub const DEFAULT_KEY_UPDATE_INTERVAL: Option<u64> = None;

/// A source of connection IDs this endpoint issues, with their stateless reset tokens. The
/// endpoint supplies one so it can embed its worker index (or a QUIC-LB server ID) and derive
/// the reset token from its static key.
pub trait CidGenerator: Send + fmt::Debug {
    /// Length of every ID produced (short headers do not encode it).
    fn cid_len(&self) -> usize;
    /// A fresh connection ID and its stateless reset token.
    fn generate(&mut self) -> (ConnectionId, ResetToken);
}

/// A [`CidGenerator`] drawing IDs and tokens from a seeded ChaCha8 generator (tests, tools).
#[derive(Debug)]
pub struct RandomCidGenerator {
    len: usize,
    rng: ChaCha8Rng,
}

impl RandomCidGenerator {
    /// IDs of `len` bytes (clamped to 1..=20), from `seed`.
    pub fn new(len: usize, seed: u64) -> Self {
        Self { len: len.clamp(1, MAX_CID_LEN), rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl CidGenerator for RandomCidGenerator {
    fn cid_len(&self) -> usize {
        self.len
    }

    fn generate(&mut self) -> (ConnectionId, ResetToken) {
        let mut b = [0u8; MAX_CID_LEN];
        self.rng.fill_bytes(&mut b[..self.len]);
        let mut token = [0u8; 16];
        self.rng.fill_bytes(&mut token);
        // `len` is clamped to 1..=20.
        (ConnectionId::new(&b[..self.len]).unwrap_or_default(), ResetToken(token))
    }
}

/// An invalid transport setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection configuration: {0}")]
pub struct ConfigError(pub &'static str);

/// Transport settings of a connection. Build with [`TransportConfig::default`] and the
/// validating `with_*` setters.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) max_datagram_size: u16,
    pub(crate) active_cid_limit: u64,
    pub(crate) max_ack_delay: Duration,
    pub(crate) ack_delay_exponent: u8,
    pub(crate) initial_rtt: Duration,
    pub(crate) congestion: Algorithm,
    pub(crate) key_update_interval: Option<u64>,
    pub(crate) streams: StreamsConfig,
    pub(crate) rng_seed: u64,
    pub(crate) ecn: bool,
    pub(crate) pmtud: bool,
    pub(crate) pmtud_upper_bound: u16,
    pub(crate) pmtud_raise_interval: Duration,
    pub(crate) initial_window: Option<u64>,
    pub(crate) pacing: bool,
    /// Use the ACK frequency extension both ways (draft-ietf-quic-ack-frequency).
    pub(crate) ack_frequency: bool,
    /// Largest UDP payload we can receive (advertised as max_udp_payload_size).
    pub(crate) max_recv_udp_payload: u64,
    /// DATAGRAM (RFC 9221): our max_datagram_frame_size (`None`: not advertised).
    pub(crate) max_datagram_frame_size: Option<u64>,
    /// DATAGRAM: most datagrams held in each direction's queue.
    pub(crate) datagram_queue: usize,
    /// Send disable_active_migration (RFC 9000 §18.2).
    pub(crate) disable_active_migration: bool,
    /// Client: move to a server's preferred address once the handshake is confirmed.
    pub(crate) use_preferred_address: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            active_cid_limit: DEFAULT_ACTIVE_CID_LIMIT,
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
            ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            initial_rtt: DEFAULT_INITIAL_RTT,
            congestion: Algorithm::default(),
            key_update_interval: DEFAULT_KEY_UPDATE_INTERVAL,
            streams: StreamsConfig::default(),
            rng_seed: 0,
            ecn: true,
            pmtud: super::mtud::DEFAULT_PMTUD,
            pmtud_upper_bound: super::mtud::DEFAULT_PMTU_UPPER_BOUND,
            pmtud_raise_interval: super::mtud::DEFAULT_PMTU_RAISE_INTERVAL,
            initial_window: None,
            pacing: true,
            ack_frequency: true,
            max_recv_udp_payload: crate::transport_params::DEFAULT_MAX_UDP_PAYLOAD_SIZE,
            max_datagram_frame_size: None,
            datagram_queue: super::datagrams::DEFAULT_DATAGRAM_QUEUE,
            disable_active_migration: false,
            use_preferred_address: true,
        }
    }
}

impl TransportConfig {
    /// Fits the datagram sizes to what the datapath queue carries (`Capabilities::
    /// max_udp_payload`): the size we start with and the PMTU search's upper bound are
    /// lowered to it, and it becomes the max_udp_payload_size we advertise, so the peer never
    /// sends datagrams the queue would drop (an AF_XDP frame is smaller than 64 KiB). Never
    /// below QUIC's 1200-byte minimum. The runtime applies it to every connection.
    pub fn fit_datapath(mut self, max_udp_payload: usize) -> Self {
        let cap = u16::try_from(max_udp_payload).unwrap_or(u16::MAX).max(DEFAULT_MAX_DATAGRAM_SIZE);
        self.max_datagram_size = self.max_datagram_size.min(cap);
        self.pmtud_upper_bound = self.pmtud_upper_bound.min(cap);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# This limit does act as an additional constraint on datagram size in
        //# the same way as the path MTU, but it is a property of the endpoint
        //# and not the path; see Section 14.
        self.max_recv_udp_payload = self.max_recv_udp_payload.min(u64::from(cap));
        self
    }

    /// The idle timeout we advertise (`None` disables ours; the peer's may still apply).
    /// Default 30 s. The effective timeout is the smaller of both sides', and never below
    /// 3 PTO. Must fit the transport parameter (under 2^62 ms).
    pub fn with_idle_timeout(mut self, t: Option<Duration>) -> Result<Self, ConfigError> {
        if t.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError("idle timeout of zero: use None to disable"));
        }
        self.idle_timeout = t;
        Ok(self)
    }

    /// How long the handshake may take from the connection's creation (`None`: only the idle
    /// timeout applies). Default [`DEFAULT_HANDSHAKE_TIMEOUT`] (5 s). Past it a connection
    /// that has not completed its handshake is dropped silently (no packet is sent), which
    /// bounds how long a flood of Initials keeps half-open state; too short a value fails
    /// handshakes on slow, lossy paths.
    pub fn with_handshake_timeout(mut self, t: Option<Duration>) -> Result<Self, ConfigError> {
        if t.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError("handshake timeout of zero: use None to disable"));
        }
        self.handshake_timeout = t;
        Ok(self)
    }

    /// The UDP payload size datagrams start with, in bytes. Default 1200 (always safe); up to
    /// 65527. Path MTU discovery raises it from there up to
    /// [`with_pmtud_upper_bound`](Self::with_pmtud_upper_bound). Larger datagrams cost fewer
    /// packets per byte but are lost on paths with a smaller MTU (black-hole detection then
    /// falls back to 1200 and searches again).
    pub fn with_max_datagram_size(mut self, size: u16) -> Result<Self, ConfigError> {
        if !(DEFAULT_MAX_DATAGRAM_SIZE..=MAX_DATAGRAM_SIZE_LIMIT).contains(&size) {
            return Err(ConfigError("max_datagram_size must be in 1200..=65527"));
        }
        if self.initial_window.is_some_and(|w| w < 2 * u64::from(size)) {
            return Err(ConfigError("initial window below two datagrams of this size"));
        }
        self.max_datagram_size = size;
        Ok(self)
    }

    /// How many of the peer's connection IDs we accept (active_connection_id_limit).
    /// Default 4; at least 2 (RFC 9000 §18.2). Each costs ~40 bytes.
    pub fn with_active_cid_limit(mut self, n: u64) -> Result<Self, ConfigError> {
        if !(2..=64).contains(&n) {
            return Err(ConfigError("active_connection_id_limit must be in 2..=64"));
        }
        self.active_cid_limit = n;
        Ok(self)
    }

    /// The ACK frequency extension (draft-ietf-quic-ack-frequency), both ways. Default on:
    /// we advertise min_ack_delay (1 ms) and honour the peer's ACK_FREQUENCY and IMMEDIATE_ACK
    /// frames, and to a peer that advertised it we send ACK_FREQUENCY asking for one ACK per
    /// eighth of the congestion window (at most one per 128 packets, within a quarter RTT)
    /// and put IMMEDIATE_ACK in PTO probes. Off: ACKs follow RFC 9000 §13.2 only (every
    /// second ack-eliciting packet or max_ack_delay), which costs the peer and us one ACK
    /// datagram per two data packets.
    pub fn with_ack_frequency(mut self, on: bool) -> Self {
        self.ack_frequency = on;
        self
    }

    /// Accept DATAGRAM frames (RFC 9221) of up to `max_frame_size` bytes (advertised as
    /// max_datagram_frame_size; at least 64, at most 65535) and hold at most `queue` datagrams
    /// (1..=65536) in each direction: sending drops the oldest queued datagram when the queue
    /// is full, and so does receiving when the application has not read them. Default off.
    pub fn with_datagrams(
        mut self,
        max_frame_size: u64,
        queue: usize,
    ) -> Result<Self, ConfigError> {
        if !(64..=65535).contains(&max_frame_size) {
            return Err(ConfigError("max_datagram_frame_size must be 64..=65535"));
        }
        if !(1..=65536).contains(&queue) {
            return Err(ConfigError("datagram queue must hold 1..=65536 datagrams"));
        }
        self.max_datagram_frame_size = Some(max_frame_size);
        self.datagram_queue = queue;
        Ok(self)
    }

    /// Our max_ack_delay. Default 25 ms; below 2^14 ms. Longer delays mean fewer ACKs and
    /// slower loss recovery at the peer.
    pub fn with_max_ack_delay(mut self, d: Duration) -> Result<Self, ConfigError> {
        if d.as_millis() >= 1 << 14 {
            return Err(ConfigError("max_ack_delay must be below 2^14 ms"));
        }
        self.max_ack_delay = d;
        Ok(self)
    }

    /// RTT assumed before the first sample. Default 333 ms (RFC 9002). Must be non-zero.
    pub fn with_initial_rtt(mut self, rtt: Duration) -> Result<Self, ConfigError> {
        if rtt.is_zero() {
            return Err(ConfigError("initial RTT of zero"));
        }
        self.initial_rtt = rtt;
        Ok(self)
    }

    /// The congestion controller. Default BBR ([`Algorithm::Bbr`]).
    pub fn with_congestion(mut self, alg: Algorithm) -> Self {
        self.congestion = alg;
        self
    }

    /// The congestion controller by name ("newreno", "cubic", "bbr").
    pub fn with_congestion_by_name(self, name: &str) -> Result<Self, ConfigError> {
        let alg =
            name.parse::<Algorithm>().map_err(|_| ConfigError("unknown congestion controller"))?;
        Ok(self.with_congestion(alg))
    }

    /// Initiate a key update every `n` packets sent in one key phase (once permitted).
    /// Default `None`: only on demand ([`super::Connection::initiate_key_update`]) or near the
    /// AEAD confidentiality limit. `n` must be at least 16.
    pub fn with_key_update_interval(mut self, n: Option<u64>) -> Result<Self, ConfigError> {
        if n.is_some_and(|n| n < 16) {
            return Err(ConfigError("key update interval below 16 packets"));
        }
        self.key_update_interval = n;
        Ok(self)
    }

    /// Stream limits and windows (see [`StreamsConfig`]).
    pub fn with_streams(mut self, streams: StreamsConfig) -> Self {
        self.streams = streams;
        self
    }

    /// Seed of the connection's random generator (initial DCID, CIDs of the default
    /// generator). Default 0; give every connection its own.
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = seed;
        self
    }

    /// Whether to mark packets ECT(0) and validate ECN. Default true.
    pub fn with_ecn(mut self, on: bool) -> Self {
        self.ecn = on;
        self
    }

    /// Whether to send the disable_active_migration transport parameter: the peer (a client)
    /// must not move the connection to a new local address (RFC 9000 §18.2); a client that
    /// asks anyway gets [`super::MigrationError::DisabledByPeer`]. Default false.
    pub fn with_disable_active_migration(mut self, on: bool) -> Self {
        self.disable_active_migration = on;
        self
    }

    /// Client: whether to move to a server's preferred address (RFC 9000 §9.6) once the
    /// handshake is confirmed, validating it first-hand and falling back to the original
    /// address when it does not answer. Default true.
    pub fn with_use_preferred_address(mut self, on: bool) -> Self {
        self.use_preferred_address = on;
        self
    }

    /// Whether to run path MTU discovery (DPLPMTUD, RFC 8899 / RFC 9000 §14.3): after the
    /// handshake is confirmed, PING + PADDING probes search for the largest datagram the path
    /// carries, up to [`with_pmtud_upper_bound`](Self::with_pmtud_upper_bound). Default true
    /// ([`DEFAULT_PMTUD`](super::mtud::DEFAULT_PMTUD)): probes cost one small datagram per
    /// search step, outside the congestion window's accounting. Off: datagrams keep the configured [`with_max_datagram_size`](Self::with_max_datagram_size)
    /// (falling back to 1200 bytes on a black hole).
    pub fn with_pmtud(mut self, on: bool) -> Self {
        self.pmtud = on;
        self
    }

    /// Upper bound of the PMTU search in UDP payload bytes: the local and datapath limit
    /// (the peer's max_udp_payload_size lowers it further). Default
    /// [`DEFAULT_PMTU_UPPER_BOUND`](super::DEFAULT_PMTU_UPPER_BOUND) (65527: the search
    /// climbs to whatever the path carries, 1472 on Ethernet, 8972 on 9000-byte jumbo frames,
    /// 65507 on IPv4 loopback); must be in 1200..=65527.
    pub fn with_pmtud_upper_bound(mut self, size: u16) -> Result<Self, ConfigError> {
        if !(DEFAULT_MAX_DATAGRAM_SIZE..=MAX_DATAGRAM_SIZE_LIMIT).contains(&size) {
            return Err(ConfigError("pmtud upper bound must be in 1200..=65527"));
        }
        self.pmtud_upper_bound = size;
        Ok(self)
    }

    /// How long a completed PMTU search holds before searching again (RFC 8899
    /// PMTU_RAISE_TIMER). Default [`DEFAULT_PMTU_RAISE_INTERVAL`](super::DEFAULT_PMTU_RAISE_INTERVAL)
    /// (600 s); at least 1 s.
    pub fn with_pmtud_raise_interval(mut self, d: Duration) -> Result<Self, ConfigError> {
        if d < Duration::from_secs(1) {
            return Err(ConfigError("pmtud raise interval below 1 s"));
        }
        self.pmtud_raise_interval = d;
        Ok(self)
    }

    /// Overrides the initial congestion window, in bytes. Default `None`: RFC 9002's
    /// `min(10 * mds, max(14720, 2 * mds))`. Must be at least the minimum window (2 datagrams
    /// of the configured size) and at most 2^32 bytes. Larger values reach full speed sooner
    /// on clean paths at the price of a bigger first burst.
    pub fn with_initial_window(mut self, window: Option<u64>) -> Result<Self, ConfigError> {
        if let Some(w) = window {
            if w > 1 << 32 {
                return Err(ConfigError("initial window above 4 GiB"));
            }
            if w < 2 * u64::from(self.max_datagram_size) {
                return Err(ConfigError("initial window below two datagrams"));
            }
        }
        self.initial_window = window;
        Ok(self)
    }

    /// Whether to pace sends over the RTT (RFC 9002 §7.7). Default true. Off: the
    /// congestion window goes out in bursts as fast as the datapath takes it (lower CPU per
    /// byte on an uncongested path, more loss at a shallow bottleneck buffer).
    pub fn with_pacing(mut self, on: bool) -> Self {
        self.pacing = on;
        self
    }

    /// The congestion controller of this configuration.
    pub fn congestion(&self) -> Algorithm {
        self.congestion
    }

    /// DATAGRAM (RFC 9221): the max_datagram_frame_size we advertise and the queue bound;
    /// `None` when off.
    pub fn datagrams(&self) -> Option<(u64, usize)> {
        self.max_datagram_frame_size.map(|m| (m, self.datagram_queue))
    }

    /// The congestion controller's settings for our datagram size.
    pub(crate) fn congestion_config(&self) -> congestion::Config {
        let base = congestion::Config::default()
            .with_max_datagram_size(self.max_datagram_size)
            .unwrap_or_default();
        // The setter checked the window against two datagrams of our size; the controller's
        // minimum window is the same, so this only fails if the size grew since.
        base.with_initial_window(self.initial_window).unwrap_or(base)
    }
}

/// Client side: TLS settings plus transport settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TLS (roots, ALPN, ciphers).
    pub tls: Arc<TlsClientConfig>,
    /// Transport settings.
    pub transport: TransportConfig,
    /// QUIC version of the first Initial (the Original Version of RFC 9368). Default v1. A
    /// reserved version (0x?a?a?a?a) is offered to draw a Version Negotiation packet: the
    /// first Initial is then a v1 one under that version number, and the connection starts
    /// again in the best version the server lists.
    pub version: u32,
    /// The versions this client speaks, in order of preference: sent as the Available Versions
    /// of its version_information (so a server may move the connection to a compatible one,
    /// RFC 9368), and chosen from after a Version Negotiation packet. Default v1 then v2.
    pub versions: Vec<u32>,
    /// Where tokens from servers' NEW_TOKEN frames are kept, by server name: each connection
    /// started with this configuration puts one (taken, never reused) in its Initials so the
    /// server can skip address validation (no Retry round trip, no anti-amplification limit),
    /// and stores the ones it receives. Default: a fresh [`TokenStore::default`] (in memory,
    /// 256 server names, 2 tokens each), shared by the clones of this configuration. `None`
    /// neither uses nor keeps tokens (no continuity a server could link connections by).
    pub token_store: Option<Arc<TokenStore>>,
}

impl ClientConfig {
    /// A client configuration with default transport settings and QUIC v1 (v2 offered).
    pub fn new(tls: Arc<TlsClientConfig>) -> Self {
        Self {
            tls,
            transport: TransportConfig::default(),
            version: crate::version::V1,
            versions: crate::version::SUPPORTED.to_vec(),
            token_store: Some(Arc::new(TokenStore::default())),
        }
    }

    /// Starts connections in `version`, which becomes the preferred one. Errors for a version
    /// that is neither spoken here nor reserved.
    pub fn with_version(mut self, version: u32) -> Result<Self, ConfigError> {
        if !crate::version::is_supported(version) && !crate::version::is_reserved(version) {
            return Err(ConfigError(
                "QUIC version neither supported (v1, v2) nor reserved (0x?a?a?a?a)",
            ));
        }
        self.version = version;
        if crate::version::is_supported(version) {
            self.versions.retain(|v| *v != version);
            self.versions.insert(0, version);
        }
        Ok(self)
    }
}

/// Server side: TLS settings, transport settings, and how each worker's router admits new
/// clients (Retry, half-open cap, token key).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// TLS (certificate, ALPN, ciphers).
    pub tls: Arc<TlsServerConfig>,
    /// Transport settings.
    pub transport: TransportConfig,
    /// When a worker answers a new client with a Retry (RFC 9000 §8.1.2). Default
    /// [`RetryPolicy::Never`]; [`RetryPolicy::AboveHandshakes`] retries only while that many
    /// handshakes are in progress on the worker.
    pub retry: RetryPolicy,
    /// Most half-open connections per worker
    /// ([`crate::endpoint::AcceptConfig::with_max_handshakes`]). Default
    /// [`crate::endpoint::DEFAULT_MAX_HANDSHAKES`].
    pub max_handshakes: usize,
    /// Key sealing address validation tokens (Retry and NEW_TOKEN). Every worker of an
    /// endpoint uses the same key, so a token one worker issued is valid on the others; set
    /// it to share tokens across servers too. Default none: a random key per endpoint.
    pub token_key: Option<[u8; 32]>,
    /// Key stateless reset tokens are derived from (HMAC-SHA256 of each connection ID). Set
    /// the same key on servers behind one load balancer, or across a restart, so that one can
    /// reset a connection another lost (RFC 9000 §10.3). Default none: a random key per
    /// endpoint.
    pub reset_key: Option<[u8; 32]>,
    /// The shape of every connection ID the endpoint issues (handshake Source Connection ID,
    /// NEW_CONNECTION_ID, Retry Source Connection ID): length, QUIC-LB config rotation and
    /// server ID (draft-ietf-quic-load-balancers), so that a load balancer routes short-header
    /// packets by the server ID. Servers behind one balancer share the length and config
    /// rotation and each has its own server ID. Default none: [`CidFormat::default`] (8 octets,
    /// config rotation 0b111, unroutable).
    pub cid_format: Option<CidFormat>,
    /// The versions the server accepts, in order of preference (others get Version
    /// Negotiation; sent as the Available Versions of its version_information). Default
    /// [`crate::version::SUPPORTED`].
    pub versions: Vec<u32>,
    /// When set, a connection whose client lists this version in its version_information is
    /// moved to it if the client's version is compatible (RFC 9368 compatible negotiation: a
    /// v1 Initial answered in v2). Default none: connections stay in the client's version.
    pub preferred_version: Option<u32>,
    /// Send each client one NEW_TOKEN frame once its handshake is confirmed (RFC 9000
    /// §8.1.3), so its next connection skips address validation: no Retry under
    /// [`RetryPolicy::Always`] or a busy [`RetryPolicy::AboveHandshakes`], and no
    /// anti-amplification limit. Default true. Tokens in clients' Initials are validated
    /// either way (servers sharing [`Self::token_key`] honour each other's).
    pub new_tokens: bool,
    /// How long a NEW_TOKEN token stays valid. Default
    /// [`crate::endpoint::token::DEFAULT_NEW_TOKEN_LIFETIME`] (24 h); must be at least 1 s.
    /// Longer lets clients that come back later skip the Retry; shorter narrows replay, since
    /// a token is not single-use (it is bound to the client's IP address and to this lifetime
    /// only).
    pub new_token_lifetime: Duration,
    /// The server's preferred address (RFC 9000 §9.6), advertised to every client with a
    /// connection ID of its own and that ID's reset token; clients that use it move there
    /// once the handshake is confirmed. The endpoint's owner must receive on it (the same
    /// socket bound to a wildcard address, or another socket of the same endpoint). Default
    /// none.
    pub preferred_address: Option<SocketAddr>,
}

impl ServerConfig {
    /// A server configuration with default transport settings.
    pub fn new(tls: Arc<TlsServerConfig>) -> Self {
        Self {
            tls,
            transport: TransportConfig::default(),
            retry: RetryPolicy::Never,
            max_handshakes: crate::endpoint::DEFAULT_MAX_HANDSHAKES,
            token_key: None,
            reset_key: None,
            cid_format: None,
            versions: crate::version::SUPPORTED.to_vec(),
            preferred_version: None,
            new_tokens: true,
            new_token_lifetime: crate::endpoint::token::DEFAULT_NEW_TOKEN_LIFETIME,
            preferred_address: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_validate() {
        let c = TransportConfig::default();
        assert!(c.clone().with_max_datagram_size(1199).is_err());
        assert!(c.clone().with_max_datagram_size(1199).is_err());
        assert_eq!(c.clone().with_max_datagram_size(65527).unwrap().max_datagram_size, 65527);
        assert!(c.clone().with_max_datagram_size(65528).is_err());
        assert_eq!(c.clone().with_max_datagram_size(1400).unwrap().max_datagram_size, 1400);
        assert!(c.clone().with_active_cid_limit(1).is_err());
        assert!(c.clone().with_idle_timeout(Some(Duration::ZERO)).is_err());
        assert!(c.clone().with_key_update_interval(Some(3)).is_err());
        assert!(c.clone().with_congestion_by_name("vegas").is_err());
        assert_eq!(c.clone().with_congestion_by_name("bbr").unwrap().congestion, Algorithm::Bbr);
        assert!(c.clone().with_pmtud_upper_bound(1199).is_err());
        assert!(c.clone().with_pmtud_upper_bound(65528).is_err());
        assert_eq!(c.clone().with_pmtud_upper_bound(9000).unwrap().pmtud_upper_bound, 9000);
        assert_eq!(c.clone().with_pmtud_upper_bound(1400).unwrap().pmtud_upper_bound, 1400);
        assert!(c.clone().with_pmtud_raise_interval(Duration::from_millis(10)).is_err());
        assert!(c.clone().with_pmtud(true).pmtud);
        assert!(c.clone().with_initial_window(Some(2399)).is_err());
        let iw = c.clone().with_initial_window(Some(64_000)).unwrap();
        assert_eq!(iw.congestion_config().initial_window(), 64_000);
        assert!(!c.clone().with_pacing(false).pacing);
        assert_eq!(c.with_congestion_by_name("newreno").unwrap().congestion, Algorithm::NewReno);
        let mut g = RandomCidGenerator::new(8, 1);
        let (a, ta) = g.generate();
        let (b, tb) = g.generate();
        assert_eq!(a.len(), 8);
        assert!(a != b && ta != tb);
    }
}
