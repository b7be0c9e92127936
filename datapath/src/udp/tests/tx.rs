//! Transmit policy against a scripted kernel: partial sends, errors, GSO fallback.

use super::*;
use crate::TxBuffer;
use std::collections::VecDeque;

/// A scripted `sendmmsg`: each call pops one result; `Ok(k)` "sends" the first k messages
/// (capped at what was offered), whose bytes are recorded as wire datagrams.
struct Kernel {
    script: VecDeque<Result<usize, i32>>,
    /// Every datagram that went out, split at GSO boundaries as the kernel would.
    wire: Vec<Vec<u8>>,
    /// The plans offered on each call.
    offered: Vec<Vec<MsgPlan>>,
}

impl Kernel {
    fn new(script: &[Result<usize, i32>]) -> Self {
        Self { script: script.iter().copied().collect(), wire: Vec::new(), offered: Vec::new() }
    }

    fn call(&mut self, plans: &[MsgPlan], batch: &TxBatch) -> io::Result<usize> {
        self.offered.push(plans.to_vec());
        match self.script.pop_front().expect("kernel script exhausted") {
            Err(errno) => Err(io::Error::from_raw_os_error(errno)),
            Ok(k) => {
                let k = k.min(plans.len());
                for p in &plans[..k] {
                    let data = &batch.items[p.buf].buf[p.offset..p.offset + p.len];
                    match p.segment {
                        Some(s) => {
                            self.wire.extend(data.chunks(usize::from(s)).map(<[u8]>::to_vec))
                        }
                        None => self.wire.push(data.to_vec()),
                    }
                }
                Ok(k)
            }
        }
    }
}

struct Rig {
    st: TxState,
    pool: BufferPool,
    stats: QueueStats,
    caps: Capabilities,
    batch: TxBatch,
}

impl Rig {
    fn new(gso: bool, max_msgs: usize) -> Self {
        Self {
            st: TxState::new(false, gso, 64, max_msgs),
            pool: BufferPool::new(100_000, 64),
            stats: QueueStats::default(),
            caps: Capabilities {
                gso,
                max_gso_segments: if gso { 64 } else { 1 },
                ..Default::default()
            },
            batch: TxBatch::new(),
        }
    }

    /// Pushes a buffer of `len` bytes, byte i = (tag + i) mod 251, split at `seg`.
    fn push(&mut self, tag: u8, len: usize, seg: Option<usize>) {
        let mut b: TxBuffer = self.pool.take_tx().unwrap();
        let data: Vec<u8> = (0..len).map(|i| ((tag as usize + i) % 251) as u8).collect();
        assert!(b.extend_from_slice(&data));
        b.meta = TxMeta::to("127.0.0.1:9".parse().unwrap());
        b.meta.segment_size = seg;
        self.batch.push(b);
    }

    fn send(&mut self, k: &mut Kernel) -> io::Result<usize> {
        let ctx = TxCtx { pool: &mut self.pool, stats: &mut self.stats, caps: &mut self.caps };
        transmit(&mut self.st, &mut self.batch, ctx, |p, b| k.call(p, b))
    }
}

fn pattern(tag: u8, range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| ((tag as usize + i) % 251) as u8).collect()
}

#[test]
fn eagain_keeps_the_rest_in_order() {
    let mut r = Rig::new(false, 32);
    for t in 0..5 {
        r.push(t * 10, 100, None);
    }
    let mut k = Kernel::new(&[Ok(2), Err(libc::EAGAIN)]);
    assert_eq!(r.send(&mut k).unwrap(), 2);
    assert_eq!(r.batch.len(), 3);
    assert_eq!(r.batch.items[0].data(), &pattern(20, 0..100)[..], "third buffer now first");
    assert_eq!(r.pool.outstanding(), 3, "sent buffers returned to the pool");
    let mut k2 = Kernel::new(&[Ok(3)]);
    assert_eq!(r.send(&mut k2).unwrap(), 3);
    assert!(r.batch.is_empty());
    let wire: Vec<Vec<u8>> = k.wire.into_iter().chain(k2.wire).collect();
    let want: Vec<Vec<u8>> = (0..5).map(|t| pattern(t * 10, 0..100)).collect();
    assert_eq!(wire, want, "every datagram once, in order");
    assert_eq!(r.stats.tx_calls, 3);
    assert_eq!(r.stats.tx_datagrams, 5);
    assert_eq!(r.stats.tx_bytes, 500);
}

