//! Tests for the receiving part: reassembly against a model, final size rules, resets and reads.

use super::*;
use proptest::prelude::*;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn code(e: Error) -> TransportErrorCode {
    e.code
}

#[test]
fn out_of_order_and_overlap_reassemble() {
    let mut r = RecvPart::new(100, 100);
    assert_eq!(r.on_data(6, b(b"world"), true).unwrap(), 11);
    assert_eq!(r.state(), RecvState::SizeKnown);
    assert!(!r.is_readable());
    let mut buf = [0u8; 32];
    assert_eq!(r.read(&mut buf), Err(ReadError::Blocked));
    assert_eq!(r.on_data(3, b(b"lo wo"), false).unwrap(), 0, "overlap raises nothing");
    assert_eq!(r.on_data(0, b(b"hel"), false).unwrap(), 0);
    assert_eq!(r.state(), RecvState::DataRecvd);
    assert!(r.is_readable());
    let (n, fin) = r.read(&mut buf[..4]).unwrap();
    assert_eq!((&buf[..n], fin), (&b"hell"[..], false));
    // A chunk never spans two held pieces ("hel" arrived in order, the rest was reassembled
    // out of order into one buffer).
    let c = r.read_chunk(3).unwrap();
    assert_eq!((c.offset, &c.data[..], c.fin), (4, &b"o w"[..], false));
    let (n, fin) = r.read(&mut buf).unwrap();
    assert_eq!((&buf[..n], fin), (&b"orld"[..], true));
    assert_eq!(r.state(), RecvState::DataRead);
    assert_eq!(r.read(&mut buf), Ok((0, true)));
    assert_eq!(r.take_released(), 11);
    assert!(r.is_terminal());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-2.2
//= type=test
//# The data at a given offset MUST NOT change if it is sent
//# multiple times; an endpoint MAY treat receipt of different data at
//# the same offset within a stream as a connection error of type
//# PROTOCOL_VIOLATION.
#[test]
fn changed_retransmission_is_protocol_violation() {
    let mut r = RecvPart::new(100, 100);
    r.on_data(10, b(b"abcdef"), false).unwrap();
    r.on_data(8, b(b"xxabc"), false).unwrap();
    let e = r.on_data(12, b(b"cX"), false).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
    // Data already read is not compared (it is no longer held).
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(b"abc"), false).unwrap();
    r.read(&mut [0u8; 3]).unwrap();
    r.on_data(0, b(b"zzzz"), false).unwrap();
    assert_eq!(r.read_chunk(10).unwrap().data, b(b"z"));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
//= type=test
//# If a
//# RESET_STREAM or STREAM frame is received indicating a change in the
//# final size for the stream, an endpoint SHOULD respond with an error
//# of type FINAL_SIZE_ERROR; see Section 11 for details on error
//# handling.
#[test]
fn final_size_errors() {
    let fse = TransportErrorCode::FINAL_SIZE_ERROR;
    // FIN below data already received.
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[0; 20]), false).unwrap();
    assert_eq!(code(r.on_data(0, b(&[0; 10]), true).unwrap_err()), fse);
    // Changing a known final size (larger or smaller), data beyond it.
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[0; 10]), true).unwrap();
    assert_eq!(code(r.on_data(0, b(&[0; 11]), true).unwrap_err()), fse);
    assert_eq!(code(r.on_data(0, b(&[0; 9]), true).unwrap_err()), fse);
    assert_eq!(code(r.on_data(10, b(&[0; 1]), false).unwrap_err()), fse);
    assert_eq!(r.on_data(9, b(&[0; 1]), true).unwrap(), 0, "same final size is fine");
    // RESET_STREAM: different final size, or below what was received.
    assert_eq!(code(r.on_reset(1, 12).unwrap_err()), fse);
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[0; 30]), false).unwrap();
    assert_eq!(code(r.on_reset(1, 29).unwrap_err()), fse);
    r.on_reset(1, 30).unwrap();
    // After the reset the final size still binds.
    assert_eq!(code(r.on_data(30, b(&[0; 1]), false).unwrap_err()), fse);
    assert_eq!(code(r.on_reset(1, 31).unwrap_err()), fse);
    r.on_reset(1, 30).unwrap();
}

