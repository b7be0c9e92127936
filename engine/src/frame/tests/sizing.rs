//! "How much fits" helpers: STREAM, CRYPTO and DATAGRAM data, CONNECTION_CLOSE reasons.

use super::*;

fn stream_len(id: VarInt, offset: VarInt, n: usize, has_length: bool) -> usize {
    let data = vec![0u8; n];
    Stream { stream_id: id, offset, data: &data, fin: false, has_length }.encoded_len()
}

proptest! {
    /// `Stream::max_data_len` is the largest amount that fits: the frame fits, one more byte
    /// does not; without a Length field the packet is filled exactly, with one the frame ends at
    /// most two bytes short (capacities here are below 2^30).
    #[test]
    fn stream_fit(id in vi(), offset in vi(), capacity in 0usize..20_000, has_length in any::<bool>()) {
        match Stream::max_data_len(id, offset, capacity, has_length) {
            None => prop_assert!(stream_len(id, offset, 0, has_length) > capacity),
            Some(n) => {
                let len = stream_len(id, offset, n, has_length);
                prop_assert!(len <= capacity);
                prop_assert!(offset.into_inner() + n as u64 <= varint::MAX);
                let capped = offset.into_inner() + n as u64 == varint::MAX;
                if !capped {
                    prop_assert!(stream_len(id, offset, n + 1, has_length) > capacity);
                    if has_length {
                        prop_assert!(capacity - len <= 2);
                    } else {
                        prop_assert_eq!(len, capacity);
                    }
                }
                prop_assert_eq!(
                    Stream::header_len(id, offset, n, has_length) + n,
                    len
                );
            }
        }
    }

    #[test]
    fn crypto_fit(offset in vi(), capacity in 0usize..20_000) {
        let len = |n: usize| Crypto { offset, data: &vec![0u8; n] }.encoded_len();
        match Crypto::max_data_len(offset, capacity) {
            None => prop_assert!(len(0) > capacity),
            Some(n) => {
                prop_assert!(len(n) <= capacity);
                if offset.into_inner() + (n as u64) < varint::MAX {
                    prop_assert!(len(n + 1) > capacity);
                    prop_assert!(capacity - len(n) <= 2);
                }
            }
        }
    }

    #[test]
    fn datagram_fit(capacity in 0usize..20_000, has_length in any::<bool>()) {
        let len = |n: usize| Datagram { data: &vec![0u8; n], has_length }.encoded_len();
        match Datagram::max_data_len(capacity, has_length) {
            None => prop_assert!(len(0) > capacity),
            Some(n) => {
                prop_assert!(len(n) <= capacity && len(n + 1) > capacity);
                prop_assert!(capacity - len(n) <= 2 * usize::from(has_length));
            }
        }
    }

    #[test]
    fn close_reason_truncation(reason in ".{0,60}", capacity in 0usize..80, app in any::<bool>()) {
        let close = if app {
            ConnectionClose::application(VarInt::from_u32(77), reason.as_bytes())
        } else {
            ConnectionClose::transport(TransportErrorCode::PROTOCOL_VIOLATION, Some(0x1a), reason.as_bytes())
        };
        match close.truncated_to(capacity) {
            None => {
                let empty = ConnectionClose { reason: &[], ..close };
                prop_assert!(empty.encoded_len() > capacity);
            }
            Some(t) => {
                prop_assert!(t.encoded_len() <= capacity);
                prop_assert!(reason.as_bytes().starts_with(t.reason));
                prop_assert!(std::str::from_utf8(t.reason).is_ok(), "cut inside a character");
                prop_assert_eq!((t.kind, t.error_code), (close.kind, close.error_code));
                if close.encoded_len() <= capacity {
                    prop_assert_eq!(t, close);
                }
            }
        }
    }
}

#[test]
fn stream_fit_examples() {
    let id = VarInt::from_u32(4);
    // type + id = 2 bytes; no offset field at offset 0.
    assert_eq!(Stream::max_data_len(id, VarInt::ZERO, 1, false), None);
    assert_eq!(Stream::max_data_len(id, VarInt::ZERO, 2, false), Some(0));
    assert_eq!(Stream::max_data_len(id, VarInt::ZERO, 1200, false), Some(1198));
    // With a length: 1200 - 2 = 1198 bytes for length + data: a 2-byte length, 1196 bytes.
    assert_eq!(Stream::max_data_len(id, VarInt::ZERO, 1200, true), Some(1196));
    // Offset 2^62-1: only an empty frame.
    assert_eq!(Stream::max_data_len(id, VarInt::MAX, 1200, false), Some(0));
    // type + offset + length = 3 bytes.
    assert_eq!(Crypto::max_data_len(VarInt::ZERO, 2), None);
    assert_eq!(Crypto::max_data_len(VarInt::ZERO, 3), Some(0));
    assert_eq!(Crypto::max_data_len(VarInt::ZERO, 4), Some(1));
    // 16385..=16387 bytes after type and offset: 16383 bytes and a 2-byte length, up to 2 short.
    for cap in 16_387..=16_389 {
        let n = Crypto::max_data_len(VarInt::ZERO, cap).unwrap();
        assert_eq!(n, 16_383);
        assert_eq!(Crypto { offset: VarInt::ZERO, data: &[0; 16_383] }.encoded_len(), 16_387);
    }
    assert_eq!(Crypto::max_data_len(VarInt::ZERO, 16_390), Some(16_384));
    assert_eq!(Datagram::max_data_len(16_388, true), Some(16_383));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
//= type=test
//# A CONNECTION_CLOSE of type 0x1d MUST be replaced by a
//# CONNECTION_CLOSE of type 0x1c when sending the frame in Initial or
//# Handshake packets.
//
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
//= type=test
//# Endpoints MUST clear the value of the
//# Reason Phrase field and SHOULD use the APPLICATION_ERROR code when
//# converting to a CONNECTION_CLOSE of type 0x1c.
#[test]
fn application_close_in_handshake_packets() {
    let app = ConnectionClose::application(VarInt::from_u32(0x42), b"secret app state");
    let hs = app.for_handshake_packets();
    assert_eq!(hs.frame_type(), FrameType::CONNECTION_CLOSE);
    assert_eq!(hs.transport_error(), Some(TransportErrorCode::APPLICATION_ERROR));
    assert!(hs.reason.is_empty());
    assert!(hs.frame_type().allowed_in(PacketKind::Initial));
    let transport = ConnectionClose::transport(TransportErrorCode::NO_ERROR, None, b"done");
    assert_eq!(transport.for_handshake_packets(), transport);
    assert_eq!(app.transport_error(), None);
}

#[test]
fn close_from_error() {
    let err = Error::frame_encoding("bad ACK").with_frame_type(0x02);
    let close = ConnectionClose::from_error(&err);
    assert_eq!(close.kind, CloseKind::Transport { frame_type: VarInt::from_u32(2) });
    assert_eq!(close.transport_error(), Some(TransportErrorCode::FRAME_ENCODING_ERROR));
    assert_eq!(close.reason, b"bad ACK");
    assert_eq!(encode(&Frame::ConnectionClose(close)), b"\x1c\x07\x02\x07bad ACK");
}
