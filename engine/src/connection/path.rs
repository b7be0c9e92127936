//! The network path a connection sends on: the peer's address (and ours, when the owner tells
//! it), address validation (PATH_CHALLENGE / PATH_RESPONSE), the anti-amplification budget of
//! an unvalidated address, and path MTU discovery with the datagram size in use.
//!
//! A [`Path`] is the one owner of this state; `send`, `recv`, `loss` and `mtud` go through it.
//! Migration (see the `migration` module) replaces the connection's path with a new one and
//! keeps the old one aside until the new one is validated.

use std::net::SocketAddr;

use super::mtud::Mtud;
use super::TransportConfig;

/// One network path: 4-tuple, validation, amplification accounting, PMTU state.
#[derive(Debug)]
pub(super) struct Path {
    /// Where we send.
    pub(super) remote: SocketAddr,
    /// Our address on this path, when the owner told it (`None`: whatever the socket is).
    pub(super) local: Option<SocketAddr>,
    /// The peer's address is validated (server: token, Handshake packet or PATH_RESPONSE;
    /// client: the server's handshake address is, a migrated-to address after PATH_RESPONSE).
    pub(super) validated: bool,
    /// Bytes received from the peer on this path (the amplification credit).
    amp_received: u64,
    /// Bytes sent on this path while it was not validated.
    amp_sent: u64,
    /// The PATH_CHALLENGE data of a validation in progress.
    pub(super) challenge: Option<[u8; 8]>,
    /// The PATH_CHALLENGE frame still has to be (re)sent.
    pub(super) challenge_pending: bool,
    /// A PATH_CHALLENGE received here, to echo in a PATH_RESPONSE.
    pub(super) response: Option<[u8; 8]>,
    /// Path MTU discovery (DPLPMTUD) of the path.
    pub(super) mtud: Mtud,
    /// Datagram size in use (the PLPMTU): the configured one, raised by PMTU discovery,
    /// back to 1200 when a black hole is suspected.
    pub(super) mds: u16,
}

impl Path {
    /// A path to `remote`, validated or not, with MTU discovery as `cfg` says.
    pub(super) fn new(remote: SocketAddr, validated: bool, cfg: &TransportConfig) -> Self {
        Self {
            remote,
            local: None,
            validated,
            amp_received: 0,
            amp_sent: 0,
            challenge: None,
            challenge_pending: false,
            response: None,
            mtud: Mtud::new(
                cfg.pmtud,
                cfg.max_datagram_size,
                cfg.pmtud_upper_bound,
                cfg.pmtud_raise_interval,
            ),
            mds: cfg.max_datagram_size,
        }
    }

    /// Bytes that may still be sent to the peer's address before it is validated.
    pub(super) fn amplification_budget(&self) -> usize {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1
        //# Prior to validating the client address, servers MUST NOT send more
        //# than three times as many bytes as the number of bytes they have
        //# received.
        if self.validated {
            usize::MAX
        } else {
            (self.amp_received * 3).saturating_sub(self.amp_sent) as usize
        }
    }

    /// A datagram of `len` bytes came in on this path.
    pub(super) fn on_received(&mut self, len: usize) {
        self.amp_received += len as u64;
    }

    /// `len` bytes left on this path.
    pub(super) fn on_sent(&mut self, len: usize) {
        if !self.validated {
            self.amp_sent += len as u64;
        }
    }

    /// The address is no longer validated: the budget restarts from the `len` bytes just
    /// received there.
    pub(super) fn unvalidate(&mut self, len: usize) {
        self.validated = false;
        self.amp_received = len as u64;
        self.amp_sent = 0;
    }

    /// Starts validating the path with PATH_CHALLENGE `data`.
    pub(super) fn start_challenge(&mut self, data: [u8; 8]) {
        self.challenge = Some(data);
        self.challenge_pending = true;
    }

    /// A PATH_RESPONSE arrived: `true` when it answers this path's challenge, which validates
    /// the path.
    pub(super) fn on_path_response(&mut self, data: [u8; 8]) -> bool {
        if self.challenge != Some(data) {
            return false;
        }
        self.challenge = None;
        self.challenge_pending = false;
        self.validated = true;
        true
    }

    /// A packet carrying PATH_CHALLENGE `data` was declared lost: send it again if the
    /// validation still waits for it.
    pub(super) fn on_challenge_lost(&mut self, data: [u8; 8]) {
        if self.challenge == Some(data) {
            self.challenge_pending = true;
        }
    }

    /// Whether the peer's address is IPv6 (an IPv4-mapped one counts as IPv4).
    pub(super) fn is_ipv6(&self) -> bool {
        match self.remote.ip() {
            std::net::IpAddr::V4(_) => false,
            std::net::IpAddr::V6(a) => a.to_ipv4_mapped().is_none(),
        }
    }
}
