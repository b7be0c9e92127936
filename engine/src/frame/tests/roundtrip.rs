//! Round trips: every frame type, whole payloads, ACK ranges, and arbitrary bytes never panic.

use super::*;

/// One frame of every type number this crate knows (all eight STREAM flag combinations, both
/// ACK, MAX_STREAMS, STREAMS_BLOCKED, CONNECTION_CLOSE and DATAGRAM variants).
pub(super) fn one_of_each() -> Vec<Frame<'static>> {
    let v = VarInt::from_u32;
    let mut out = vec![
        Frame::Padding(Padding { len: 3 }),
        Frame::Ping(Ping),
        decode_one(&[0x02, 0x0a, 0x01, 0x01, 0x02, 0x00, 0x01]).unwrap(),
        decode_one(&[0x03, 0x0a, 0x01, 0x00, 0x02, 0x05, 0x06, 0x07]).unwrap(),
        Frame::ResetStream(ResetStream { stream_id: v(4), error_code: v(9), final_size: v(700) }),
        Frame::StopSending(StopSending { stream_id: v(8), error_code: v(0x1_0000) }),
        Frame::Crypto(Crypto { offset: v(1200), data: b"client hello" }),
        Frame::NewToken(NewToken { token: b"token" }),
        Frame::MaxData(MaxData { max_data: v(1 << 20) }),
        Frame::MaxStreamData(MaxStreamData { stream_id: v(0), max_data: v(65_536) }),
        Frame::MaxStreams(MaxStreams { dir: StreamDir::Bidi, max_streams: v(100) }),
        Frame::MaxStreams(MaxStreams { dir: StreamDir::Uni, max_streams: v(3) }),
        Frame::DataBlocked(DataBlocked { limit: v(1 << 20) }),
        Frame::StreamDataBlocked(StreamDataBlocked { stream_id: v(5), limit: v(999) }),
        Frame::StreamsBlocked(StreamsBlocked { dir: StreamDir::Bidi, limit: v(100) }),
        Frame::StreamsBlocked(StreamsBlocked { dir: StreamDir::Uni, limit: v(0) }),
        Frame::NewConnectionId(NewConnectionId {
            sequence: v(2),
            retire_prior_to: v(1),
            id: ConnectionId::new(&[7; 8]).unwrap(),
            reset_token: ResetToken([9; 16]),
        }),
        Frame::RetireConnectionId(RetireConnectionId { sequence: v(1) }),
        Frame::PathChallenge(PathChallenge { data: *b"abcdefgh" }),
        Frame::PathResponse(PathResponse { data: *b"abcdefgh" }),
        Frame::ConnectionClose(ConnectionClose::transport(
            TransportErrorCode::FLOW_CONTROL_ERROR,
            Some(0x08),
            b"too much",
        )),
        Frame::ConnectionClose(ConnectionClose::application(v(0x100), b"bye")),
        Frame::HandshakeDone(HandshakeDone),
        Frame::Datagram(Datagram { data: b"dgram", has_length: false }),
        Frame::Datagram(Datagram { data: b"dgram", has_length: true }),
        Frame::ImmediateAck(ImmediateAck),
        Frame::AckFrequency(AckFrequency {
            sequence: v(7),
            ack_eliciting_threshold: v(31),
            request_max_ack_delay: v(25_000),
            reordering_threshold: v(3),
        }),
    ];
    for bits in 0..8u64 {
        out.push(Frame::Stream(Stream {
            stream_id: v(4),
            offset: if bits & STREAM_OFF_BIT != 0 { v(1000) } else { VarInt::ZERO },
            data: b"stream data",
            fin: bits & STREAM_FIN_BIT != 0,
            has_length: bits & STREAM_LEN_BIT != 0,
        }));
    }
    out
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.3
//= type=test
//# QUIC implementations MUST properly handle both
//# types, and, if they have enabled ECN for packets they send, they
//# SHOULD use the information in the ECN section to manage their
//# congestion state.
#[test]
fn every_frame_type_round_trips() {
    let frames = one_of_each();
    let mut seen: Vec<FrameType> = frames.iter().map(Frame::frame_type).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, FrameType::ALL.to_vec(), "every known type is covered");
    for f in &frames {
        assert_round_trip(f);
    }
}

