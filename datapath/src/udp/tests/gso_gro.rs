//! Segmentation (GSO) and coalescing (GRO) over 127.0.0.1: exact datagram boundaries and bytes.

use std::os::fd::AsFd;
use std::time::Duration;

use super::*;
use crate::udp::socket::set_int;

const T: Duration = Duration::from_secs(2);

#[test]
fn plain_batch_round_trip() {
    let mut rx = open(&v4().with_gro(false));
    let mut tx = open(&v4().with_gso(false));
    let dst = rx.local_addr();
    let outs: Vec<Out> = (0..50).map(|i| Out::new(dst, pattern(i, 1 + i as usize * 29))).collect();
    assert_eq!(send_all(&mut tx, &outs), vec![50]);
    let got = recv_n(&mut rx, 50, T);
    assert_eq!(flatten(&got), expected(&outs), "every datagram, in order, byte for byte");
    for d in &got {
        assert_eq!(d.meta.src, tx.local_addr());
        assert_eq!(d.meta.segment_size, d.data.len());
    }
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_calls, s.tx_errors), (50, 2, 0), "32 + 18 per sendmmsg");
    let r = rx.stats();
    assert_eq!(r.rx_datagrams, 50);
    assert_eq!(r.rx_bytes, outs.iter().map(|o| o.data.len() as u64).sum::<u64>());
}

/// 10 segments of 1200 bytes and a 500-byte tail.
fn train(dst: SocketAddr, tag: u32) -> Out {
    Out::new(dst, pattern(tag, 10 * 1200 + 500)).gso(1200)
}

#[test]
fn gso_train_without_gro_arrives_as_exact_datagrams() {
    let mut rx = open(&v4().with_gro(false));
    let mut tx = open(&v4());
    require!(tx, gso);
    let outs = [train(rx.local_addr(), 1)];
    assert_eq!(send_all(&mut tx, &outs), vec![1]);
    let got = recv_n(&mut rx, 11, T);
    assert_eq!(got.len(), 11, "one buffer per datagram without GRO");
    let sizes: Vec<usize> = got.iter().map(|d| d.data.len()).collect();
    assert_eq!(sizes, [vec![1200; 10], vec![500]].concat());
    assert_eq!(flatten(&got), expected(&outs));
    let s = tx.stats();
    assert_eq!((s.tx_calls, s.tx_datagrams, s.tx_bytes), (1, 11, 12_500), "one syscall");
}

#[test]
fn gso_train_with_gro_is_coalesced_and_splits_exactly() {
    let mut rx = open(&v4());
    let mut tx = open(&v4());
    require!(tx, gso);
    require!(rx, gro);
    let outs = [train(rx.local_addr(), 2), train(rx.local_addr(), 3)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 22, T);
    assert_eq!(flatten(&got), expected(&outs), "same datagrams, coalesced or not");
    for d in got.iter().filter(|d| d.data.len() > 1200) {
        assert_eq!(d.meta.segment_size, 1200, "GRO reports the segment size");
    }
    // A GSO train over loopback reaches a GRO socket as one buffer.
    assert_eq!(got.len(), 2, "each train arrives coalesced: {:?}", lens(&got));
    assert_eq!(got[0].data.len(), 12_500);
    assert_eq!(rx.stats().rx_datagrams, 22);
}

fn lens(v: &[In]) -> Vec<(usize, usize)> {
    v.iter().map(|d| (d.data.len(), d.meta.segment_size)).collect()
}

#[test]
fn gro_receiver_keeps_plain_datagrams_apart() {
    let mut rx = open(&v4());
    require!(rx, gro);
    let mut tx = open(&v4().with_gso(false));
    let outs: Vec<Out> = (0..8).map(|i| Out::new(rx.local_addr(), pattern(i, 1200))).collect();
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 8, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert!(got.iter().all(|d| d.meta.segment_size == d.data.len()));
}

#[test]
fn long_train_is_split_at_the_segment_limit() {
    let mut rx = open(&v4().with_gro(false));
    let mut tx = open(&v4());
    require!(tx, gso);
    let outs = [Out::new(rx.local_addr(), pattern(4, 100 * 600)).gso(600)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 100, T);
    assert_eq!(flatten(&got), expected(&outs));
    let s = tx.stats();
    assert_eq!((s.tx_calls, s.tx_datagrams, s.tx_errors), (1, 100, 0), "64 + 36 in one call");
}

#[test]
fn queue_without_gso_splits_trains_itself() {
    let mut rx = open(&v4().with_gro(false));
    let mut tx = open(&v4().with_gso(false).with_max_datagram_size(20_000).unwrap());
    assert!(!tx.capabilities().gso && tx.capabilities().missing.is_empty(), "not requested");
    assert_eq!(tx.capabilities().max_gso_segments, 1);
    assert_eq!(tx.max_tx_buffer(), 20_000);
    let outs = [train(rx.local_addr(), 5)];
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut rx, 11, T)), expected(&outs));
    assert_eq!((tx.stats().tx_calls, tx.stats().tx_datagrams), (1, 11));
}

#[test]
fn gso_failing_at_runtime_falls_back_without_loss() {
    let mut rx = open(&v4().with_gro(false));
    let mut tx = open(&v4());
    require!(tx, gso);
    // With UDP checksums off the kernel refuses GSO sends (EINVAL) but sends plain datagrams:
    // the same situation as a device that cannot segment.
    set_int(tx.as_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
    let outs = [train(rx.local_addr(), 6), train(rx.local_addr(), 7)];
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut rx, 22, T)), expected(&outs), "no datagram lost");
    let caps = tx.capabilities();
    assert!(!caps.gso, "GSO turned off");
    assert_eq!(caps.max_gso_segments, 1);
    assert!(caps.missing.iter().any(|m| m.contains("UDP_SEGMENT")), "{:?}", caps.missing);
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_errors), (22, 0));
}
