//! Frame tests: shared strategies and helpers; the tests live in the submodules.

mod errors;
mod roundtrip;
mod rules;
mod sizing;
mod vectors;

use std::ops::RangeInclusive;

use proptest::prelude::*;
use proptest::strategy::Union;

use super::*;
use crate::cid::{ConnectionId, ResetToken};
use crate::coding::{BufferFull, Reader, Writer};
use crate::varint::{self, VarInt};

/// Decodes a hex string (whitespace ignored).
pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Decodes exactly one frame from `bytes`, which it must consume entirely.
pub(super) fn decode_one(bytes: &[u8]) -> Result<Frame<'_>, Error> {
    let mut r = Reader::new(bytes);
    let f = Frame::decode(&mut r)?;
    assert!(r.is_empty(), "{} bytes left after {f:?}", r.remaining());
    Ok(f)
}

/// Encodes `frame` into a buffer of exactly `encoded_len()` bytes.
pub(super) fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0xaa; frame.encoded_len()];
    let mut w = Writer::new(&mut buf);
    frame.encode(&mut w).unwrap();
    assert_eq!(w.len(), frame.encoded_len(), "encoded_len disagrees for {frame:?}");
    buf
}

/// Encodes, checks the length, decodes back and compares; also checks that a buffer one byte
/// short is refused with nothing written.
pub(super) fn assert_round_trip(frame: &Frame<'_>) {
    let bytes = encode(frame);
    let back = decode_one(&bytes).unwrap();
    assert_eq!(back, *frame);
    assert_eq!(back.frame_type(), frame.frame_type());
    if let Some(short) = bytes.len().checked_sub(1) {
        let mut buf = vec![0u8; short];
        let mut w = Writer::new(&mut buf);
        assert_eq!(frame.encode(&mut w), Err(BufferFull), "{frame:?}");
        assert_eq!(w.len(), 0, "partial write for {frame:?}");
    }
}

/// Expects `Err` with `code` and `frame_type`.
#[track_caller]
pub(super) fn assert_err(
    result: Result<impl std::fmt::Debug, Error>,
    code: TransportErrorCode,
    frame_type: Option<u64>,
) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code, code, "{err}");
    assert_eq!(err.frame_type, frame_type, "{err}");
}

use crate::error::{Error, TransportErrorCode};

/// Varints spread over all four encoded sizes.
pub(super) fn vi() -> impl Strategy<Value = VarInt> {
    prop_oneof![0u64..64, 64u64..16_384, 16_384u64..(1 << 30), (1u64 << 30)..=varint::MAX]
        .prop_map(|v| VarInt::new(v).unwrap())
}

/// Bytes that live for the rest of the test run (leaked: a few KiB per run), so strategies can
/// produce borrowed `Frame<'static>` values.
pub(super) fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(|v| &*Vec::leak(v))
}

fn dir() -> impl Strategy<Value = StreamDir> {
    prop_oneof![Just(StreamDir::Bidi), Just(StreamDir::Uni)]
}

fn stream_count() -> impl Strategy<Value = VarInt> {
    prop_oneof![0u64..100, Just(MAX_STREAM_COUNT), 0..=MAX_STREAM_COUNT]
        .prop_map(|v| VarInt::new(v).unwrap())
}

/// Disjoint ACK ranges, largest first.
pub(super) fn ack_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    (vi(), 0u64..2000, prop::collection::vec((0u64..3000, 0u64..3000), 0..40)).prop_map(
        |(largest, first, rest)| {
            let largest = largest.into_inner();
            let mut out = vec![largest.saturating_sub(first)..=largest];
            for (gap, len) in rest {
                let prev = *out.last().unwrap().start();
                let Some(hi) = prev.checked_sub(gap).and_then(|v| v.checked_sub(2)) else { break };
                out.push(hi.saturating_sub(len)..=hi);
            }
            out
        },
    )
}

fn ecn() -> impl Strategy<Value = Option<EcnCounts>> {
    prop::option::of((vi(), vi(), vi()).prop_map(|(ect0, ect1, ce)| EcnCounts { ect0, ect1, ce }))
}

/// An ACK frame built with `write_ack` and decoded back (into leaked memory).
fn ack() -> impl Strategy<Value = Frame<'static>> {
    (ack_ranges(), vi(), ecn()).prop_map(|(ranges, delay, ecn)| {
        let buf = Vec::leak(vec![0u8; 4096]);
        let mut w = Writer::new(buf);
        let plan = write_ack(&mut w, ranges.iter().cloned(), delay, ecn.as_ref()).unwrap();
        assert_eq!(plan.ranges, ranges.len(), "4 KiB holds 40 ranges");
        let written: &'static [u8] = Vec::leak(w.written().to_vec());
        decode_one(written).unwrap()
    })
}

