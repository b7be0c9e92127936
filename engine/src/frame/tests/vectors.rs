//! Known-good byte vectors: RFC 9001 Appendix A and hand-assembled frames from RFC 9000 §19.

use super::*;

/// RFC 9001 Appendix A.3: the unprotected payload of the server's Initial packet.
const SERVER_INITIAL_PAYLOAD: &str =
    "02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739
     88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94
     0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00 020304";

#[test]
fn rfc9001_server_initial_payload() {
    let payload = hex(SERVER_INITIAL_PAYLOAD);
    assert_eq!(payload.len(), 99);
    let frames: Vec<Frame<'_>> =
        Frames::for_packet(&payload, PacketKind::Initial).collect::<Result<_, _>>().unwrap();
    assert_eq!(frames.len(), 2);
    // ACK: Largest Acknowledged 0, ACK Delay 0, no extra ranges, First ACK Range 0.
    let Frame::Ack(ack) = frames[0] else { panic!("{:?}", frames[0]) };
    assert_eq!((ack.largest(), ack.ack_delay(), ack.range_count()), (0, VarInt::ZERO, 1));
    assert_eq!(ack.ranges().collect::<Vec<_>>(), vec![0..=0]);
    assert_eq!(ack.ecn(), None);
    // CRYPTO: offset 0, length 0x5a (two-byte varint 0x405a): the 90-byte ServerHello.
    let Frame::Crypto(crypto) = frames[1] else { panic!("{:?}", frames[1]) };
    assert_eq!(crypto.offset, VarInt::ZERO);
    assert_eq!(crypto.data.len(), 90);
    assert_eq!(&crypto.data[..6], &[0x02, 0x00, 0x00, 0x56, 0x03, 0x03]);
    assert_eq!(crypto.data.as_ptr(), payload[9..].as_ptr(), "borrowed, not copied");
    assert_eq!(decode_all(&payload), Ok(2));
    let summary = frames.iter().fold(PacketSummary::default(), |mut s, f| {
        s.on_frame(f.frame_type());
        s
    });
    assert!(summary.ack_eliciting && summary.in_flight);

    // Our encoders produce the same bytes.
    let mut out = vec![0u8; 99];
    let mut w = Writer::new(&mut out);
    write_ack(&mut w, [0..=0], VarInt::ZERO, None).unwrap();
    Crypto { offset: VarInt::ZERO, data: crypto.data }.encode(&mut w).unwrap();
    assert_eq!(w.written(), &payload[..]);
}

/// RFC 9001 Appendix A.2: the client Initial's payload begins with a CRYPTO frame of 241 bytes
/// (`060040f1`) and is padded to 1162 bytes with PADDING frames.
#[test]
fn rfc9001_client_initial_layout() {
    let mut payload = hex("060040f1 010000ed0303ebf8fa56f129");
    payload.resize(4 + 241, 0x5a);
    payload.resize(1162, 0x00);
    let frames: Vec<_> =
        Frames::for_packet(&payload, PacketKind::Initial).collect::<Result<Vec<_>, _>>().unwrap();
    let [Frame::Crypto(c), Frame::Padding(p)] = frames[..] else { panic!("{frames:?}") };
    assert_eq!((c.offset, c.data.len(), &c.data[..4]), (VarInt::ZERO, 241, &[1, 0, 0, 0xed][..]));
    assert_eq!(p.len, 1162 - 245, "the PADDING run is one frame");
}

/// ACK_ECN: largest 0x4000 (4-byte varint), delay 0x19, 2 more ranges, first range 3
/// (16381..=16384); gap 0, length 2 (16377..=16379); gap 1, length 1 (16373..=16374);
/// ECN counts 1, 2, 3.
const ACK_ECN_HEX: &str = "03 80004000 19 02 03 00 02 01 01 01 02 03";

