//! Tests for the sending part: transmission, retransmission, FIN, reset and exactly-once completions.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn drain(s: &mut SendPart) -> Vec<Completion> {
    std::iter::from_fn(|| s.poll_completion()).collect()
}

#[test]
fn send_ack_delivers_in_any_order() {
    let mut s = SendPart::new(1000, 1000);
    s.write(WriteId(1), b(b"hello"), false).unwrap();
    s.write(WriteId(2), b(b"world"), true).unwrap();
    assert_eq!(s.state(), SendState::Ready);
    let (c1, n1) = s.poll_transmit(5, 100).unwrap();
    assert_eq!((c1.offset, &c1.data[..], c1.fin, n1), (0, &b"hello"[..], false, 5));
    assert_eq!(s.state(), SendState::Send);
    let (c2, n2) = s.poll_transmit(100, 100).unwrap();
    assert_eq!((c2.offset, &c2.data[..], c2.fin, n2), (5, &b"world"[..], true, 5));
    assert_eq!(s.state(), SendState::DataSent);
    assert!(s.poll_transmit(100, 100).is_none());
    // Ack the second (with FIN) first: write 2 is delivered, write 1 is not yet.
    assert!(!s.on_ack(5, 5, true));
    assert_eq!(
        drain(&mut s),
        vec![Completion { write: WriteId(2), outcome: WriteOutcome::Delivered }]
    );
    assert!(s.on_ack(0, 5, false), "all data and FIN acknowledged");
    assert_eq!(
        drain(&mut s),
        vec![Completion { write: WriteId(1), outcome: WriteOutcome::Delivered }]
    );
    assert_eq!(s.state(), SendState::DataRecvd);
    assert!(s.is_terminal());
    assert_eq!(s.write(WriteId(3), b(b"x"), false), Err(WriteError::Finished));
}

#[test]
fn small_writes_share_a_frame() {
    let mut s = SendPart::new(1000, 1000);
    for (i, w) in [&b"ab"[..], b"cde", b"f"].into_iter().enumerate() {
        s.write(WriteId(i as u64), Bytes::from_static(w), i == 2).unwrap();
    }
    let (c, n) = s.poll_transmit(4, 1000).unwrap();
    assert_eq!((c.offset, &c.data[..], c.fin, n), (0, &b"abcd"[..], false, 4));
    let (c2, _) = s.poll_transmit(100, 1000).unwrap();
    assert_eq!((c2.offset, &c2.data[..], c2.fin), (4, &b"ef"[..], true));
    s.on_lost(0, 4, false);
    let (r, _) = s.poll_transmit(100, 1000).unwrap();
    assert_eq!((r.offset, &r.data[..], r.fin), (0, &b"abcd"[..], false), "retransmits gather too");
    s.on_ack(0, 4, false);
    let ids: Vec<_> = drain(&mut s).into_iter().map(|c| c.write.0).collect();
    assert_eq!(ids, vec![0], "write 1 ('cde') is only partly acknowledged");
    assert!(s.on_ack(4, 2, true));
    assert_eq!(drain(&mut s).len(), 2);
}