proptest! {
    #[test]
    fn any_frame_round_trips(f in frame()) {
        assert_round_trip(&f);
    }

    /// A payload of several frames (only the last may omit its Length) decodes back frame for
    /// frame, with neighbouring PADDING runs coalesced.
    #[test]
    fn payload_round_trips(mut frames in prop::collection::vec(frame(), 1..10)) {
        let last = frames.len() - 1;
        for f in &mut frames[..last] {
            match f {
                Frame::Stream(s) => s.has_length = true,
                Frame::Datagram(d) => d.has_length = true,
                _ => {}
            }
        }
        let total: usize = frames.iter().map(Frame::encoded_len).sum();
        let mut buf = vec![0u8; total];
        let mut w = Writer::new(&mut buf);
        for f in &frames {
            f.encode(&mut w).unwrap();
        }
        prop_assert_eq!(w.len(), total);
        let mut expected: Vec<Frame<'_>> = Vec::new();
        for f in frames {
            match (expected.last_mut(), f) {
                (Some(Frame::Padding(p)), Frame::Padding(q)) => p.len += q.len,
                (_, f) => expected.push(f),
            }
        }
        let decoded: Vec<Frame<'_>> = Frames::new(&buf).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&decoded, &expected);
        prop_assert_eq!(decode_all(&buf).unwrap(), expected.len());
        prop_assert_eq!(fuzz_round_trip(&buf).unwrap(), expected.len());
    }

    /// `write_ack` writes as many ranges as fit, largest first, and no more; they decode back.
    #[test]
    fn bounded_ack_encoder(
        ranges in ack_ranges(),
        delay in vi(),
        ecn in prop::option::of((0u32..1000, 0u32..1000, 0u32..1000)),
        capacity in 0usize..120,
    ) {
        let ecn = ecn.map(|(a, b, c)| EcnCounts { ect0: a.into(), ect1: b.into(), ce: c.into() });
        let mut buf = vec![0u8; capacity];
        let mut w = Writer::new(&mut buf);
        match write_ack(&mut w, ranges.iter().cloned(), delay, ecn.as_ref()) {
            Ok(plan) => {
                prop_assert_eq!(plan.len, w.len());
                prop_assert!(plan.len <= capacity);
                let written = w.finish();
                let Frame::Ack(ack) = decode_one(written).unwrap() else { panic!("not an ACK") };
                let got: Vec<_> = ack.ranges().collect();
                prop_assert_eq!(&got[..], &ranges[..plan.ranges]);
                prop_assert_eq!(ack.range_count(), plan.ranges as u64);
                prop_assert_eq!(ack.smallest(), plan.smallest);
                prop_assert_eq!(ack.largest(), *ranges[0].end());
                prop_assert_eq!(ack.ack_delay(), delay);
                prop_assert_eq!(ack.ecn(), ecn);
                prop_assert_eq!(ack.ranges().len(), plan.ranges);
                if plan.ranges < ranges.len() {
                    let more = plan_ack(ranges[..=plan.ranges].iter().cloned(), delay, ecn.as_ref(), usize::MAX).unwrap();
                    prop_assert!(more.len > capacity, "one more range would have fit");
                }
            }
            Err(e) => {
                prop_assert_eq!(e, AckWriteError::BufferFull);
                prop_assert_eq!(w.len(), 0);
                let one = plan_ack(ranges[..1].iter().cloned(), delay, ecn.as_ref(), usize::MAX).unwrap();
                prop_assert!(one.len > capacity);
            }
        }
    }

    /// Arbitrary bytes: decoding returns frames or an error, never panics, and whatever decodes
    /// re-encodes consistently.
    #[test]
    fn arbitrary_bytes_never_panic(payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let count = decode_all(&payload);
        prop_assert_eq!(fuzz_round_trip(&payload), count);
        for kind in [PacketKind::Initial, PacketKind::ZeroRtt, PacketKind::Handshake, PacketKind::OneRtt] {
            let n = Frames::for_packet(&payload, kind).count();
            prop_assert!(n <= payload.len());
        }
    }

    /// Bytes that start with a known frame type, to get past the type dispatch more often.
    #[test]
    fn typed_garbage_never_panics(
        ty in prop::sample::select(FrameType::ALL.to_vec()),
        body in prop::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..80),
    ) {
        let mut payload = vec![0u8; varint::size(ty.0)];
        varint::encode(ty.0, &mut payload);
        payload.extend_from_slice(&body);
        let first = Frames::new(&payload).next().unwrap();
        if let Err(e) = &first {
            prop_assert_eq!(e.frame_type, Some(ty.0));
            prop_assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        }
        let _ = fuzz_round_trip(&payload);
    }
}

/// A PADDING run of every length around the eight-byte scanning step, alone and followed by
/// a PING, decodes as one run of exactly its length.
#[test]
fn padding_runs_of_every_length_around_the_word_step() {
    for len in 1..=40 {
        let alone = vec![0u8; len];
        let frames: Vec<Frame<'_>> = Frames::new(&alone).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames, [Frame::Padding(Padding { len })], "len {len}");
        let mut then_ping = vec![0u8; len];
        then_ping.push(0x01);
        let frames: Vec<Frame<'_>> = Frames::new(&then_ping).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames, [Frame::Padding(Padding { len }), Frame::Ping(Ping)], "len {len}");
    }
}
