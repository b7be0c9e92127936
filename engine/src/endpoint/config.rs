//! Router configuration: connection ID format, worker index, versions, keys, server policy.

use std::time::Duration;

use super::cid::CidFormat;
use super::reset::{ResetKey, DEFAULT_RESETS_PER_SECOND, DEFAULT_RESET_BURST};
use super::token::{TokenKey, TokenLifetimes};
use crate::version;

/// Default cap on concurrent connections per router (per worker).
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;

/// Default burst of other stateless responses (Version Negotiation, Retry, refusals) per router.
pub const DEFAULT_RESPONSE_BURST: u32 = 1024;
/// Default refill rate of other stateless responses per router, per second.
pub const DEFAULT_RESPONSES_PER_SECOND: u32 = 4096;

/// Default cap on half-open connections (handshakes in progress) per router (per worker).
/// A half-open server connection costs a few tens of KB, so this bounds a worker's half-open
/// state to tens of MB under a flood of Initials.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// Why a configuration value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouterConfigError {
    /// The version list is empty or names a version this crate does not implement.
    #[error("supported versions must be a non-empty subset of {:?}", version::SUPPORTED)]
    Versions,
    /// A limit or lifetime of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The worker index is not below the worker count, or the count is not 1..=256.
    #[error("worker index {index} of {count} workers")]
    Worker {
        /// The index given.
        index: u8,
        /// The count given.
        count: usize,
    },
}

/// When a server answers a new client's Initial with a Retry (RFC 9000 §8.1.2) instead of
/// starting the handshake. Clients that present a valid token are never retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Never send Retry (default): one round trip less, address validated by the handshake.
    #[default]
    Never,
    /// Retry every client without a valid token: validates addresses before any state is
    /// kept, at the cost of one round trip.
    Always,
    /// Retry while at least this many handshakes are in progress (load shedding under a
    /// flood of spoofed Initials).
    AboveHandshakes(usize),
}

/// What a router needs to accept connections: token key, Retry policy, limits.
#[derive(Clone, Debug)]
pub struct AcceptConfig {
    pub(super) token_key: TokenKey,
    pub(super) retry: RetryPolicy,
    pub(super) max_connections: usize,
    pub(super) max_handshakes: usize,
    pub(super) lifetimes: TokenLifetimes,
}

impl AcceptConfig {
    /// Accept connections, sealing address validation tokens with `token_key` (share it
    /// between servers that should accept each other's tokens). Defaults: [`RetryPolicy::Never`],
    /// [`DEFAULT_MAX_CONNECTIONS`], Retry tokens valid 10 s and NEW_TOKEN tokens 24 h.
    pub fn new(token_key: TokenKey) -> Self {
        Self {
            token_key,
            retry: RetryPolicy::Never,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            lifetimes: TokenLifetimes::default(),
        }
    }

    /// When to send Retry. Default [`RetryPolicy::Never`].
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Most connections this router holds at once (server and client); new clients beyond it
    /// are refused with CONNECTION_REFUSED. Each costs the connection's own memory plus a few
    /// table entries here. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub fn with_max_connections(mut self, n: usize) -> Result<Self, RouterConfigError> {
        if n == 0 {
            return Err(RouterConfigError::Zero("max_connections"));
        }
        self.max_connections = n;
        Ok(self)
    }

    /// Most half-open connections (handshakes in progress) this router holds at once. Beyond
    /// it, a new client without a valid token is sent a Retry when the policy allows one
    /// (anything but [`RetryPolicy::Never`]) and dropped otherwise; a client with a valid
    /// token (its address is validated, it cannot be spoofed) is still accepted, up to the
    /// connection limit. Default [`DEFAULT_MAX_HANDSHAKES`]; each half-open connection costs a
    /// few tens of KB until its handshake completes or times out.
    pub fn with_max_handshakes(mut self, n: usize) -> Result<Self, RouterConfigError> {
        if n == 0 {
            return Err(RouterConfigError::Zero("max_handshakes"));
        }
        self.max_handshakes = n;
        Ok(self)
    }

    /// The half-open connection limit.
    pub fn max_handshakes(&self) -> usize {
        self.max_handshakes
    }

    /// How long Retry tokens (default 10 s) and NEW_TOKEN tokens (default 24 h) stay valid,
    /// in whole seconds. Longer lifetimes widen the window in which a stolen token can be
    /// replayed from the same address.
    pub fn with_token_lifetimes(
        mut self,
        retry: Duration,
        new_token: Duration,
    ) -> Result<Self, RouterConfigError> {
        if retry.as_secs() == 0 || new_token.as_secs() == 0 {
            return Err(RouterConfigError::Zero("token lifetime"));
        }
        self.lifetimes = TokenLifetimes { retry, new_token };
        Ok(self)
    }

    /// The Retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The connection limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The token lifetimes.
    pub fn token_lifetimes(&self) -> TokenLifetimes {
        self.lifetimes
    }
}