#[test]
fn hand_assembled_frames() {
    let v = VarInt::from_u32;
    let cases: Vec<(&str, Frame<'static>)> = vec![
        ("000000 ", Frame::Padding(Padding { len: 3 })),
        ("01", Frame::Ping(Ping)),
        (ACK_ECN_HEX, decode_one(Vec::leak(hex(ACK_ECN_HEX))).unwrap()),
        (
            "04 04 4100 0a",
            Frame::ResetStream(ResetStream {
                stream_id: v(4),
                error_code: v(256),
                final_size: v(10),
            }),
        ),
        ("05 08 00", Frame::StopSending(StopSending { stream_id: v(8), error_code: v(0) })),
        ("06 4400 03 616263", Frame::Crypto(Crypto { offset: v(1024), data: b"abc" })),
        ("07 02 beef", Frame::NewToken(NewToken { token: &[0xbe, 0xef] })),
        (
            "0f 01 05 02 6869",
            Frame::Stream(Stream {
                stream_id: v(1),
                offset: v(5),
                data: b"hi",
                fin: true,
                has_length: true,
            }),
        ),
        (
            "08 00 6869",
            Frame::Stream(Stream {
                stream_id: v(0),
                offset: v(0),
                data: b"hi",
                fin: false,
                has_length: false,
            }),
        ),
        ("10 80010000", Frame::MaxData(MaxData { max_data: v(65_536) })),
        (
            "11 04 7fff",
            Frame::MaxStreamData(MaxStreamData { stream_id: v(4), max_data: v(16_383) }),
        ),
        ("13 03", Frame::MaxStreams(MaxStreams { dir: StreamDir::Uni, max_streams: v(3) })),
        ("14 00", Frame::DataBlocked(DataBlocked { limit: v(0) })),
        (
            "15 02 40 40",
            Frame::StreamDataBlocked(StreamDataBlocked { stream_id: v(2), limit: v(64) }),
        ),
        ("16 0a", Frame::StreamsBlocked(StreamsBlocked { dir: StreamDir::Bidi, limit: v(10) })),
        (
            "18 01 00 04 01020304 000102030405060708090a0b0c0d0e0f",
            Frame::NewConnectionId(NewConnectionId {
                sequence: v(1),
                retire_prior_to: v(0),
                id: ConnectionId::new(&[1, 2, 3, 4]).unwrap(),
                reset_token: ResetToken([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
            }),
        ),
        ("19 07", Frame::RetireConnectionId(RetireConnectionId { sequence: v(7) })),
        (
            "1a 0102030405060708",
            Frame::PathChallenge(PathChallenge { data: [1, 2, 3, 4, 5, 6, 7, 8] }),
        ),
        (
            "1b 0102030405060708",
            Frame::PathResponse(PathResponse { data: [1, 2, 3, 4, 5, 6, 7, 8] }),
        ),
        (
            "1c 0a 08 03 616263",
            Frame::ConnectionClose(ConnectionClose::transport(
                TransportErrorCode::PROTOCOL_VIOLATION,
                Some(8),
                b"abc",
            )),
        ),
        ("1d 4100 00", Frame::ConnectionClose(ConnectionClose::application(v(256), b""))),
        ("1e", Frame::HandshakeDone(HandshakeDone)),
        ("30 6869", Frame::Datagram(Datagram { data: b"hi", has_length: false })),
        ("31 00", Frame::Datagram(Datagram { data: b"", has_length: true })),
        // draft-ietf-quic-ack-frequency: IMMEDIATE_ACK is 0x1f; ACK_FREQUENCY 0xaf takes a
        // two-byte type varint (0x40af).
        ("1f", Frame::ImmediateAck(ImmediateAck)),
        (
            "40af 07 0a 4064 03",
            Frame::AckFrequency(AckFrequency {
                sequence: v(7),
                ack_eliciting_threshold: v(10),
                request_max_ack_delay: v(100),
                reordering_threshold: v(3),
            }),
        ),
    ];
    for (bytes, expected) in cases {
        let bytes = hex(bytes);
        assert_eq!(decode_one(&bytes).unwrap(), expected, "{bytes:02x?}");
        assert_eq!(encode(&expected), bytes, "{expected:?}");
    }
    let ack_bytes = hex(ACK_ECN_HEX);
    let Frame::Ack(ack) = decode_one(&ack_bytes).unwrap() else { panic!() };
    assert_eq!(ack.ranges().collect::<Vec<_>>(), vec![16381..=16384, 16377..=16379, 16373..=16374]);
    assert_eq!(ack.ack_delay_micros(3), 0x19 << 3);
    assert_eq!(ack.ecn(), Some(EcnCounts { ect0: v(1), ect1: v(2), ce: v(3) }));
    assert_eq!(PathChallenge { data: *b"12345678" }.response().data, *b"12345678");
}

/// Non-minimal encodings inside a frame body are valid (only the type must be minimal); the
/// OFF bit with a zero offset decodes too.
#[test]
fn lenient_body_encodings() {
    // STREAM with OFF set and a 2-byte zero offset, LEN with a 4-byte length.
    let bytes = hex("0e 00 4000 80000002 6869");
    let Frame::Stream(s) = decode_one(&bytes).unwrap() else { panic!() };
    assert_eq!((s.offset, s.data, s.has_length), (VarInt::ZERO, &b"hi"[..], true));
    // MAX_DATA with an 8-byte 1.
    assert_eq!(
        decode_one(&hex("10 c000000000000001")).unwrap(),
        Frame::MaxData(MaxData { max_data: VarInt::from_u32(1) })
    );
}

#[test]
fn ack_encoder_rejects_bad_ranges() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    let none: [RangeInclusive<u64>; 0] = [];
    assert_eq!(write_ack(&mut w, none, VarInt::ZERO, None), Err(AckWriteError::NoRanges));
    // Adjacent ranges must be merged (no gap packet between them).
    assert_eq!(
        write_ack(&mut w, [5..=6, 3..=4], VarInt::ZERO, None),
        Err(AckWriteError::InvalidRanges)
    );
    assert_eq!(
        write_ack(&mut w, [3..=4, 5..=6], VarInt::ZERO, None),
        Err(AckWriteError::InvalidRanges)
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = [5..=4];
    assert_eq!(write_ack(&mut w, empty, VarInt::ZERO, None), Err(AckWriteError::InvalidRanges));
    assert_eq!(
        write_ack(&mut w, [0..=(1 << 62)], VarInt::ZERO, None),
        Err(AckWriteError::InvalidRanges)
    );
    assert_eq!(w.len(), 0);
    // One unacknowledged packet between ranges: gap field 0.
    let plan = write_ack(&mut w, [5..=6, 0..=3], VarInt::ZERO, None).unwrap();
    assert_eq!(w.written(), &[0x02, 0x06, 0x00, 0x01, 0x01, 0x00, 0x03]);
    assert_eq!(plan, AckPlan { ranges: 2, smallest: 0, len: 7 });
    // No room for even the first range.
    let mut tiny = [0u8; 4];
    let mut w = Writer::new(&mut tiny);
    assert_eq!(write_ack(&mut w, [0..=0], VarInt::ZERO, None), Err(AckWriteError::BufferFull));
    assert_eq!(w.len(), 0);
}

#[test]
fn ack_encoder_keeps_largest_ranges_when_short_of_room() {
    // 100 single-packet ranges: 200, 198, ..., 2.
    let ranges: Vec<_> = (0..100u64).map(|i| 200 - 2 * i..=200 - 2 * i).collect();
    let mut buf = [0u8; 20];
    let mut w = Writer::new(&mut buf);
    let plan = write_ack(&mut w, ranges.iter().cloned(), VarInt::from_u32(10), None).unwrap();
    // type, largest(2), delay, count, first = 6 bytes; each further range is 2 bytes.
    assert_eq!(plan.ranges, 8);
    assert_eq!(plan.len, 20);
    assert_eq!(plan.smallest, 200 - 2 * 7);
    let Frame::Ack(ack) = decode_one(w.written()).unwrap() else { panic!() };
    assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges[..8].to_vec());
}
