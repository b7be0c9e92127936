//! Packet-type permissions (RFC 9000 §12.4 Table 3) and recovery classification.

use super::*;

use PacketKind::{Handshake, Initial, OneRtt, ZeroRtt};

/// Table 3's "Pkts" column (plus RFC 9221 for DATAGRAM), written out independently of the
/// implementation: (type, allowed in I, H, 0, 1).
fn table3() -> Vec<(u64, [bool; 4])> {
    let (y, n) = (true, false);
    let mut rows = vec![
        (0x00, [y, y, y, y]), // PADDING        IH01
        (0x01, [y, y, y, y]), // PING           IH01
        (0x02, [y, y, n, y]), // ACK            IH_1
        (0x03, [y, y, n, y]),
        (0x04, [n, n, y, y]), // RESET_STREAM   __01
        (0x05, [n, n, y, y]), // STOP_SENDING   __01
        (0x06, [y, y, n, y]), // CRYPTO         IH_1
        (0x07, [n, n, n, y]), // NEW_TOKEN      ___1
    ];
    rows.extend((0x08..=0x0f).map(|t| (t, [n, n, y, y]))); // STREAM __01
    rows.extend((0x10..=0x18).map(|t| (t, [n, n, y, y]))); // MAX_DATA .. NEW_CONNECTION_ID __01
    rows.extend([
        // RETIRE_CONNECTION_ID: Table 3 says __01, but §12.5 lists it among the frames that
        // cannot be sent in 0-RTT and lets a server reject it there; we do.
        (0x19, [n, n, n, y]),
        (0x1a, [n, n, y, y]), // PATH_CHALLENGE __01
        (0x1b, [n, n, n, y]), // PATH_RESPONSE  ___1
        (0x1c, [y, y, y, y]), // CONNECTION_CLOSE 0x1c: ih01
        (0x1d, [n, n, y, y]), // CONNECTION_CLOSE 0x1d: only 0-RTT / 1-RTT
        (0x1e, [n, n, n, y]), // HANDSHAKE_DONE ___1
        // IMMEDIATE_ACK and ACK_FREQUENCY: 1-RTT only (not 0-RTT, draft-ietf-quic-ack-frequency
        // §3; not Initial or Handshake, which carry only the IH frames).
        (0x1f, [n, n, n, y]),
        (0x30, [n, n, y, y]), // DATAGRAM: 0-RTT or 1-RTT keys (RFC 9221 §5)
        (0x31, [n, n, y, y]),
        (0xaf, [n, n, n, y]),
    ]);
    rows
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
//= type=test
//# An endpoint MUST treat
//# receipt of a frame in a packet type that is not permitted as a
//# connection error of type PROTOCOL_VIOLATION.
//
//= https://www.rfc-editor.org/rfc/rfc9000#section-12.5
//= type=test
//# CONNECTION_CLOSE
//# frames signaling application errors (type 0x1d) MUST only appear
//# in the application data packet number space.
#[test]
fn table_3_permissions() {
    let rows = table3();
    assert_eq!(rows.len(), FrameType::ALL.len());
    for (ty, allowed) in rows {
        let ty = FrameType(ty);
        for (kind, ok) in [Initial, Handshake, ZeroRtt, OneRtt].into_iter().zip(allowed) {
            assert_eq!(ty.allowed_in(kind), ok, "{ty:?} in {kind:?}");
            match ty.check_allowed(kind) {
                Ok(()) => assert!(ok),
                Err(e) => {
                    assert!(!ok);
                    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
                    assert_eq!(e.frame_type, Some(ty.0));
                }
            }
        }
    }
    for kind in [Initial, Handshake, ZeroRtt, OneRtt] {
        assert!(!FrameType(0x20).allowed_in(kind));
    }
}

/// `Frames::for_packet` applies the table to real payloads.
#[test]
fn payload_checks_by_packet_type() {
    for frame in super::roundtrip::one_of_each() {
        let bytes = encode(&frame);
        let ty = frame.frame_type();
        for kind in [Initial, Handshake, ZeroRtt, OneRtt] {
            let first = Frames::for_packet(&bytes, kind).next().unwrap();
            if ty.allowed_in(kind) {
                assert_eq!(first.unwrap(), frame);
            } else {
                let e = first.unwrap_err();
                assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "{ty:?} {kind:?}");
                assert_eq!(e.frame_type, Some(ty.0));
            }
        }
    }
    // ACK + CRYPTO is fine in an Initial packet; a STREAM frame after them is not.
    let mut payload = hex("02000000000600015a");
    payload.push(0x0a);
    payload.extend([0x00, 0x00]);
    let mut frames = Frames::for_packet(&payload, Initial);
    assert!(matches!(frames.next(), Some(Ok(Frame::Ack(_)))));
    assert!(matches!(frames.next(), Some(Ok(Frame::Crypto(_)))));
    assert_eq!(frames.next().unwrap().unwrap_err().frame_type, Some(0x0a));
    assert!(frames.next().is_none());
    // The packet-type check comes before the body: a cut-off STREAM frame in a Handshake
    // packet is a PROTOCOL_VIOLATION, while an unknown type stays a FRAME_ENCODING_ERROR.
    let pv = TransportErrorCode::PROTOCOL_VIOLATION;
    assert_err(Frame::decode_for(&mut Reader::new(&[0x0e]), Handshake), pv, Some(0x0e));
    assert_err(Frame::decode(&mut Reader::new(&[0x0e])), FEE, Some(0x0e));
    assert_err(Frame::decode_for(&mut Reader::new(&[0x20]), Handshake), FEE, Some(0x20));
    assert_err(Frame::decode_for(&mut Reader::new(&[0x40, 0x08]), Initial), pv, Some(0x08));
}

