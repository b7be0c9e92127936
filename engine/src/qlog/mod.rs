//! qlog recording on the current schema: the main schema of
//! <https://datatracker.ietf.org/doc/draft-ietf-quic-qlog-main-schema/13/> (file schema
//! `urn:ietf:params:qlog:file:sequential`, serialization `application/qlog+json-seq`) with the
//! QUIC events of <https://datatracker.ietf.org/doc/draft-ietf-quic-qlog-quic-events/12/>
//! (event schema `urn:ietf:params:qlog:events:quic-12`, names `quic:*`), the version that
//! quiche, quinn and the `qlog` crate 0.18 read and write. A connection with qlog enabled
//! appends each event as one JSON-SEQ record (ASCII RS 0x1E, a JSON object, a newline) to an
//! in-memory buffer; its owner drains the buffer ([`Qlog::take`]) and writes it wherever it
//! likes. `tools/tests` parse real traces with the `qlog` crate's types, event by event.
//!
//! Sans-IO like the rest of the core: every event carries the `now` the connection was given,
//! as milliseconds since the instant qlog was enabled. That instant is the trace's epoch: a
//! monotonic clock whose epoch is `unknown` as an absolute time (`reference_time`
//! `clock_type` "monotonic", `epoch` "unknown", `time_format` "relative_to_epoch"); the owner
//! writes the [`header`] with the wall-clock time of that instant as `wall_clock_time`.
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
/// The file schema of a JSON-SEQ qlog file (main schema draft 13).
pub const FILE_SCHEMA: &str = "urn:ietf:params:qlog:file:sequential";
/// The serialization format of a JSON-SEQ qlog file.
pub const SERIALIZATION_FORMAT: &str = "application/qlog+json-seq";
/// The event schema of the QUIC events written here (quic-events draft 12).
pub const QUIC_EVENT_SCHEMA: &str = "urn:ietf:params:qlog:events:quic-12";

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

/// Which endpoint an event is about (qlog's `initiator`).
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