#[test]
fn flow_control_error_exactly_at_limit_plus_one() {
    let mut r = RecvPart::new(100, 100);
    r.on_data(99, b(&[1]), false).unwrap();
    assert_eq!(
        code(r.on_data(100, b(&[1]), false).unwrap_err()),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
    let mut r = RecvPart::new(100, 100);
    assert_eq!(code(r.on_reset(0, 101).unwrap_err()), TransportErrorCode::FLOW_CONTROL_ERROR);
    let mut r = RecvPart::new(100, 100);
    let e = r.on_data(crate::varint::MAX, b(&[1]), false).unwrap_err();
    assert_eq!(code(e), TransportErrorCode::FLOW_CONTROL_ERROR, "offset + length beyond 2^62-1");
}

#[test]
fn reset_discards_and_releases_credit() {
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[7; 10]), false).unwrap();
    r.on_data(20, b(&[7; 10]), false).unwrap();
    r.read(&mut [0u8; 4]).unwrap();
    assert_eq!(r.take_released(), 4);
    assert_eq!(r.on_reset(42, 50).unwrap(), 20, "highest 30 -> final 50");
    assert_eq!(r.take_released(), 46, "everything up to the final size is released");
    assert_eq!(r.buffered(), 0);
    assert!(r.is_readable() && r.is_terminal());
    assert_eq!(r.read(&mut [0u8; 4]), Err(ReadError::Reset(42)));
    assert_eq!(r.state(), RecvState::ResetRead);
    assert_eq!(r.on_reset(42, 50).unwrap(), 0, "duplicate");
}

#[test]
fn reset_after_all_data_is_withheld() {
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(b"abc"), true).unwrap();
    assert_eq!(r.on_reset(5, 3).unwrap(), 0);
    assert_eq!(r.state(), RecvState::DataRecvd);
    assert_eq!(r.read_chunk(10).unwrap(), RecvChunk { offset: 0, data: b(b"abc"), fin: true });
}

#[test]
fn stop_discards_and_counts_later_data() {
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[1; 10]), false).unwrap();
    r.stop(9).unwrap();
    assert_eq!(r.stop(9), Err(ClosedStream));
    assert_eq!(r.take_released(), 10);
    assert_eq!(r.poll_stop(), Some(9));
    assert_eq!(r.poll_stop(), None);
    r.on_stop_lost();
    assert_eq!(r.poll_stop(), Some(9));
    assert_eq!(r.on_data(10, b(&[1; 5]), false).unwrap(), 5);
    assert_eq!(r.take_released(), 5, "discarded data still releases connection credit");
    assert_eq!(r.buffered(), 0);
    assert_eq!(
        code(r.on_data(15, b(&[1; 86]), false).unwrap_err()),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
    assert!(!r.is_terminal());
    assert_eq!(r.read(&mut [0u8; 1]), Err(ReadError::Closed));
    r.on_data(15, Bytes::new(), true).unwrap();
    assert!(r.is_terminal(), "stopped with final size known");
    assert!(!r.stop_pending(), "no STOP_SENDING once all data is accounted for");
}

#[test]
fn max_stream_data_only_in_recv() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut r = RecvPart::new(100, 100);
    r.on_data(0, b(&[0; 60]), false).unwrap();
    assert_eq!(r.poll_max_stream_data(now, Duration::ZERO), None);
    r.read(&mut [0u8; 60]).unwrap();
    assert_eq!(r.poll_max_stream_data(now, Duration::ZERO), Some(160));
    r.on_max_stream_data_lost(160);
    r.on_data(60, b(&[0; 1]), true).unwrap();
    assert_eq!(r.poll_max_stream_data(now, Duration::ZERO), None, "not in Size Known");
}

/// One frame of a randomized delivery: a sub-range of the stream, possibly with FIN.
fn deliveries() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>, Vec<usize>)> {
    (1usize..400).prop_flat_map(|len| {
        let data = proptest::collection::vec(any::<u8>(), len);
        let frames = proptest::collection::vec((0..len, 1usize..64), 1..60);
        let reads = proptest::collection::vec(1usize..80, 1..20);
        (data, frames, reads)
    })
}