const FEE: TransportErrorCode = TransportErrorCode::FRAME_ENCODING_ERROR;

//= https://www.rfc-editor.org/rfc/rfc9002#section-2
//= type=test
//# Ack-eliciting frames:  All frames other than ACK, PADDING, and
//#    CONNECTION_CLOSE are considered ack-eliciting.
//
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.1
//= type=test
//# PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, and PADDING frames
//# are "probing frames", and all other frames are "non-probing frames".
#[test]
fn classification() {
    for ty in FrameType::ALL {
        let t = ty.0;
        assert_eq!(ty.is_ack_eliciting(), !matches!(t, 0x00 | 0x02 | 0x03 | 0x1c | 0x1d), "{ty:?}");
        assert_eq!(ty.is_probing(), matches!(t, 0x00 | 0x18 | 0x1a | 0x1b), "{ty:?}");
        assert_eq!(ty.is_congestion_controlled(), !matches!(t, 0x02 | 0x03), "{ty:?}");
        assert_eq!(ty.is_flow_controlled(), (0x08..=0x0f).contains(&t), "{ty:?}");
        assert!(ty.name().is_some());
    }
    assert!(FrameType::DATAGRAM.is_ack_eliciting() && !FrameType::DATAGRAM.is_flow_controlled());
    assert_eq!(FrameType(0x20).name(), None);
    assert_eq!(FrameType(0xae).name(), None);
    assert_eq!(format!("{:?}", FrameType::STREAM_MAX), "STREAM(0x0f)");
}

fn summary(types: &[FrameType]) -> PacketSummary {
    let mut s = PacketSummary::default();
    for t in types {
        s.on_frame(*t);
    }
    s
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-2
//= type=test
//# In-flight packets:  Packets are considered in flight when they are
//#    ack-eliciting or contain a PADDING frame, and they have been sent
//#    but are not acknowledged, declared lost, or discarded along with
//#    old keys.
#[test]
fn packet_summaries() {
    use FrameType as T;
    let ack_only = summary(&[T::ACK]);
    assert!(!ack_only.ack_eliciting && !ack_only.in_flight && !ack_only.is_probing());
    let ack_pad = summary(&[T::ACK, T::PADDING]);
    assert!(!ack_pad.ack_eliciting && ack_pad.in_flight);
    let close = summary(&[T::CONNECTION_CLOSE]);
    assert!(!close.ack_eliciting && !close.in_flight);
    let probe = summary(&[T::PATH_CHALLENGE, T::PADDING]);
    assert!(probe.ack_eliciting && probe.in_flight && probe.is_probing());
    let probe_cid = summary(&[T::NEW_CONNECTION_ID, T::PATH_RESPONSE]);
    assert!(probe_cid.is_probing());
    let not_probe = summary(&[T::PATH_CHALLENGE, T::PING]);
    assert!(!not_probe.is_probing() && not_probe.ack_eliciting);
    assert!(!PacketSummary::default().is_probing());
    assert_eq!(summary(&[T::PING, T::DATAGRAM]).frames, 2);
}
