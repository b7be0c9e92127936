//! qlog recording (draft-ietf-quic-qlog-main-schema and -quic-events, `qlog_version` "0.3",
//! `qlog_format` "JSON-SEQ", the version qvis opens): a connection with qlog enabled appends
//! each event as one JSON-SEQ record (ASCII RS 0x1E, a JSON object, a newline) to an in-memory
//! buffer; its owner drains the buffer ([`Qlog::take`]) and writes it wherever it likes.
//!
//! Sans-IO like the rest of the core: every event carries the `now` the connection was given,
//! as milliseconds relative to the instant qlog was enabled (`time_format` "relative"); the
//! owner writes the [`header`] with the wall-clock `reference_time` of that instant.
//!
//! `frames` turns a packet's plaintext payload into the qlog frame list (the same decoder the
//! receive path uses, so what is logged is what is on the wire).

mod frames;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::time::{Duration, Instant};

use crate::crypto::Side;
use crate::recovery::SpaceId;
use crate::transport_params::TransportParameters;

/// The ASCII Record Separator that starts every JSON-SEQ record (RFC 7464).
pub const RECORD_SEPARATOR: u8 = 0x1e;
/// The qlog version written in the header.
pub const QLOG_VERSION: &str = "0.3";

/// The packet types of qlog's `PacketHeader.packet_type` that this endpoint sends or accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketType {
    /// Initial packets.
    Initial,
    /// Handshake packets.
    Handshake,
    /// 1-RTT (short header) packets.
    OneRtt,
}

impl PacketType {
    /// The type of packets of `space`.
    pub fn of(space: SpaceId) -> Self {
        match space {
            SpaceId::Initial => Self::Initial,
            SpaceId::Handshake => Self::Handshake,
            SpaceId::Data => Self::OneRtt,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Handshake => "handshake",
            Self::OneRtt => "1RTT",
        }
    }
}

/// Which endpoint an event is about (qlog's `owner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This endpoint.
    Local,
    /// The peer.
    Remote,
}

impl Owner {
    fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// What ended a connection, for `connectivity:connection_closed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseTrigger {
    /// A CONNECTION_CLOSE (sent: owner local; received: owner remote).
    Frame {
        /// Who sent it.
        owner: Owner,
        /// Transport (0x1c) or application (0x1d) close.
        application: bool,
        /// The error code.
        code: u64,
        /// The reason phrase (lossily decoded).
        reason: String,
    },
    /// The idle timeout expired.
    IdleTimeout,
    /// A stateless reset was received.
    StatelessReset,
}

/// The recovery state logged by `recovery:metrics_updated`; only changes are logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Bytes in flight.
    pub bytes_in_flight: u64,
    /// Smoothed RTT.
    pub smoothed_rtt: Duration,
    /// Latest RTT sample.
    pub latest_rtt: Duration,
    /// Minimum RTT.
    pub min_rtt: Duration,
    /// RTT variation.
    pub rtt_variance: Duration,
    /// Pacing rate, bits per second (0: not pacing).
    pub pacing_rate: u64,
}