proptest! {
    /// Random chunking, reordering, duplication and overlap: the bytes read equal the bytes
    /// sent, FIN is reported exactly at the end, and buffering never exceeds the window.
    #[test]
    fn reassembly_matches_model((data, frames, reads) in deliveries(), interleave in any::<u64>()) {
        let len = data.len();
        let window = len as u64;
        let mut r = RecvPart::new(window, window);
        let mut out = Vec::new();
        let mut fin_seen = false;
        let mut step = 0usize;
        // The random frames, then full coverage in order so that everything arrives.
        let cover: Vec<(usize, usize)> = (0..len).step_by(50).map(|s| (s, 50)).collect();
        for (start, n) in frames.iter().copied().chain(cover) {
            let end = (start + n).min(len);
            let fin = end == len;
            r.on_data(start as u64, Bytes::copy_from_slice(&data[start..end]), fin).unwrap();
            prop_assert!(r.buffered() <= window);
            if (interleave >> (step % 64)) & 1 == 1 {
                let mut buf = vec![0u8; reads[step % reads.len()]];
                match r.read(&mut buf) {
                    Ok((k, fin)) => { out.extend_from_slice(&buf[..k]); fin_seen |= fin; }
                    Err(ReadError::Blocked) => {}
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            step += 1;
        }
        while !fin_seen {
            let c = r.read_chunk(reads[step % reads.len()]).unwrap();
            prop_assert_eq!(c.offset as usize, out.len());
            out.extend_from_slice(&c.data);
            fin_seen = c.fin;
            step += 1;
        }
        prop_assert_eq!(&out, &data);
        prop_assert_eq!(r.state(), RecvState::DataRead);
        prop_assert_eq!(r.take_released(), len as u64);
    }
}

/// One step against the byte-level model: a frame (start, length, byte to corrupt), a copying
/// read or a chunk read of at most n bytes.
#[derive(Clone, Debug)]
enum Step {
    Data(usize, usize, Option<usize>),
    Read(usize),
    Chunk(usize),
}

fn steps() -> impl Strategy<Value = (Vec<u8>, Vec<Step>)> {
    (1usize..300).prop_flat_map(|len| {
        let step = prop_oneof![
            6 => (0..len, 1usize..80, proptest::option::weighted(0.05, 0usize..80))
                .prop_map(|(s, n, c)| Step::Data(s, n, c)),
            2 => (1usize..100).prop_map(Step::Read),
            2 => (1usize..100).prop_map(Step::Chunk),
        ];
        (proptest::collection::vec(any::<u8>(), len), proptest::collection::vec(step, 1..80))
    })
}

proptest! {
    /// The in-order queue plus out-of-order map behave exactly like a byte-by-byte model of
    /// reassembly: same bytes read, same readability and buffering, and a changed
    /// retransmission of bytes still held (in order or not) is a PROTOCOL_VIOLATION exactly
    /// when the model holds a different byte.
    #[test]
    fn reassembly_matches_byte_model((data, steps) in steps()) {
        let len = data.len();
        let mut r = RecvPart::new(len as u64, len as u64);
        let mut held: Vec<Option<u8>> = vec![None; len];
        let mut read_offset = 0usize;
        let mut fin_known = false;
        for step in steps {
            match step {
                Step::Data(start, n, corrupt) => {
                    let end = (start + n).min(len);
                    let mut frame = data[start..end].to_vec();
                    if let Some(c) = corrupt.filter(|&c| c < frame.len()) {
                        frame[c] ^= 0x5a;
                    }
                    let fin = end == len;
                    // Once all data is here ("Data Recvd") frames are no longer compared.
                    let all_here = fin_known && held[read_offset..].iter().all(|b| b.is_some());
                    let conflict = !all_here && (start.max(read_offset)..end)
                        .any(|i| held[i].is_some_and(|v| v != frame[i - start]));
                    let res = r.on_data(start as u64, Bytes::from(frame.clone()), fin);
                    if conflict {
                        prop_assert_eq!(res.map_err(code), Err(TransportErrorCode::PROTOCOL_VIOLATION));
                        return Ok(());
                    }
                    prop_assert!(res.is_ok(), "{res:?}");
                    for i in start.max(read_offset)..end {
                        held[i].get_or_insert(frame[i - start]);
                    }
                    fin_known |= fin;
                }
                Step::Read(n) => {
                    let avail = held[read_offset..].iter().take_while(|b| b.is_some()).count();
                    let k = avail.min(n);
                    let mut buf = vec![0u8; n];
                    let res = r.read(&mut buf);
                    let fin = fin_known && read_offset + k == len;
                    if k == 0 && !fin {
                        prop_assert_eq!(res, Err(ReadError::Blocked));
                    } else {
                        prop_assert_eq!(res, Ok((k, fin)));
                        let want: Vec<u8> =
                            held[read_offset..read_offset + k].iter().map(|b| b.unwrap()).collect();
                        prop_assert_eq!(&buf[..k], &want[..]);
                        read_offset += k;
                    }
                }
                Step::Chunk(n) => {
                    let avail = held[read_offset..].iter().take_while(|b| b.is_some()).count();
                    match r.read_chunk(n) {
                        Ok(c) => {
                            let k = c.data.len();
                            prop_assert_eq!(c.offset as usize, read_offset);
                            prop_assert!(k <= n.min(avail));
                            prop_assert!(k > 0 || avail == 0);
                            let want: Vec<u8> =
                                held[read_offset..read_offset + k].iter().map(|b| b.unwrap()).collect();
                            prop_assert_eq!(&c.data[..], &want[..]);
                            read_offset += k;
                            prop_assert_eq!(c.fin, fin_known && read_offset == len);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, ReadError::Blocked);
                            prop_assert!(avail == 0 && !(fin_known && read_offset == len));
                        }
                    }
                }
            }
            let buffered = held[read_offset..].iter().filter(|b| b.is_some()).count();
            prop_assert_eq!(r.buffered(), buffered as u64);
            let readable = held.get(read_offset).is_some_and(|b| b.is_some())
                || (fin_known && read_offset == len && r.state() != RecvState::DataRead);
            prop_assert_eq!(r.is_readable(), readable);
            if r.state() == RecvState::DataRead {
                return Ok(());
            }
        }
    }
}

/// The attack of issue 13: one byte at every other offset of a 1 MiB stream window. The
/// out-of-order bytes cost blocks of the range, not an allocation and a map entry per byte
/// (before: ~112 bytes of memory per byte sent, 56 MB for the window).
#[test]
fn one_byte_fragments_at_every_other_offset_stay_bounded() {
    const WINDOW: u64 = 1 << 20;
    let mut r = RecvPart::new(WINDOW, WINDOW);
    let mut sent = 0u64;
    for off in (1..WINDOW).step_by(2) {
        r.on_data(off, b(&[off as u8]), false).unwrap();
        sent += 1;
    }
    assert_eq!(r.buffered(), sent);
    let held = r.footprint();
    println!("1-byte fragments at every other offset of a 1 MiB window: {sent} bytes sent, {held} bytes held ({:.2} per byte)", held as f64 / sent as f64);
    assert!(held <= 4 << 20, "{held} bytes held for one stream");
    assert!(held <= (WINDOW as usize) * 5 / 4, "{held}: about the window, not 100x the bytes");
    // The gaps filled in order, one byte each: the stream reads back whole, and the small
    // in-order pieces are copied together instead of held one by one.
    for off in (0..WINDOW).step_by(2) {
        r.on_data(off, b(&[off as u8]), false).unwrap();
        assert!(r.footprint() <= 4 << 20);
    }
    assert_eq!(r.buffered(), WINDOW);
    println!("after filling the gaps: {} bytes held for {WINDOW} buffered", r.footprint());
    assert!(r.footprint() <= 3 * WINDOW as usize);
    let mut all = vec![0u8; WINDOW as usize + 1];
    let mut n = 0;
    while let Ok((k, _)) = r.read(&mut all[n..]) {
        if k == 0 {
            break;
        }
        n += k;
    }
    assert_eq!(n as u64, WINDOW);
    assert!(all[..n].iter().enumerate().all(|(i, &x)| x == i as u8));
}

/// In-order 1-byte frames that the application does not read cost their bytes (copied into
/// one growing buffer), not a slice and an allocation each.
#[test]
fn one_byte_in_order_frames_are_copied_together() {
    const WINDOW: u64 = 1 << 20;
    let mut r = RecvPart::new(WINDOW, WINDOW);
    for off in 0..WINDOW {
        r.on_data(off, b(&[off as u8]), false).unwrap();
    }
    let held = r.footprint();
    println!("1 MiB of in-order 1-byte frames unread: {held} bytes held");
    assert!(held <= 3 * WINDOW as usize, "{held}");
    // Large in-order slices beyond the first few are copied too (each slice pins an arena).
    let mut r = RecvPart::new(WINDOW, WINDOW);
    for i in 0..64u64 {
        r.on_data(i * 1000, b(&[i as u8; 1000]), false).unwrap();
    }
    assert!(r.ready.len() <= MAX_READY_SLICES + 1, "{} slices held", r.ready.len());
}
