//! 0-RTT (early data) in both roles: RFC 9000 §7.4.1 and §17.2.3, RFC 9001 §4.6 and §4.9.3.
//!
//! Client: when TLS resumes a session whose ticket allows early data (and the client's TLS
//! configuration enables it), TLS hands out 0-RTT keys right after the ClientHello. The
//! server's transport parameters remembered with the ticket then set the stream limits
//! (flow control and stream counts), and stream data written before the handshake completes
//! goes out in 0-RTT packets (long header type 0x1, application data packet number space,
//! never an ACK). When the handshake completes TLS says whether the server accepted:
//! - accepted: the server's new limits apply; a server that lowered one of them is a
//!   PROTOCOL_VIOLATION (RFC 9000 §7.4.1);
//! - rejected: every 0-RTT packet still outstanding is taken out of flight (no congestion
//!   signal) and what it carried is queued again, so it is sent again in 1-RTT packets; the
//!   stream limits become exactly the server's new ones, lower ones included. The server
//!   processed none of the 0-RTT data, so each byte reaches the peer's application once.
//!   If what 0-RTT used no longer fits the new limits the connection is closed (NO_ERROR,
//!   with a reason saying so) rather than violating them.
//!
//! The client drops its 0-RTT keys when it installs the 1-RTT keys (RFC 9001 §4.9.3).
//!
//! Server: 0-RTT keys come from TLS after the ClientHello when rustls accepts early data
//! (a resumed session, a ticket issued with early data, single-use: see `crypto::config`).
//! 0-RTT packets are opened with them, checked against the 0-RTT frame rules and their
//! stream data is delivered before the handshake completes; they are acknowledged in 1-RTT
//! packets. When rustls rejects, there are no keys and 0-RTT packets are dropped unread.
//! The server keeps the keys for three PTO after the first 1-RTT packet arrives (reordered
//! 0-RTT packets still open), then drops them. 0-RTT packets that reach the endpoint before
//! the connection exists (before the client's Initial) are dropped by the endpoint; the
//! client sends their data again when it goes unacknowledged.

use std::time::Instant;

use super::timers::Timer;
use super::Connection;
use crate::crypto::{DirectionalKeys, Side};
use crate::error::Error;
use crate::recovery::SpaceId;
use crate::streams::PeerLimits;
use crate::transport_params::TransportParameters;

/// Where 0-RTT stands on a connection ([`Connection::early_data_state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyDataState {
    /// No 0-RTT: not enabled, no resumable session allowing it, or (server) no early data
    /// that TLS accepted.
    #[default]
    NotAttempted,
    /// Client: 0-RTT keys are in use and the server has not answered yet.
    Pending,
    /// The server accepted 0-RTT (server: it processes the client's 0-RTT packets).
    Accepted,
    /// Client: the server rejected 0-RTT; what was sent in 0-RTT is sent again in 1-RTT.
    Rejected,
}

/// The connection's 0-RTT state.
#[derive(Default)]
pub(super) struct EarlyData {
    /// Client: keys to seal 0-RTT packets; server: keys to open them.
    keys: Option<DirectionalKeys>,
    state: EarlyDataState,
    /// Client: the largest packet number sent in a 0-RTT packet.
    last_pn: Option<u64>,
    /// Server: the keys are to be dropped (a 1-RTT packet arrived).
    discard_armed: bool,
    /// 0-RTT packets sent (client) or received and processed (server).
    pub(super) packets: u64,
}

/// The stream limits of transport parameters.
pub(super) fn peer_limits(params: &TransportParameters) -> PeerLimits {
    PeerLimits {
        initial_max_data: params.initial_max_data.into_inner(),
        initial_max_stream_data_bidi_local: params.initial_max_stream_data_bidi_local.into_inner(),
        initial_max_stream_data_bidi_remote: params
            .initial_max_stream_data_bidi_remote
            .into_inner(),
        initial_max_stream_data_uni: params.initial_max_stream_data_uni.into_inner(),
        initial_max_streams_bidi: params.initial_max_streams_bidi.into_inner(),
        initial_max_streams_uni: params.initial_max_streams_uni.into_inner(),
    }
}

/// The server limits a client remembers for 0-RTT that a server accepting it must not lower
/// (RFC 9000 §7.4.1), in a fixed order: tickets carry them (see `crypto::session`).
pub(super) fn remembered_limits(params: &TransportParameters) -> [u64; 7] {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.1
    //# In particular, a server that accepts 0-RTT data
    //# MUST NOT set values for the following parameters (Section 18.2) that
    //# are smaller than the remembered values of the parameters.
    [
        params.active_connection_id_limit.into_inner(),
        params.initial_max_data.into_inner(),
        params.initial_max_stream_data_bidi_local.into_inner(),
        params.initial_max_stream_data_bidi_remote.into_inner(),
        params.initial_max_stream_data_uni.into_inner(),
        params.initial_max_streams_bidi.into_inner(),
        params.initial_max_streams_uni.into_inner(),
    ]
}

impl Connection {
    /// Where 0-RTT stands: attempted, accepted or rejected (client), accepted (server).
    pub fn early_data_state(&self) -> EarlyDataState {
        self.early.state
    }

    /// Whether the next application-data packet is a 0-RTT one (client with 0-RTT keys and
    /// no 1-RTT keys yet).
    pub(super) fn sends_zero_rtt(&self) -> bool {
        self.side == Side::Client && self.one_rtt.is_none() && self.early.keys.is_some()
    }