/// One connection's qlog event buffer.
#[derive(Debug)]
pub struct Qlog {
    buf: Vec<u8>,
    reference: Instant,
    last_metrics: Option<Metrics>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes `b` as lowercase hex.
fn hex(out: &mut Vec<u8>, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for x in b {
        out.push(DIGITS[usize::from(x >> 4)]);
        out.push(DIGITS[usize::from(x & 15)]);
    }
}

/// Writes `s` as a JSON string literal (quotes included).
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The first record of a trace: format, version, vantage point and the common fields (ODCID,
/// relative time format, `reference_time` in milliseconds since the Unix epoch).
pub fn header(side: Side, odcid: &[u8], reference_unix_ms: f64) -> Vec<u8> {
    let mut out = vec![RECORD_SEPARATOR];
    let vp = match side {
        Side::Client => "client",
        Side::Server => "server",
    };
    let _ = write!(
        out,
        "{{\"qlog_version\":\"{QLOG_VERSION}\",\"qlog_format\":\"JSON-SEQ\",\
         \"title\":\"peregrine {vp}\",\"trace\":{{\"vantage_point\":{{\"name\":\"peregrine\",\
         \"type\":\"{vp}\"}},\"common_fields\":{{\"ODCID\":\""
    );
    hex(&mut out, odcid);
    let _ = writeln!(
        out,
        "\",\"time_format\":\"relative\",\"reference_time\":{reference_unix_ms:.3},\
         \"protocol_type\":[\"QUIC\"]}}}}}}"
    );
    out
}

impl Qlog {
    /// An empty buffer whose event times are relative to `reference`.
    pub fn new(reference: Instant) -> Self {
        Self { buf: Vec::with_capacity(4096), reference, last_metrics: None }
    }

    /// The instant event times are relative to.
    pub fn reference(&self) -> Instant {
        self.reference
    }

    /// Hands out the records recorded so far (JSON-SEQ bytes), leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Bytes recorded and not yet taken.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn begin(&mut self, now: Instant, name: &str) {
        let t = ms(now.saturating_duration_since(self.reference));
        self.buf.push(RECORD_SEPARATOR);
        let _ = write!(self.buf, "{{\"time\":{t:.3},\"name\":\"{name}\",\"data\":{{");
    }

    fn end(&mut self) {
        self.buf.extend_from_slice(b"}}\n");
    }

    /// `transport:packet_sent` / `transport:packet_received`: header, raw length and the
    /// frames decoded from the packet's plaintext `payload` (ACK delays scaled by the sender's
    /// `ack_delay_exponent`).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        now: Instant,
        sent: bool,
        ty: PacketType,
        pn: u64,
        len: usize,
        payload: &[u8],
        ack_delay_exponent: u8,
    ) {
        let name = if sent { "transport:packet_sent" } else { "transport:packet_received" };
        self.begin(now, name);
        let _ = write!(
            self.buf,
            "\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{pn}}},\
             \"raw\":{{\"length\":{len}}},\"frames\":[",
            ty.name()
        );
        frames::write_frames(&mut self.buf, payload, ack_delay_exponent);
        self.buf.push(b']');
        self.end();
    }

    /// `recovery:packet_lost`.
    pub fn packet_lost(&mut self, now: Instant, ty: PacketType, pn: u64, trigger: Option<&str>) {
        self.begin(now, "recovery:packet_lost");
        let _ = write!(
            self.buf,
            "\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{pn}}}",
            ty.name()
        );
        if let Some(t) = trigger {
            let _ = write!(self.buf, ",\"trigger\":\"{t}\"");
        }
        self.end();
    }

    /// `recovery:metrics_updated`, when `m` differs from what was logged last.
    pub fn metrics(&mut self, now: Instant, m: Metrics) {
        if self.last_metrics == Some(m) {
            return;
        }
        self.last_metrics = Some(m);
        self.begin(now, "recovery:metrics_updated");
        let _ = write!(
            self.buf,
            "\"congestion_window\":{},\"bytes_in_flight\":{},\"smoothed_rtt\":{:.3},\
             \"latest_rtt\":{:.3},\"min_rtt\":{:.3},\"rtt_variance\":{:.3}",
            m.cwnd,
            m.bytes_in_flight,
            ms(m.smoothed_rtt),
            ms(m.latest_rtt),
            ms(m.min_rtt),
            ms(m.rtt_variance)
        );
        if m.pacing_rate > 0 {
            let _ = write!(self.buf, ",\"pacing_rate\":{}", m.pacing_rate);
        }
        self.end();
    }

