//! A packet's plaintext payload as qlog `QuicFrame` objects (quic-events draft 12): the
//! `frame_type`, the frame's fields, and the data length of data-carrying frames as
//! `raw.payload_length`.

use std::io::Write;

use super::{hex, json_str};
use crate::frame::{CloseKind, Frame, Frames, StreamDir};

/// The qlog name of a transport error code (RFC 9000 section 20.1); `None` for the crypto
/// error range and codes it does not name.
pub(super) fn transport_error_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0x0 => "no_error",
        0x1 => "internal_error",
        0x2 => "connection_refused",
        0x3 => "flow_control_error",
        0x4 => "stream_limit_error",
        0x5 => "stream_state_error",
        0x6 => "final_size_error",
        0x7 => "frame_encoding_error",
        0x8 => "transport_parameter_error",
        0x9 => "connection_id_limit_error",
        0xa => "protocol_violation",
        0xb => "invalid_token",
        0xc => "application_error",
        0xd => "crypto_buffer_exceeded",
        0xe => "key_update_error",
        0xf => "aead_limit_reached",
        0x10 => "no_viable_path",
        _ => return None,
    })
}

fn stream_type(d: StreamDir) -> &'static str {
    match d {
        StreamDir::Bidi => "bidirectional",
        StreamDir::Uni => "unidirectional",
    }
}

/// Writes the frames of `payload` as comma-separated JSON objects. A payload that does not
/// decode (it never happens for what this endpoint built or accepted) ends the list with an
/// `unknown` frame carrying the undecoded length, instead of stopping silently.
pub(super) fn write_frames(out: &mut Vec<u8>, payload: &[u8], ack_delay_exponent: u8) {
    let mut frames = Frames::new(payload);
    let mut first = true;
    loop {
        let before = frames.remaining();
        let Some(item) = frames.next() else { break };
        if !first {
            out.push(b',');
        }
        first = false;
        match item {
            Ok(f) => write_frame(out, &f, ack_delay_exponent),
            Err(_) => {
                let _ =
                    write!(out, "{{\"frame_type\":\"unknown\",\"raw\":{{\"length\":{before}}}}}");
                break;
            }
        }
    }
}