/// RFC 3339 UTC time with milliseconds (`2024-01-15T10:30:00.123Z`) of `unix_ms`
/// milliseconds since the Unix epoch.
pub fn rfc3339_ms(unix_ms: f64) -> String {
    let ms = unix_ms.max(0.0) as u64;
    let (s, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (s / 86_400, s % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The first record of a trace: file schema and serialization format, the vantage point,
/// the event schema, and the common fields: the original destination connection ID as the
/// `group_id`, and the reference time (a monotonic clock whose epoch is the instant qlog was
/// enabled, `reference_unix_ms` milliseconds after the Unix epoch on the wall clock).
pub fn header(side: Side, odcid: &[u8], reference_unix_ms: f64) -> Vec<u8> {
    let mut out = vec![RECORD_SEPARATOR];
    let vp = match side {
        Side::Client => "client",
        Side::Server => "server",
    };
    let _ = write!(
        out,
        "{{\"file_schema\":\"{FILE_SCHEMA}\",\"serialization_format\":\"{SERIALIZATION_FORMAT}\",\
         \"title\":\"peregrine {vp}\",\"trace\":{{\"title\":\"peregrine {vp}\",\
         \"vantage_point\":{{\"name\":\"peregrine\",\"type\":\"{vp}\"}},\
         \"event_schemas\":[\"{QUIC_EVENT_SCHEMA}\"],\"common_fields\":{{\"group_id\":\""
    );
    hex(&mut out, odcid);
    let _ = writeln!(
        out,
        "\",\"protocol_types\":[\"QUIC\"],\"time_format\":\"relative_to_epoch\",\
         \"reference_time\":{{\"clock_type\":\"monotonic\",\"epoch\":\"unknown\",\
         \"wall_clock_time\":\"{}\"}}}}}}}}",
        rfc3339_ms(reference_unix_ms)
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

    /// `quic:packet_sent` / `quic:packet_received`: header, raw length (whole packet) and
    /// payload length (plaintext frames), and the frames decoded from the packet's plaintext
    /// `payload` (ACK delays scaled by the sender's `ack_delay_exponent`).
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
        let name = if sent { "quic:packet_sent" } else { "quic:packet_received" };
        self.begin(now, name);
        let _ = write!(
            self.buf,
            "\"header\":{{\"packet_type\":\"{}\",\"packet_number\":{pn}}},\
             \"raw\":{{\"length\":{len},\"payload_length\":{}}},\"frames\":[",
            ty.name(),
            payload.len()
        );
        frames::write_frames(&mut self.buf, payload, ack_delay_exponent);
        self.buf.push(b']');
        self.end();
    }

    /// `quic:packet_lost`; `trigger` is one of `reordering_threshold`, `time_threshold`,
    /// `pto_expired`.
    pub fn packet_lost(&mut self, now: Instant, ty: PacketType, pn: u64, trigger: Option<&str>) {
        self.begin(now, "quic:packet_lost");
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

    /// `quic:recovery_metrics_updated`, when `m` differs from what was logged last.
    pub fn metrics(&mut self, now: Instant, m: Metrics) {
        if self.last_metrics == Some(m) {
            return;
        }
        self.last_metrics = Some(m);
        self.begin(now, "quic:recovery_metrics_updated");
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

    /// `quic:parameters_set` for our (`Local`) or the peer's (`Remote`) parameters. The
    /// parameters this endpoint does not know are skipped when decoded, so
    /// `unknown_parameters` is always empty.
    pub fn parameters_set(&mut self, now: Instant, owner: Owner, p: &TransportParameters) {
        self.begin(now, "quic:parameters_set");
        let _ = write!(self.buf, "\"initiator\":\"{}\"", owner.name());
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
            ",\"disable_active_migration\":{},\"grease_quic_bit\":{},\"unknown_parameters\":[]",
            p.disable_active_migration, p.grease_quic_bit
        );
        self.end();
    }

    /// `quic:connection_closed`.
    pub fn connection_closed(&mut self, now: Instant, trigger: &CloseTrigger) {
        self.begin(now, "quic:connection_closed");
        match trigger {
            CloseTrigger::Frame { owner, application, code, reason } => {
                let _ = write!(self.buf, "\"initiator\":\"{}\",", owner.name());
                if *application {
                    self.buf.extend_from_slice(b"\"application_error\":\"unknown\",");
                } else if let Some(name) = frames::transport_error_name(*code) {
                    let _ = write!(self.buf, "\"connection_error\":\"{name}\",");
                }
                let _ = write!(self.buf, "\"error_code\":{code},\"reason\":");
                json_str(&mut self.buf, reason);
                let t = if *application { "application" } else { "error" };
                let t = if *code == 0 { "clean" } else { t };
                let _ = write!(self.buf, ",\"trigger\":\"{t}\"");
            }
            CloseTrigger::IdleTimeout => {
                self.buf.extend_from_slice(b"\"initiator\":\"local\",\"trigger\":\"idle_timeout\"");
            }
            CloseTrigger::StatelessReset => {
                self.buf
                    .extend_from_slice(b"\"initiator\":\"remote\",\"trigger\":\"stateless_reset\"");
            }
        }
        self.end();
    }

    /// `quic:key_updated` for a 1-RTT key update (`local`: we initiated it); the key phase
    /// is the key generation (0 for the first 1-RTT keys).
    pub fn key_updated(&mut self, now: Instant, side: Side, local: bool, generation: u64) {
        self.begin(now, "quic:key_updated");
        let writer = match (side, local) {
            (Side::Client, true) | (Side::Server, false) => "client",
            _ => "server",
        };
        let trigger = if local { "local_update" } else { "remote_update" };
        let _ = write!(
            self.buf,
            "\"key_type\":\"{writer}_1rtt_secret\",\"key_phase\":{generation},\
             \"trigger\":\"{trigger}\""
        );
        self.end();
    }
}
