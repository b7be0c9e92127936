//! Each rejection rule, with the exact transport error code and frame type.

use super::*;

const FEE: TransportErrorCode = TransportErrorCode::FRAME_ENCODING_ERROR;
const PV: TransportErrorCode = TransportErrorCode::PROTOCOL_VIOLATION;

/// The 8-byte varint encoding of 2^62-1.
const MAX_8: [u8; 8] = [0xff; 8];

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.3.1
//= type=test
//# If any computed packet number is negative, an endpoint MUST generate
//# a connection error of type FRAME_ENCODING_ERROR.
#[test]
fn ack_ranges_below_zero() {
    // First ACK Range larger than Largest Acknowledged.
    assert_err(decode_one(&[0x02, 0x05, 0x00, 0x00, 0x06]), FEE, Some(0x02));
    assert!(decode_one(&[0x02, 0x05, 0x00, 0x00, 0x05]).is_ok(), "down to exactly 0");
    // largest 10, first range 2 (smallest 8): a gap of 7 gives 8 - 7 - 2 = -1.
    assert_err(decode_one(&[0x02, 0x0a, 0x00, 0x01, 0x02, 0x07, 0x00]), FEE, Some(0x02));
    // gap 6 gives largest 0, so a range length of 1 gives -1.
    assert_err(decode_one(&[0x02, 0x0a, 0x00, 0x01, 0x02, 0x06, 0x01]), FEE, Some(0x02));
    // Same in an ACK_ECN frame.
    assert_err(decode_one(&[0x03, 0x0a, 0x00, 0x01, 0x02, 0x06, 0x01, 0, 0, 0]), FEE, Some(0x03));
    // gap 6, length 0: acknowledges packet 0 exactly.
    let f = decode_one(&[0x02, 0x0a, 0x00, 0x01, 0x02, 0x06, 0x00]).unwrap();
    let Frame::Ack(ack) = f else { panic!() };
    assert_eq!(ack.ranges().collect::<Vec<_>>(), vec![8..=10, 0..=0]);
    assert_eq!(ack.smallest(), 0);
}