fn write_frame(out: &mut Vec<u8>, f: &Frame<'_>, ack_delay_exponent: u8) {
    match f {
        Frame::Padding(p) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"padding\",\"raw\":{{\"length\":{0},\"payload_length\":{0}}}}}",
                p.len
            );
        }
        Frame::Ping(_) => out.extend_from_slice(b"{\"frame_type\":\"ping\"}"),
        Frame::Ack(a) => {
            let delay_ms = a.ack_delay_micros(ack_delay_exponent) as f64 / 1000.0;
            let _ = write!(out, "{{\"frame_type\":\"ack\",\"ack_delay\":{delay_ms:.3},");
            out.extend_from_slice(b"\"acked_ranges\":[");
            // qlog lists ranges in ascending order; the frame holds them largest first.
            let ranges: Vec<_> = a.ranges().collect();
            for (i, r) in ranges.iter().rev().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "[{},{}]", r.start(), r.end());
            }
            out.push(b']');
            if let Some(e) = a.ecn() {
                let _ = write!(
                    out,
                    ",\"ect0\":{},\"ect1\":{},\"ce\":{}",
                    e.ect0.into_inner(),
                    e.ect1.into_inner(),
                    e.ce.into_inner()
                );
            }
            out.push(b'}');
        }
        Frame::ResetStream(r) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"reset_stream\",\"stream_id\":{},\"error\":\"unknown\",\
                 \"error_code\":{},\"final_size\":{}}}",
                r.stream_id.into_inner(),
                r.error_code.into_inner(),
                r.final_size.into_inner()
            );
        }
        Frame::StopSending(s) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"stop_sending\",\"stream_id\":{},\"error\":\"unknown\",\
                 \"error_code\":{}}}",
                s.stream_id.into_inner(),
                s.error_code.into_inner()
            );
        }
        Frame::Crypto(c) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"crypto\",\"offset\":{},\"raw\":{{\"payload_length\":{}}}}}",
                c.offset.into_inner(),
                c.data.len()
            );
        }
        Frame::NewToken(t) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"new_token\",\"token\":{{\"raw\":{{\"length\":{}}}}}}}",
                t.token.len()
            );
        }
        Frame::Stream(s) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"stream\",\"stream_id\":{},\"offset\":{},\"fin\":{},\
                 \"raw\":{{\"payload_length\":{}}}}}",
                s.stream_id.into_inner(),
                s.offset.into_inner(),
                s.fin,
                s.data.len()
            );
        }
        Frame::MaxData(m) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"max_data\",\"maximum\":{}}}",
                m.max_data.into_inner()
            );
        }
        Frame::MaxStreamData(m) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"max_stream_data\",\"stream_id\":{},\"maximum\":{}}}",
                m.stream_id.into_inner(),
                m.max_data.into_inner()
            );
        }
        Frame::MaxStreams(m) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"max_streams\",\"stream_type\":\"{}\",\"maximum\":{}}}",
                stream_type(m.dir),
                m.max_streams.into_inner()
            );
        }
        Frame::DataBlocked(b) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"data_blocked\",\"limit\":{}}}",
                b.limit.into_inner()
            );
        }
        Frame::StreamDataBlocked(b) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"stream_data_blocked\",\"stream_id\":{},\"limit\":{}}}",
                b.stream_id.into_inner(),
                b.limit.into_inner()
            );
        }
        Frame::StreamsBlocked(b) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"streams_blocked\",\"stream_type\":\"{}\",\"limit\":{}}}",
                stream_type(b.dir),
                b.limit.into_inner()
            );
        }
        Frame::NewConnectionId(n) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"new_connection_id\",\"sequence_number\":{},\
                 \"retire_prior_to\":{},\"connection_id_length\":{},\"connection_id\":\"",
                n.sequence.into_inner(),
                n.retire_prior_to.into_inner(),
                n.id.len()
            );
            hex(out, n.id.as_bytes());
            out.extend_from_slice(b"\",\"stateless_reset_token\":\"");
            hex(out, &n.reset_token.0);
            out.extend_from_slice(b"\"}");
        }
        Frame::RetireConnectionId(r) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"retire_connection_id\",\"sequence_number\":{}}}",
                r.sequence.into_inner()
            );
        }
        Frame::PathChallenge(p) => {
            out.extend_from_slice(b"{\"frame_type\":\"path_challenge\",\"data\":\"");
            hex(out, &p.data);
            out.extend_from_slice(b"\"}");
        }
        Frame::PathResponse(p) => {
            out.extend_from_slice(b"{\"frame_type\":\"path_response\",\"data\":\"");
            hex(out, &p.data);
            out.extend_from_slice(b"\"}");
        }
        Frame::ConnectionClose(c) => {
            let code = c.error_code.into_inner();
            let (space, trigger, error) = match c.kind {
                CloseKind::Transport { frame_type } => {
                    ("transport", Some(frame_type), transport_error_name(code))
                }
                CloseKind::Application => ("application", None, Some("unknown")),
            };
            let _ =
                write!(out, "{{\"frame_type\":\"connection_close\",\"error_space\":\"{space}\",");
            if let Some(e) = error {
                let _ = write!(out, "\"error\":\"{e}\",");
            }
            let _ = write!(out, "\"error_code\":{code},\"reason\":");
            json_str(out, &String::from_utf8_lossy(c.reason));
            if let Some(t) = trigger {
                let _ = write!(out, ",\"trigger_frame_type\":{}", t.into_inner());
            }
            out.push(b'}');
        }
        Frame::HandshakeDone(_) => out.extend_from_slice(b"{\"frame_type\":\"handshake_done\"}"),
        Frame::Datagram(d) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"datagram\",\"raw\":{{\"payload_length\":{}}}}}",
                d.data.len()
            );
        }
        // The extension frames (draft-ietf-quic-ack-frequency) have no frame_type of their own
        // in the QUIC event schema: they are `unknown` frames named by their type bytes, with
        // the ACK_FREQUENCY fields kept as extension fields so readers lose nothing.
        Frame::ImmediateAck(_) => {
            out.extend_from_slice(b"{\"frame_type\":\"unknown\",\"frame_type_bytes\":31}");
        }
        Frame::AckFrequency(f) => {
            let _ = write!(
                out,
                "{{\"frame_type\":\"unknown\",\"frame_type_bytes\":175,\"sequence_number\":{},\
                 \"ack_eliciting_threshold\":{},\"request_max_ack_delay\":{},\
                 \"reordering_threshold\":{}}}",
                f.sequence.into_inner(),
                f.ack_eliciting_threshold.into_inner(),
                f.request_max_ack_delay.into_inner(),
                f.reordering_threshold.into_inner()
            );
        }
    }
}