#[test]
fn lost_ranges_are_retransmitted_and_acked_parts_skipped() {
    let mut s = SendPart::new(1000, 1000);
    s.write(WriteId(1), Bytes::from(vec![7u8; 100]), false).unwrap();
    let (c, _) = s.poll_transmit(100, 1000).unwrap();
    assert_eq!(c.data.len(), 100);
    s.on_ack(20, 30, false); // 20..50 acked by another copy
    s.on_lost(0, 100, false);
    let (r1, n) = s.poll_transmit(1000, 0).unwrap();
    assert_eq!((r1.offset, r1.data.len(), n), (0, 20, 0), "retransmits need no new credit");
    let (r2, _) = s.poll_transmit(10, 0).unwrap();
    assert_eq!((r2.offset, r2.data.len()), (50, 10));
    let (r3, _) = s.poll_transmit(1000, 0).unwrap();
    assert_eq!((r3.offset, r3.data.len()), (60, 40));
    assert!(s.poll_transmit(1000, 1000).is_none());
    s.on_ack(0, 100, false);
    assert_eq!(drain(&mut s).len(), 1);
    // The FIN alone: lost, then resent as a FIN-only frame.
    s.write(WriteId(2), Bytes::new(), true).unwrap();
    let (f, _) = s.poll_transmit(0, 0).unwrap();
    assert_eq!((f.offset, f.data.len(), f.fin), (100, 0, true));
    s.on_lost(100, 0, true);
    let (f2, _) = s.poll_transmit(0, 0).unwrap();
    assert!(f2.fin);
    assert!(s.on_ack(100, 0, true));
    assert_eq!(
        drain(&mut s),
        vec![Completion { write: WriteId(2), outcome: WriteOutcome::Delivered }]
    );
}

#[test]
fn flow_control_limits_new_data_and_signals_blocked_once() {
    let mut s = SendPart::new(4, 1000);
    s.write(WriteId(1), b(b"abcdefgh"), false).unwrap();
    let (c, n) = s.poll_transmit(100, 100).unwrap();
    assert_eq!((c.data.len(), n), (4, 4));
    assert!(!s.wants_send(100));
    assert!(s.poll_transmit(100, 100).is_none());
    assert_eq!(s.flow_mut().poll_blocked(), Some(4));
    s.note_blocked();
    assert_eq!(s.flow_mut().poll_blocked(), None);
    assert!(s.flow_mut().on_max(6));
    assert!(s.wants_send(1) && !s.wants_send(0));
    assert!(s.blocked_by_connection());
    let (c, n) = s.poll_transmit(100, 1).unwrap();
    assert_eq!((c.offset, n), (4, 1), "connection credit bounds new data");
}

