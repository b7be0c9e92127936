//! Entry points for fuzz targets: walk a whole payload, and check that what decodes re-encodes.

use super::{Frame, Frames};
use crate::coding::{Reader, Writer};
use crate::error::Error;

/// Decodes every frame of a packet payload, walking every ACK range, and returns the number of
/// frames (a PADDING run counts once). An empty payload is a PROTOCOL_VIOLATION. Never panics.
pub fn decode_all(payload: &[u8]) -> Result<usize, Error> {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
    //# An endpoint MUST treat receipt of a packet containing no frames as a
    //# connection error of type PROTOCOL_VIOLATION.
    if payload.is_empty() {
        return Err(Error::protocol_violation("packet without frames"));
    }
    let mut count = 0usize;
    for frame in Frames::new(payload) {
        if let Frame::Ack(ack) = frame? {
            // Walk the ranges the way loss recovery will.
            let mut acked = 0u64;
            for r in ack.ranges() {
                acked = acked.saturating_add(r.end() - r.start() + 1);
            }
            std::hint::black_box(acked);
        }
        count += 1;
    }
    Ok(count)
}

/// For fuzzing only: decodes `payload` like [`decode_all`] and, for every frame that decodes,
/// checks that it re-encodes to exactly [`Frame::encoded_len`] bytes which decode back to an
/// equal frame, and that ACK ranges are well formed. It panics when one of these internal
/// invariants breaks (a bug here, never a property of the input); malformed input is returned
/// as the decoding error.
pub fn fuzz_round_trip(payload: &[u8]) -> Result<usize, Error> {
    if payload.is_empty() {
        return Err(Error::protocol_violation("packet without frames"));
    }
    let mut buf = vec![0u8; payload.len() + 16];
    let mut count = 0usize;
    for frame in Frames::new(payload) {
        let frame = frame?;
        let len = frame.encoded_len();
        let mut w = Writer::new(&mut buf);
        frame.encode(&mut w).expect("buffer sized from the payload");
        assert_eq!(w.len(), len, "encoded_len disagrees with encode for {frame:?}");
        let written = w.finish();
        let mut r = Reader::new(written);
        let again = Frame::decode(&mut r).expect("re-encoded frame decodes");
        assert!(r.is_empty(), "re-encoded frame not fully consumed: {frame:?}");
        assert_eq!(again, frame, "round trip changed the frame");
        if let Frame::Ack(ack) = frame {
            let mut prev: Option<u64> = None;
            let mut n = 0u64;
            for range in ack.ranges() {
                assert!(range.start() <= range.end());
                if let Some(p) = prev {
                    assert!(*range.end() + 2 <= p, "ranges overlap or touch");
                }
                prev = Some(*range.start());
                n += 1;
            }
            assert_eq!(n, ack.range_count());
            assert_eq!(prev, Some(ack.smallest()));
        }
        count += 1;
    }
    Ok(count)
}
