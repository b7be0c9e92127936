//! Connection counters exposed through [`super::Connection::stats`].

use std::time::Duration;

/// Counters and gauges of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// 0-RTT packets sent (client) or received and processed (server).
    pub zero_rtt_packets: u64,
    /// UDP datagrams received (including ones dropped later).
    pub datagrams_received: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// QUIC packets received and authenticated.
    pub packets_received: u64,
    /// Packets dropped on receipt (undecryptable, duplicate, no keys, malformed).
    pub packets_dropped: u64,
    /// Packets declared lost (PMTU probes are counted in `pmtu_probes_lost` instead).
    pub packets_lost: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// Stream payload bytes sent (retransmissions included).
    pub stream_bytes_sent: u64,
    /// Stream payload bytes retransmitted after a loss.
    pub stream_bytes_retransmitted: u64,
    /// Congestion events (loss or ECN-CE reductions).
    pub congestion_events: u64,
    /// Persistent congestion episodes.
    pub persistent_congestion: u64,
    /// PTO expirations.
    pub pto_count: u64,
    /// Falls back to 1200-byte datagrams after large ones seemed to be dropped (black holes
    /// detected, RFC 8899 §4.3).
    pub mtu_fallbacks: u64,
    /// The path MTU in use now: the largest UDP payload we build (PLPMTU).
    pub pmtu: u64,
    /// PMTU probe packets sent.
    pub pmtu_probes_sent: u64,
    /// PMTU probe packets lost (or unacknowledged after the probe timeout).
    pub pmtu_probes_lost: u64,
    /// Key updates (either side initiating).
    pub key_updates: u64,
    /// Congestion window now, bytes.
    pub cwnd: u64,
    /// Bytes in flight now.
    pub bytes_in_flight: u64,
    /// Smoothed RTT now.
    pub smoothed_rtt: Duration,
    /// Minimum RTT seen.
    pub min_rtt: Duration,
    /// ACK frames sent (all packet number spaces).
    pub acks_sent: u64,
    /// Ack-eliciting packets received and processed (all packet number spaces).
    pub ack_eliciting_received: u64,
    /// ACK_FREQUENCY frames sent (draft-ietf-quic-ack-frequency).
    pub ack_frequency_sent: u64,
    /// ACK_FREQUENCY frames received and applied (stale ones are not counted).
    pub ack_frequency_received: u64,
    /// IMMEDIATE_ACK frames sent.
    pub immediate_acks_sent: u64,
    /// IMMEDIATE_ACK frames received.
    pub immediate_acks_received: u64,
    /// DATAGRAM frames sent (RFC 9221).
    pub datagram_frames_sent: u64,
    /// DATAGRAM frames received and queued for the application.
    pub datagram_frames_received: u64,
    /// Datagrams dropped: the oldest queued ones when a send or receive queue was full.
    pub datagram_frames_dropped: u64,
    /// Client: the server answered the first Initial with a Retry. Server: a Retry token
    /// validated the client's address.
    pub retry: bool,
    /// Client: the first Initial carried a NEW_TOKEN token from the token store. Server: a
    /// NEW_TOKEN token validated the client's address.
    pub new_token_used: bool,
    /// Client: NEW_TOKEN frames received (always 0 on a server).
    pub new_tokens_received: u64,
    /// Server: NEW_TOKEN tokens queued for the client (0 or 1; resends not counted).
    pub new_tokens_sent: u64,
    /// Client: migrations started (a new local address, or the server's preferred address).
    pub migrations: u64,
    /// Client: migrations whose new path was validated by a PATH_RESPONSE.
    pub paths_validated: u64,
    /// Client: migrations given up (no PATH_RESPONSE in time): back on the old path.
    pub path_validations_failed: u64,
    /// Client: a migration's new path is being validated now.
    pub path_validating: bool,
    /// The QUIC version the connection sends in (negotiated once the handshake is done; 0 in
    /// a default value that no connection filled).
    pub version: u32,
    /// Name of the congestion controller in use ("newreno", "cubic"; empty in a default
    /// value that no connection filled).
    pub congestion: &'static str,
}