#[test]
fn send_buffer_limit_blocks_then_signals_writable() {
    let mut s = SendPart::new(1000, 10);
    s.write(WriteId(1), Bytes::from(vec![0; 30]), false).unwrap(); // empty buffer: accepted
    assert_eq!(s.write(WriteId(2), b(b"x"), false), Err(WriteError::Blocked));
    assert!(!s.take_writable());
    s.poll_transmit(100, 100).unwrap();
    s.on_ack(0, 30, false);
    assert!(s.take_writable());
    assert!(!s.take_writable());
    s.write(WriteId(2), b(b"x"), false).unwrap();
    assert_eq!(s.write(WriteId(3), Bytes::new(), false), Err(WriteError::Empty));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
//= type=test
//# An endpoint that receives a STOP_SENDING frame
//# MUST send a RESET_STREAM frame if the stream is in the "Ready" or
//# "Send" state.
#[test]
fn stop_sending_resets_with_peer_code_and_final_size() {
    let mut s = SendPart::new(1000, 1000);
    s.write(WriteId(1), b(b"0123456789"), false).unwrap();
    s.poll_transmit(6, 100).unwrap();
    assert!(s.on_stop_sending(77));
    assert_eq!(s.state(), SendState::ResetSent);
    assert_eq!(s.poll_reset(), Some((77, 6)), "final size = credit consumed");
    assert_eq!(s.poll_reset(), None);
    assert_eq!(
        drain(&mut s),
        vec![Completion {
            write: WriteId(1),
            outcome: WriteOutcome::Cancelled(CancelReason::StopSending(77))
        }]
    );
    assert!(s.poll_transmit(100, 100).is_none(), "no STREAM after RESET_STREAM");
    s.on_ack(0, 6, false);
    assert!(drain(&mut s).is_empty(), "no second completion");
    s.on_reset_lost();
    assert_eq!(s.poll_reset(), Some((77, 6)));
    s.on_reset_acked();
    assert_eq!(s.state(), SendState::ResetRecvd);
    assert!(!s.on_stop_sending(1), "terminal: nothing to do");
    assert_eq!(s.write(WriteId(9), b(b"x"), false), Err(WriteError::Stopped(77)));
    // Ready state too (nothing sent): final size 0.
    let mut r = SendPart::new(10, 10);
    assert!(r.on_stop_sending(5));
    assert_eq!(r.poll_reset(), Some((5, 0)));
}

#[test]
fn app_reset_and_cancel_all() {
    let mut s = SendPart::new(1000, 1000);
    s.write(WriteId(1), b(b"ab"), false).unwrap();
    s.write(WriteId(2), b(b"cd"), false).unwrap();
    s.poll_transmit(100, 100).unwrap();
    s.on_ack(0, 2, false);
    s.reset(9).unwrap();
    let got = drain(&mut s);
    assert_eq!(got[0], Completion { write: WriteId(1), outcome: WriteOutcome::Delivered });
    assert_eq!(
        got[1],
        Completion { write: WriteId(2), outcome: WriteOutcome::Cancelled(CancelReason::Reset(9)) }
    );
    assert_eq!(s.reset(9), Err(ClosedStream));
    assert_eq!(s.write(WriteId(3), b(b"x"), false), Err(WriteError::Reset(9)));

    let mut t = SendPart::new(1000, 1000);
    t.write(WriteId(4), b(b"ab"), true).unwrap();
    t.cancel_all(CancelReason::IdleTimeout);
    t.cancel_all(CancelReason::EndpointDropped);
    assert_eq!(
        drain(&mut t),
        vec![Completion {
            write: WriteId(4),
            outcome: WriteOutcome::Cancelled(CancelReason::IdleTimeout)
        }]
    );
    assert!(t.is_terminal() && t.poll_transmit(100, 100).is_none());
    assert_eq!(t.write(WriteId(5), b(b"x"), false), Err(WriteError::Closed));
}

#[derive(Clone, Debug)]
enum Op {
    Write(u8, bool),
    Transmit(u8),
    Ack(u8),
    Lose(u8),
    Reset,
    StopSending,
    ResetAck,
    CancelAll,
    MaxData(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, proptest::bool::weighted(0.1)).prop_map(|(n, f)| Op::Write(n, f)),
        6 => any::<u8>().prop_map(Op::Transmit),
        5 => any::<u8>().prop_map(Op::Ack),
        3 => any::<u8>().prop_map(Op::Lose),
        1 => Just(Op::Reset),
        1 => Just(Op::StopSending),
        1 => Just(Op::ResetAck),
        1 => Just(Op::CancelAll),
        2 => any::<u8>().prop_map(Op::MaxData),
    ]
}

type Writes = HashMap<WriteId, (u64, u64, bool)>;

/// Drains completions, counting them per write and checking `Delivered` against the model.
fn check(
    s: &mut SendPart,
    writes: &Writes,
    counts: &mut HashMap<WriteId, u32>,
    acked: &[bool],
    fin_acked: bool,
) -> Result<(), TestCaseError> {
    while let Some(c) = s.poll_completion() {
        let n = counts.entry(c.write).or_default();
        *n += 1;
        prop_assert!(*n == 1, "write {:?} completed twice", c.write);
        let (start, end, fin) = writes[&c.write];
        if c.outcome == WriteOutcome::Delivered {
            prop_assert!((start..end).all(|i| acked[i as usize]), "delivered before acked");
            prop_assert!(!fin || fin_acked);
        }
    }
    Ok(())
}