#[test]
fn partial_send_of_split_train_keeps_unsent_tail() {
    let mut r = Rig::new(false, 32);
    r.push(7, 22, Some(4)); // 5 segments of 4 and a tail of 2
    let mut k = Kernel::new(&[Ok(2), Err(libc::EAGAIN)]);
    assert_eq!(r.send(&mut k).unwrap(), 0, "buffer not done yet");
    assert_eq!(r.batch.items[0].data(), &pattern(7, 8..22)[..]);
    assert_eq!(r.batch.items[0].segment_count(), 4);
    let mut k2 = Kernel::new(&[Ok(4)]);
    assert_eq!(r.send(&mut k2).unwrap(), 1);
    let wire: Vec<Vec<u8>> = k.wire.into_iter().chain(k2.wire).collect();
    let want: Vec<Vec<u8>> = (0..6).map(|s| pattern(7, s * 4..(s * 4 + 4).min(22))).collect();
    assert_eq!(wire, want);
    assert_eq!(r.stats.tx_datagrams, 6);
}

#[test]
fn gso_trains_respect_segment_and_payload_caps() {
    let mut r = Rig::new(true, 32);
    r.push(1, 100 * 600, Some(600)); // 100 segments: 64 + 36
    r.push(2, 54 * 1200, Some(1200)); // fits one send
    r.push(3, 40 * 2000, Some(2000)); // 80000 bytes: 65507 / 2000 = 32 per send
    r.push(4, 500, Some(1200)); // one short segment: no UDP_SEGMENT
    let mut k = Kernel::new(&[Ok(usize::MAX)]);
    assert_eq!(r.send(&mut k).unwrap(), 4);
    let shape: Vec<(usize, usize, Option<u16>)> =
        k.offered[0].iter().map(|p| (p.buf, p.segs, p.segment)).collect();
    assert_eq!(
        shape,
        vec![
            (0, 64, Some(600)),
            (0, 36, Some(600)),
            (1, 54, Some(1200)),
            (2, 32, Some(2000)),
            (2, 8, Some(2000)),
            (3, 1, None),
        ]
    );
    assert!(k.offered[0].iter().all(|p| p.len <= MAX_UDP_PAYLOAD));
    assert_eq!(k.wire.len(), 100 + 54 + 40 + 1);
    assert_eq!(r.stats.tx_datagrams, 195);
    assert_eq!(r.stats.tx_calls, 1);
}

#[test]
fn message_limit_splits_a_buffer_across_calls() {
    let mut r = Rig::new(false, 4);
    r.push(1, 30, Some(10));
    r.push(2, 30, Some(10));
    let mut k = Kernel::new(&[Ok(4), Ok(2)]);
    assert_eq!(r.send(&mut k).unwrap(), 2);
    assert_eq!(k.offered[0].len(), 4, "3 messages of buffer 0, 1 of buffer 1");
    assert_eq!(k.offered[1].len(), 2, "the 2 left of buffer 1");
    let want: Vec<Vec<u8>> = [1u8, 2]
        .iter()
        .flat_map(|&t| (0..3).map(move |s| pattern(t, s * 10..s * 10 + 10)))
        .collect();
    assert_eq!(k.wire, want);
}

#[test]
fn per_datagram_error_drops_only_that_buffer() {
    for errno in [libc::ECONNREFUSED, libc::EMSGSIZE, libc::EHOSTUNREACH, libc::EINVAL, libc::EIO] {
        let mut r = Rig::new(false, 32);
        r.push(1, 10, None);
        r.push(2, 10, None);
        r.push(3, 10, None);
        let mut k = Kernel::new(&[Ok(1), Err(errno), Ok(1)]);
        assert_eq!(r.send(&mut k).unwrap(), 3, "errno {errno}");
        assert_eq!(k.wire, vec![pattern(1, 0..10), pattern(3, 0..10)]);
        assert_eq!(r.stats.tx_errors, 1);
        assert_eq!(r.stats.tx_datagrams, 2);
        assert_eq!(r.pool.outstanding(), 0);
    }
}