/// Configuration of one worker's [`super::Router`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub(super) cid_format: CidFormat,
    pub(super) worker: u8,
    pub(super) workers: usize,
    pub(super) versions: Vec<u32>,
    pub(super) reset_key: ResetKey,
    pub(super) reset_burst: u32,
    pub(super) reset_per_second: u32,
    pub(super) response_burst: u32,
    pub(super) responses_per_second: u32,
    pub(super) grease_quic_bit: bool,
    pub(super) rng_seed: [u8; 32],
    pub(super) server: Option<AcceptConfig>,
    pub(super) local_initials: bool,
}

impl RouterConfig {
    /// A client-only router for worker 0 (of 1) deriving stateless reset tokens from `reset_key`
    /// (share it between servers that should reset each other's connections after a
    /// restart), with randomness from `rng_seed`. The seed must come from a cryptographically
    /// secure source outside tests: connection IDs, token nonces and resets draw on it.
    /// Defaults: [`CidFormat::default`] (8 octets, no QUIC-LB configuration), every version in
    /// [`version::SUPPORTED`], 64 stateless resets per second with a burst of 64.
    pub fn new(reset_key: ResetKey, rng_seed: [u8; 32]) -> Self {
        Self {
            cid_format: CidFormat::default(),
            worker: 0,
            workers: 1,
            versions: version::SUPPORTED.to_vec(),
            reset_key,
            reset_burst: DEFAULT_RESET_BURST,
            reset_per_second: DEFAULT_RESETS_PER_SECOND,
            response_burst: DEFAULT_RESPONSE_BURST,
            responses_per_second: DEFAULT_RESPONSES_PER_SECOND,
            grease_quic_bit: false,
            rng_seed,
            server: None,
            local_initials: false,
        }
    }

    /// On: a new client's Initial (and 0-RTT) datagrams are handled by the worker whose queue
    /// received them, whatever worker index their client-chosen DCID happens to decode to.
    /// For datapaths where the NIC picks the queue by the 4-tuple (AF_XDP behind RSS: a
    /// client's datagrams keep arriving on one queue while its addresses stay), so that the
    /// worker of that queue owns the connection and its later datagrams need no forwarding.
    /// Off (the default): they go to the worker the DCID decodes to, as on datapaths that
    /// steer by connection ID (the UDP and io_uring groups' BPF program).
    pub fn with_local_initials(mut self, on: bool) -> Self {
        self.local_initials = on;
        self
    }

    /// The index of the worker that owns this router (written into every connection ID it
    /// issues) and how many workers share this host's connection IDs: a datagram for another
    /// worker's ID is forwarded only when that index is below `count`. Default 0 of 1.
    pub fn with_worker(mut self, index: u8, count: usize) -> Result<Self, RouterConfigError> {
        if !(1..=256).contains(&count) || usize::from(index) >= count {
            return Err(RouterConfigError::Worker { index, count });
        }
        self.worker = index;
        self.workers = count;
        Ok(self)
    }

    /// The connection ID format (length, server ID, config rotation). Every worker and every
    /// server behind one load balancer uses the same length.
    pub fn with_cid_format(mut self, format: CidFormat) -> Self {
        self.cid_format = format;
        self
    }

    /// Versions to accept, in order of preference; others get Version Negotiation.
    pub fn with_versions(mut self, versions: &[u32]) -> Result<Self, RouterConfigError> {
        if versions.is_empty() || !versions.iter().all(|v| version::is_supported(*v)) {
            return Err(RouterConfigError::Versions);
        }
        self.versions = versions.to_vec();
        Ok(self)
    }

    /// Stateless resets: at most `burst` at once, refilled at `per_second` (a burst of 0
    /// disables them). Default 64 and 64/s.
    pub fn with_reset_rate(mut self, burst: u32, per_second: u32) -> Self {
        self.reset_burst = burst;
        self.reset_per_second = per_second;
        self
    }

    /// Version Negotiation, Retry and refusal (Initial CONNECTION_CLOSE) packets: at most
    /// `burst` at once, refilled at `per_second` (a burst of 0 disables them), on the time
    /// passed to [`super::Router::handle`]. Each is smaller than the datagram that triggered
    /// it; the limit keeps a worker from being used to reflect a flood at a spoofed address.
    /// Past it the trigger is dropped (a client retransmits its Initial). Default 1024 and
    /// 4096/s.
    pub fn with_response_rate(mut self, burst: u32, per_second: u32) -> Self {
        self.response_burst = burst;
        self.responses_per_second = per_second;
        self
    }

    /// Accept packets whose QUIC Bit is 0 (RFC 9287): set when this endpoint's connections
    /// advertise `grease_quic_bit`. Default false.
    pub fn with_grease_quic_bit(mut self, accept: bool) -> Self {
        self.grease_quic_bit = accept;
        self
    }

    /// Accept incoming connections with `server`.
    pub fn with_server(mut self, server: AcceptConfig) -> Self {
        self.server = Some(server);
        self
    }

    /// The connection ID format.
    pub fn cid_format(&self) -> &CidFormat {
        &self.cid_format
    }

    /// The worker index.
    pub fn worker(&self) -> u8 {
        self.worker
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The accepted versions.
    pub fn versions(&self) -> &[u32] {
        &self.versions
    }

    /// The server configuration, if this router accepts connections.
    pub fn server(&self) -> Option<&AcceptConfig> {
        self.server.as_ref()
    }
}