proptest! {
    /// DESIGN.md invariant 2: every accepted write completes exactly once, and `Delivered`
    /// only when the model says all of its bytes (and its FIN) were acknowledged.
    #[test]
    fn every_accepted_write_completes_exactly_once(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = SendPart::new(64, 80);
        let mut next = 0u64;
        let mut writes: Writes = HashMap::new();
        let mut in_flight: Vec<(u64, u64, bool)> = Vec::new();
        let mut acked = vec![false; 4096];
        let mut fin_acked = false;
        let mut counts: HashMap<WriteId, u32> = HashMap::new();
        let mut offset = 0u64;
        for o in ops {
            match o {
                Op::Write(n, fin) => {
                    let id = WriteId(next);
                    next += 1;
                    let data = Bytes::from((0..n).collect::<Vec<u8>>());
                    if s.write(id, data, fin).is_ok() {
                        writes.insert(id, (offset, offset + n as u64, fin));
                        offset += n as u64;
                    }
                }
                Op::Transmit(n) => {
                    if let Some((c, _)) = s.poll_transmit(n as usize % 50, 1000) {
                        in_flight.push((c.offset, c.data.len() as u64, c.fin));
                    }
                }
                Op::Ack(i) | Op::Lose(i) if !in_flight.is_empty() => {
                    let (off, len, fin) = in_flight.swap_remove(i as usize % in_flight.len());
                    if matches!(o, Op::Ack(_)) {
                        if s.state() != SendState::ResetSent && s.state() != SendState::ResetRecvd {
                            for b in off..off + len { acked[b as usize] = true; }
                            fin_acked |= fin;
                        }
                        s.on_ack(off, len, fin);
                    } else {
                        s.on_lost(off, len, fin);
                    }
                }
                Op::Ack(_) | Op::Lose(_) => {}
                Op::Reset => { let _ = s.reset(3); }
                Op::StopSending => { s.on_stop_sending(4); }
                Op::ResetAck => { s.poll_reset(); s.on_reset_acked(); }
                Op::CancelAll => s.cancel_all(CancelReason::ConnectionClosed),
                Op::MaxData(m) => { let max = s.flow().max() + m as u64; s.flow_mut().on_max(max); }
            }
            check(&mut s, &writes, &mut counts, &acked, fin_acked)?;
        }
        s.cancel_all(CancelReason::EndpointDropped);
        check(&mut s, &writes, &mut counts, &acked, fin_acked)?;
        for id in writes.keys() {
            prop_assert_eq!(counts.get(id).copied().unwrap_or(0), 1, "write {:?}", id);
        }
        prop_assert_eq!(counts.len(), writes.len());
    }

    /// Whatever the losses, acking every transmitted frame eventually delivers every byte:
    /// retransmission never drops or invents data.
    #[test]
    fn retransmission_reconstructs_stream(
        lens in proptest::collection::vec(1usize..30, 1..8),
        frame_sizes in proptest::collection::vec(1usize..20, 1..40),
        loss in proptest::collection::vec(any::<bool>(), 1..40),
    ) {
        let mut s = SendPart::new(u64::MAX >> 2, 1 << 20);
        let mut expected = Vec::new();
        for (i, n) in lens.iter().enumerate() {
            let data: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
            expected.extend_from_slice(&data);
            s.write(WriteId(i as u64), Bytes::from(data), i + 1 == lens.len()).unwrap();
        }
        let mut got = vec![None; expected.len()];
        let mut fin_seen = false;
        for round in 0..10_000usize {
            let size = frame_sizes[round % frame_sizes.len()];
            let Some((c, _)) = s.poll_transmit(size, u64::MAX) else { break };
            let lost = loss[round % loss.len()] && round < 200;
            if lost {
                s.on_lost(c.offset, c.data.len() as u64, c.fin);
            } else {
                for (k, byte) in c.data.iter().enumerate() {
                    got[c.offset as usize + k] = Some(*byte);
                }
                fin_seen |= c.fin;
                s.on_ack(c.offset, c.data.len() as u64, c.fin);
            }
        }
        prop_assert!(fin_seen);
        prop_assert_eq!(got.into_iter().map(|b| b.unwrap()).collect::<Vec<_>>(), expected);
        prop_assert_eq!(s.state(), SendState::DataRecvd);
        prop_assert_eq!(std::iter::from_fn(|| s.poll_completion()).count(), lens.len());
    }
}