#[test]
fn ack_truncated_or_missing_ecn() {
    // Range count says 1, no range follows.
    assert_err(decode_one(&[0x02, 0x05, 0x00, 0x01, 0x00]), FEE, Some(0x02));
    // Type 0x03 without ECN counts.
    assert_err(decode_one(&[0x03, 0x05, 0x00, 0x00, 0x00]), FEE, Some(0x03));
    assert_err(decode_one(&[0x03, 0x05, 0x00, 0x00, 0x00, 0x01, 0x01]), FEE, Some(0x03));
    // A huge range count with few bytes fails fast instead of looping.
    assert_err(decode_one(&[0x02, 0x05, 0x00, 0xbf, 0xff, 0xff, 0xff, 0x00]), FEE, Some(0x02));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
//= type=test
//# Values less than 1 and greater than 20 are invalid
//# and MUST be treated as a connection error of type
//# FRAME_ENCODING_ERROR.
#[test]
fn new_connection_id_length() {
    let frame = |len: u8| {
        let mut b = vec![0x18, 0x01, 0x00, len];
        b.extend(std::iter::repeat_n(0xab, usize::from(len)));
        b.extend([0x11; 16]);
        b
    };
    assert_err(decode_one(&frame(0)), FEE, Some(0x18));
    assert_err(decode_one(&frame(21)), FEE, Some(0x18));
    assert_err(decode_one(&frame(255)), FEE, Some(0x18));
    for len in [1, 8, 20] {
        let Frame::NewConnectionId(f) = decode_one(&frame(len)).unwrap() else { panic!() };
        assert_eq!(f.id.len(), usize::from(len));
        assert_eq!(f.reset_token, ResetToken([0x11; 16]));
    }
    // Reset token cut short.
    let mut b = frame(4);
    b.pop();
    assert_err(decode_one(&b), FEE, Some(0x18));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
//= type=test
//# Receiving a value in the Retire Prior To field that is greater than
//# that in the Sequence Number field MUST be treated as a connection
//# error of type FRAME_ENCODING_ERROR.
#[test]
fn new_connection_id_retire_prior_to_above_sequence() {
    let mut b = vec![0x18, 0x03, 0x04, 0x01, 0xcc];
    b.extend([0; 16]);
    assert_err(decode_one(&b), FEE, Some(0x18));
    b[2] = 0x03; // equal is fine
    assert!(decode_one(&b).is_ok());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
//= type=test
//# Receipt of a frame that exceeds this limit
//# MUST be treated as a connection error of type FRAME_ENCODING_ERROR or
//# FLOW_CONTROL_ERROR.
#[test]
fn stream_beyond_max_offset() {
    // OFF|LEN, offset 2^62-1, one byte of data.
    let mut b = vec![0x0e, 0x00];
    b.extend(MAX_8);
    b.extend([0x01, 0x61]);
    assert_err(decode_one(&b), FEE, Some(0x0e));
    // OFF only: the data runs to the end of the packet.
    let mut b = vec![0x0d, 0x00];
    b.extend(MAX_8);
    b.push(0x61);
    assert_err(decode_one(&b), FEE, Some(0x0d));
    // Ending exactly at 2^62-1 is allowed (an empty FIN there).
    let mut b = vec![0x0f, 0x00];
    b.extend(MAX_8);
    b.push(0x00);
    let Frame::Stream(s) = decode_one(&b).unwrap() else { panic!() };
    assert_eq!(s.end_offset(), varint::MAX);
    assert!(s.fin);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.6
//= type=test
//# Receipt of a frame that exceeds
//# this limit MUST be treated as a connection error of type
//# FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED.
#[test]
fn crypto_beyond_max_offset() {
    let mut b = vec![0x06];
    b.extend(MAX_8);
    b.extend([0x02, 0x61, 0x62]);
    assert_err(decode_one(&b), FEE, Some(0x06));
    // Declared length longer than the packet.
    assert_err(decode_one(&[0x06, 0x00, 0x05, 0x61]), FEE, Some(0x06));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.11
//= type=test
//# Receipt of a frame that
//# permits opening of a stream larger than this limit MUST be treated
//# as a connection error of type FRAME_ENCODING_ERROR.
//
//= https://www.rfc-editor.org/rfc/rfc9000#section-19.14
//= type=test
//# Receipt of a frame that encodes a larger
//# stream ID MUST be treated as a connection error of type
//# STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
#[test]
fn stream_counts_above_2_60() {
    for ty in [0x12u8, 0x13, 0x16, 0x17] {
        let at_limit = [ty, 0xd0, 0, 0, 0, 0, 0, 0, 0]; // 2^60
        assert!(decode_one(&at_limit).is_ok(), "{ty:#x} at 2^60");
        let above = [ty, 0xd0, 0, 0, 0, 0, 0, 0, 1]; // 2^60 + 1
        assert_err(decode_one(&above), FEE, Some(u64::from(ty)));
        let mut max = vec![ty];
        max.extend(MAX_8);
        assert_err(decode_one(&max), FEE, Some(u64::from(ty)));
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
//= type=test
//# A client MUST treat receipt
//# of a NEW_TOKEN frame with an empty Token field as a connection
//# error of type FRAME_ENCODING_ERROR.
#[test]
fn new_token_empty() {
    assert_err(decode_one(&[0x07, 0x00]), FEE, Some(0x07));
    assert_err(decode_one(&[0x07, 0x03, 0x01]), FEE, Some(0x07));
    assert!(decode_one(&[0x07, 0x01, 0x01]).is_ok());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
//= type=test
//# An endpoint MUST treat the receipt of a frame of unknown type as a
//# connection error of type FRAME_ENCODING_ERROR.
#[test]
fn unknown_frame_types() {
    for ty in [0x20u8, 0x21, 0x2f, 0x32, 0x3f] {
        assert_err(decode_one(&[ty, 0, 0, 0]), FEE, Some(u64::from(ty)));
    }
    // Two-byte minimal encodings of unknown types (0x100, 0x3fff).
    assert_err(decode_one(&[0x41, 0x00]), FEE, Some(0x100));
    assert_err(decode_one(&[0x7f, 0xff]), FEE, Some(0x3fff));
    // A cut-off type has no frame type to report.
    assert_err(decode_one(&[0x40]), FEE, None);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
//= type=test
//# An endpoint MAY treat the
//# receipt of a frame type that uses a longer encoding than necessary as
//# a connection error of type PROTOCOL_VIOLATION.
#[test]
fn non_minimal_frame_types() {
    assert_err(decode_one(&[0x40, 0x01]), PV, Some(0x01));
    assert_err(decode_one(&[0x40, 0x00]), PV, Some(0x00));
    assert_err(decode_one(&[0x80, 0x00, 0x00, 0x06, 0x00, 0x00]), PV, Some(0x06));
    assert_err(decode_one(&[0xc0, 0, 0, 0, 0, 0, 0, 0x1e]), PV, Some(0x1e));
    // Unknown and non-minimal: reported as the encoding violation.
    assert_err(decode_one(&[0x40, 0x3f]), PV, Some(0x3f));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
//= type=test
//# An endpoint MUST treat receipt of a packet containing no frames as a
//# connection error of type PROTOCOL_VIOLATION.
#[test]
fn empty_payload() {
    assert_err(decode_all(&[]), PV, None);
    assert_err(fuzz_round_trip(&[]), PV, None);
    assert_eq!(decode_all(&[0x00]), Ok(1));
}

/// Every proper prefix of a length-delimited frame is a FRAME_ENCODING_ERROR naming the type.
#[test]
fn every_truncation_is_a_frame_encoding_error() {
    for frame in super::roundtrip::one_of_each() {
        if runs_to_end(&frame) || matches!(frame, Frame::Padding(_)) {
            continue;
        }
        let bytes = encode(&frame);
        // A cut inside a multi-byte type (ACK_FREQUENCY's 0x40af) leaves no type to name.
        let ty_len = varint::size(frame.frame_type().0);
        for cut in 1..ty_len {
            let err = Frame::decode(&mut Reader::new(&bytes[..cut])).unwrap_err();
            assert_eq!((err.code, err.frame_type), (FEE, None), "{frame:?} cut at {cut}");
        }
        for cut in ty_len..bytes.len() {
            let err = Frame::decode(&mut Reader::new(&bytes[..cut])).unwrap_err();
            assert_eq!(err.code, FEE, "{frame:?} cut at {cut}");
            assert_eq!(err.frame_type, Some(frame.frame_type().0), "{frame:?} cut at {cut}");
        }
    }
}

/// The iterator yields the first error and then nothing, even if valid frames follow.
#[test]
fn iterator_stops_after_first_error() {
    let payload = [0x01, 0x20, 0x01, 0x01];
    let mut frames = Frames::new(&payload);
    assert_eq!(frames.next(), Some(Ok(Frame::Ping(Ping))));
    assert_err(frames.next().unwrap(), FEE, Some(0x20));
    assert_eq!(frames.next(), None);
    assert_eq!(frames.next(), None);
    assert_err(decode_all(&payload), FEE, Some(0x20));
}