    /// `transport:parameters_set` for our (`Local`) or the peer's (`Remote`) parameters.
    pub fn parameters_set(&mut self, now: Instant, owner: Owner, p: &TransportParameters) {
        self.begin(now, "transport:parameters_set");
        let _ = write!(self.buf, "\"owner\":\"{}\"", owner.name());
        let cids = [
            ("original_destination_connection_id", p.original_destination_connection_id),
            ("initial_source_connection_id", p.initial_source_connection_id),
            ("retry_source_connection_id", p.retry_source_connection_id),
        ];
        for (k, v) in cids {
            if let Some(cid) = v {
                let _ = write!(self.buf, ",\"{k}\":\"");
                hex(&mut self.buf, cid.as_bytes());
                self.buf.push(b'"');
            }
        }
        if let Some(t) = &p.stateless_reset_token {
            self.buf.extend_from_slice(b",\"stateless_reset_token\":\"");
            hex(&mut self.buf, &t.0);
            self.buf.push(b'"');
        }
        let nums = [
            ("max_idle_timeout", p.max_idle_timeout),
            ("max_udp_payload_size", p.max_udp_payload_size),
            ("initial_max_data", p.initial_max_data),
            ("initial_max_stream_data_bidi_local", p.initial_max_stream_data_bidi_local),
            ("initial_max_stream_data_bidi_remote", p.initial_max_stream_data_bidi_remote),
            ("initial_max_stream_data_uni", p.initial_max_stream_data_uni),
            ("initial_max_streams_bidi", p.initial_max_streams_bidi),
            ("initial_max_streams_uni", p.initial_max_streams_uni),
            ("ack_delay_exponent", p.ack_delay_exponent),
            ("max_ack_delay", p.max_ack_delay),
            ("active_connection_id_limit", p.active_connection_id_limit),
        ];
        for (k, v) in nums {
            let _ = write!(self.buf, ",\"{k}\":{}", v.into_inner());
        }
        if let Some(v) = p.max_datagram_frame_size {
            let _ = write!(self.buf, ",\"max_datagram_frame_size\":{}", v.into_inner());
        }
        let _ = write!(
            self.buf,
            ",\"disable_active_migration\":{}",
            if p.disable_active_migration { "true" } else { "false" }
        );
        self.end();
    }

    /// `connectivity:connection_closed`.
    pub fn connection_closed(&mut self, now: Instant, trigger: &CloseTrigger) {
        self.begin(now, "connectivity:connection_closed");
        match trigger {
            CloseTrigger::Frame { owner, application, code, reason } => {
                let _ = write!(self.buf, "\"owner\":\"{}\",", owner.name());
                if *application {
                    let _ = write!(self.buf, "\"application_code\":{code},");
                } else {
                    let _ = write!(self.buf, "\"connection_code\":{code},");
                }
                self.buf.extend_from_slice(b"\"reason\":");
                json_str(&mut self.buf, reason);
                let t = if *application { "application" } else { "error" };
                let t = if *code == 0 { "clean" } else { t };
                let _ = write!(self.buf, ",\"trigger\":\"{t}\"");
            }
            CloseTrigger::IdleTimeout => {
                self.buf.extend_from_slice(b"\"owner\":\"local\",\"trigger\":\"idle_timeout\"");
            }
            CloseTrigger::StatelessReset => {
                self.buf.extend_from_slice(b"\"owner\":\"remote\",\"trigger\":\"stateless_reset\"");
            }
        }
        self.end();
    }

    /// `security:key_updated` for a 1-RTT key update (`local`: we initiated it).
    pub fn key_updated(&mut self, now: Instant, side: Side, local: bool, generation: u64) {
        self.begin(now, "security:key_updated");
        let writer = match (side, local) {
            (Side::Client, true) | (Side::Server, false) => "client",
            _ => "server",
        };
        let trigger = if local { "local_update" } else { "remote_update" };
        let _ = write!(
            self.buf,
            "\"key_type\":\"{writer}_1rtt_secret\",\"generation\":{generation},\
             \"trigger\":\"{trigger}\""
        );
        self.end();
    }
}