#[test]
fn interrupt_is_retried_and_fatal_error_returned() {
    let mut r = Rig::new(false, 32);
    r.push(1, 10, None);
    let mut k = Kernel::new(&[Err(libc::EINTR), Ok(1)]);
    assert_eq!(r.send(&mut k).unwrap(), 1);
    r.push(2, 10, None);
    let mut k = Kernel::new(&[Err(libc::EBADF)]);
    assert_eq!(r.send(&mut k).unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(r.batch.len(), 1, "nothing dropped on a queue error");
    let mut k = Kernel::new(&[Ok(0)]);
    assert_eq!(r.send(&mut k).unwrap(), 0, "a zero return ends the call");
    let mut k = Kernel::new(&[Err(libc::EINTR); MAX_INTERRUPTS]);
    assert_eq!(r.send(&mut k).unwrap(), 0, "EINTR retries are bounded");
}

#[test]
fn gso_failure_resends_split_and_turns_gso_off() {
    let mut r = Rig::new(true, 32);
    r.push(1, 25, Some(10));
    r.push(2, 20, Some(10));
    let mut k = Kernel::new(&[Err(libc::EIO), Ok(3), Ok(2)]);
    assert_eq!(r.send(&mut k).unwrap(), 2);
    assert_eq!(k.offered[0][0].segment, Some(10), "first try is GSO");
    assert_eq!(k.offered[1].len(), 3, "trial: only the failed buffer, one datagram each");
    assert!(k.offered[1].iter().all(|p| p.segment.is_none()));
    assert!(k.offered[2].iter().all(|p| p.segment.is_none()), "GSO stays off");
    let want = vec![
        pattern(1, 0..10),
        pattern(1, 10..20),
        pattern(1, 20..25),
        pattern(2, 0..10),
        pattern(2, 10..20),
    ];
    assert_eq!(k.wire, want, "nothing lost");
    assert_eq!(r.stats.tx_errors, 0);
    assert!(!r.caps.gso);
    assert_eq!(r.caps.max_gso_segments, 1);
    assert!(r.caps.missing.iter().any(|m| m.contains("UDP_SEGMENT") && m.contains("EIO")));
}

#[test]
fn bad_gso_datagram_is_dropped_and_gso_kept() {
    let mut r = Rig::new(true, 32);
    r.push(1, 25, Some(10));
    r.push(2, 20, Some(10));
    let mut k = Kernel::new(&[Err(libc::EINVAL), Err(libc::EINVAL), Ok(1)]);
    assert_eq!(r.send(&mut k).unwrap(), 2);
    assert_eq!(r.stats.tx_errors, 3, "the three datagrams of the bad buffer");
    assert_eq!(k.offered[2][0].segment, Some(10), "GSO still used");
    assert_eq!(k.wire, vec![pattern(2, 0..10), pattern(2, 10..20)]);
    assert!(r.caps.gso && r.caps.missing.is_empty());
}

#[test]
fn gso_trial_ends_with_the_send_call() {
    let mut r = Rig::new(true, 32);
    r.push(1, 25, Some(10));
    let mut k = Kernel::new(&[Err(libc::EIO), Err(libc::EAGAIN)]);
    assert_eq!(r.send(&mut k).unwrap(), 0, "trial interrupted by a full socket");
    assert_eq!(r.batch.len(), 1);
    // The next call starts over with GSO; this time the kernel takes it.
    let mut k = Kernel::new(&[Ok(1)]);
    assert_eq!(r.send(&mut k).unwrap(), 1);
    assert_eq!(k.offered[0][0].segment, Some(10));
    assert!(r.caps.gso && r.caps.missing.is_empty());
    assert_eq!(k.wire.len(), 3);
}

#[test]
fn unsendable_families_are_dropped_without_a_call() {
    let mut r = Rig::new(false, 32);
    r.push(1, 10, None);
    r.batch.items[0].meta.dst = "[::1]:9".parse().unwrap(); // IPv6 on an IPv4 socket
    r.push(2, 10, None);
    r.batch.items[1].meta.src_ip = Some("::1".parse().unwrap()); // v6 source, v4 destination
    r.push(3, 10, None);
    let mut k = Kernel::new(&[Ok(1)]);
    assert_eq!(r.send(&mut k).unwrap(), 3);
    assert_eq!(k.offered.len(), 1);
    assert_eq!(k.wire, vec![pattern(3, 0..10)]);
    assert_eq!(r.stats.tx_errors, 2);
    let v6 = TxMeta {
        src_ip: Some("::ffff:127.0.0.1".parse().unwrap()),
        ..TxMeta::to("[::ffff:127.0.0.1]:9".parse().unwrap())
    };
    assert!(sendable(&v6, true), "mapped source with mapped destination is IPv4");
    assert!(!sendable(&TxMeta::to("[::1]:9".parse().unwrap()), false));
}

#[test]
fn empty_and_unsegmented_buffers_are_one_datagram() {
    let mut r = Rig::new(true, 32);
    r.push(1, 0, None);
    r.push(2, 0, Some(100));
    r.push(3, 300, Some(0));
    let mut k = Kernel::new(&[Ok(3)]);
    assert_eq!(r.send(&mut k).unwrap(), 3);
    assert_eq!(k.wire, vec![vec![], vec![], pattern(3, 0..300)]);
    assert_eq!(r.stats.tx_datagrams, 3);
}