fn stream() -> impl Strategy<Value = Frame<'static>> {
    (vi(), vi(), bytes(80), any::<bool>(), any::<bool>()).prop_map(
        |(stream_id, offset, data, fin, has_length)| {
            let cap = varint::MAX - data.len() as u64;
            let offset = VarInt::new(offset.into_inner().min(cap)).unwrap();
            Frame::Stream(Stream { stream_id, offset, data, fin, has_length })
        },
    )
}

fn new_cid() -> impl Strategy<Value = Frame<'static>> {
    (vi(), any::<u64>(), prop::collection::vec(any::<u8>(), 1..=20), any::<[u8; 16]>()).prop_map(
        |(sequence, r, id, token)| {
            let retire_prior_to = VarInt::new(r % (sequence.into_inner() + 1)).unwrap();
            Frame::NewConnectionId(NewConnectionId {
                sequence,
                retire_prior_to,
                id: ConnectionId::new(&id).unwrap(),
                reset_token: ResetToken(token),
            })
        },
    )
}

fn close() -> impl Strategy<Value = Frame<'static>> {
    (prop::option::of(vi()), vi(), bytes(40)).prop_map(|(ft, error_code, reason)| {
        let kind = match ft {
            Some(frame_type) => CloseKind::Transport { frame_type },
            None => CloseKind::Application,
        };
        Frame::ConnectionClose(ConnectionClose { kind, error_code, reason })
    })
}

/// Any frame this module can encode, with valid field values.
pub(super) fn frame() -> impl Strategy<Value = Frame<'static>> {
    Union::new(vec![
        (1usize..100).prop_map(|len| Frame::Padding(Padding { len })).boxed(),
        Just(Frame::Ping(Ping)).boxed(),
        ack().boxed(),
        (vi(), vi(), vi())
            .prop_map(|(stream_id, error_code, final_size)| {
                Frame::ResetStream(ResetStream { stream_id, error_code, final_size })
            })
            .boxed(),
        (vi(), vi())
            .prop_map(|(stream_id, error_code)| {
                Frame::StopSending(StopSending { stream_id, error_code })
            })
            .boxed(),
        (vi(), bytes(80))
            .prop_map(|(offset, data)| {
                let cap = varint::MAX - data.len() as u64;
                let offset = VarInt::new(offset.into_inner().min(cap)).unwrap();
                Frame::Crypto(Crypto { offset, data })
            })
            .boxed(),
        bytes(60)
            .prop_filter("token not empty", |t| !t.is_empty())
            .prop_map(|token| Frame::NewToken(NewToken { token }))
            .boxed(),
        stream().boxed(),
        vi().prop_map(|max_data| Frame::MaxData(MaxData { max_data })).boxed(),
        (vi(), vi())
            .prop_map(|(stream_id, max_data)| {
                Frame::MaxStreamData(MaxStreamData { stream_id, max_data })
            })
            .boxed(),
        (dir(), stream_count())
            .prop_map(|(dir, max_streams)| Frame::MaxStreams(MaxStreams { dir, max_streams }))
            .boxed(),
        vi().prop_map(|limit| Frame::DataBlocked(DataBlocked { limit })).boxed(),
        (vi(), vi())
            .prop_map(|(stream_id, limit)| {
                Frame::StreamDataBlocked(StreamDataBlocked { stream_id, limit })
            })
            .boxed(),
        (dir(), stream_count())
            .prop_map(|(dir, limit)| Frame::StreamsBlocked(StreamsBlocked { dir, limit }))
            .boxed(),
        new_cid().boxed(),
        vi().prop_map(|sequence| Frame::RetireConnectionId(RetireConnectionId { sequence }))
            .boxed(),
        any::<[u8; 8]>().prop_map(|data| Frame::PathChallenge(PathChallenge { data })).boxed(),
        any::<[u8; 8]>().prop_map(|data| Frame::PathResponse(PathResponse { data })).boxed(),
        close().boxed(),
        Just(Frame::HandshakeDone(HandshakeDone)).boxed(),
        (bytes(80), any::<bool>())
            .prop_map(|(data, has_length)| Frame::Datagram(Datagram { data, has_length }))
            .boxed(),
        Just(Frame::ImmediateAck(ImmediateAck)).boxed(),
        (vi(), vi(), vi(), vi())
            .prop_map(|(sequence, ack_eliciting_threshold, request_max_ack_delay, reordering)| {
                Frame::AckFrequency(AckFrequency {
                    sequence,
                    ack_eliciting_threshold,
                    request_max_ack_delay,
                    reordering_threshold: reordering,
                })
            })
            .boxed(),
    ])
}

/// Whether `frame` runs to the end of the packet (no Length field).
pub(super) fn runs_to_end(frame: &Frame<'_>) -> bool {
    matches!(
        frame,
        Frame::Stream(Stream { has_length: false, .. })
            | Frame::Datagram(Datagram { has_length: false, .. })
    )
}