    /// The client's 0-RTT keys, to seal; the server's, to open.
    pub(super) fn zero_rtt_keys(&self) -> Option<&DirectionalKeys> {
        self.early.keys.as_ref()
    }

    /// Client, right after the ClientHello: takes the 0-RTT keys if TLS has them and applies
    /// the remembered transport parameters' stream limits.
    pub(super) fn start_zero_rtt(&mut self) -> Result<(), Error> {
        if self.side != Side::Client {
            return Ok(());
        }
        let Some(keys) = self.tls.zero_rtt_keys() else { return Ok(()) };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.1
        //# When sending frames in 0-RTT packets, a client MUST only use
        //# remembered transport parameters; importantly, it MUST NOT use updated
        //# values that it learns from the server's updated transport parameters
        //# or from frames received in 1-RTT packets.
        // Before the handshake completes rustls reports the parameters remembered with the
        // ticket; parameters that do not decode mean no 0-RTT.
        let Some(bytes) = self.tls.peer_transport_parameters() else { return Ok(()) };
        let Ok(params) = TransportParameters::decode(Side::Server, bytes) else { return Ok(()) };
        self.streams.set_peer_limits(peer_limits(&params))?;
        self.early.keys = Some(keys);
        self.early.state = EarlyDataState::Pending;
        Ok(())
    }

    /// Server, after TLS read the ClientHello: takes the 0-RTT keys when TLS accepted early
    /// data.
    pub(super) fn accept_zero_rtt(&mut self) {
        if self.side != Side::Server || self.early.state != EarlyDataState::NotAttempted {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.6.2
        //# When rejecting 0-RTT, a server MUST NOT
        //# process any 0-RTT packets, even if it could.
        // rustls hands out 0-RTT keys only when it accepted early data.
        if let Some(keys) = self.tls.zero_rtt_keys() {
            self.early.keys = Some(keys);
            self.early.state = EarlyDataState::Accepted;
        }
    }

    /// 1-RTT keys were installed.
    pub(super) fn on_one_rtt_keys(&mut self) {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.3
        //# Therefore, a client SHOULD discard 0-RTT keys as soon as it installs
        //# 1-RTT keys as they have no use after that moment.
        if self.side == Side::Client {
            self.early.keys = None;
        }
    }

    /// Whether the application-data packet `pn` we sent was a 0-RTT one.
    pub(super) fn is_zero_rtt_pn(&self, pn: u64) -> bool {
        self.early.last_pn.is_some_and(|last| pn <= last)
    }

    /// A 0-RTT packet numbered `pn` was sent.
    pub(super) fn on_zero_rtt_sent(&mut self, pn: u64) {
        self.early.last_pn = Some(pn);
        self.early.packets += 1;
    }

    /// Server: a 1-RTT packet was processed; the 0-RTT keys go three PTO later.
    pub(super) fn on_one_rtt_received(&mut self, now: Instant) {
        if self.side != Side::Server || self.early.keys.is_none() || self.early.discard_armed {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.3
        //# After receiving a 1-RTT packet, servers MUST discard 0-RTT keys
        //# within a short time; the RECOMMENDED time period is three times the
        //# Probe Timeout (PTO, see [QUIC-RECOVERY]).
        self.early.discard_armed = true;
        let pto = self.loss.pto_period(SpaceId::Data);
        self.timers.set(Timer::ZeroRttDiscard, now + pto * 3);
    }

    /// The [`Timer::ZeroRttDiscard`] fired.
    pub(super) fn discard_zero_rtt_keys(&mut self) {
        self.timers.stop(Timer::ZeroRttDiscard);
        self.early.keys = None;
    }

    /// Applies the peer's limits from the handshake's transport parameters. A client that
    /// sent 0-RTT learns here (the handshake is complete) whether the server accepted it.
    pub(super) fn apply_peer_limits(
        &mut self,
        now: Instant,
        limits: PeerLimits,
    ) -> Result<(), Error> {
        if self.side == Side::Client && self.early.state == EarlyDataState::Pending {
            if self.tls.is_early_data_accepted() {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.1
                //# If 0-RTT data is accepted by the server, the server MUST NOT reduce
                //# any limits or alter any values that might be violated by the client
                //# with its 0-RTT data.
                if self.streams.lowers_peer_limits(&limits) {
                    return Err(Error::protocol_violation(
                        "server accepted 0-RTT but lowered a remembered limit",
                    ));
                }
                self.early.state = EarlyDataState::Accepted;
            } else {
                self.early.state = EarlyDataState::Rejected;
                self.requeue_zero_rtt(now);
                //= https://www.rfc-editor.org/rfc/rfc9001#section-4.6.2
                //# The client therefore MUST reset the state of all
                //# streams, including application state bound to those streams.
                // The streams keep their data (none of it reached the server): their
                // limits become the handshake's and everything goes again in 1-RTT.
                return self.streams.reset_peer_limits(limits);
            }
        }
        self.streams.set_peer_limits(limits)
    }

    /// 0-RTT was rejected: the 0-RTT packets still in flight leave it without a congestion
    /// signal and what they carried is queued again.
    fn requeue_zero_rtt(&mut self, now: Instant) {
        let Some(last) = self.early.last_pn else { return };
        self.early.keys = None;
        let dropped = self.loss.drain_where(now, SpaceId::Data, |p| p.pn <= last);
        for p in dropped {
            self.requeue_packet(SpaceId::Data, p);
        }
    }
}
