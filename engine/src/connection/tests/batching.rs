//! Send batching under pacing: a bulk transfer fills GSO trains, the pacing timer does not
//! fire once per datagram, and pacing still bounds bursts and the long-run rate.

use std::time::{Duration, Instant};

use peregrine_datapath::sim::LinkConfig;

use super::app::{dispatch, Receiver, Sender};
use super::pair::{Pair, PairConfig};
use super::transfer::run_until_done;
use crate::congestion::{Pacer, PACING_BURST_PACKETS, PACING_GAIN};
use crate::streams::Dir;

const STREAMS: usize = 20;
const PER_STREAM: u64 = 256 * 1024;

fn clean(gso: usize, delay: Duration) -> PairConfig {
    // An Ethernet MTU: the trains and fill checks are about 1472-byte datagrams.
    let link = LinkConfig { mtu: Some(1500), ..LinkConfig::with_delay(delay) };
    PairConfig { up: link.clone(), down: link, gso_segments: gso, ..PairConfig::default() }
}

/// The interop harness's bulk case on a clean path: GSO trains are (nearly) full and the
/// sender is woken far less than once per datagram.
#[test]
fn bulk_transfer_fills_gso_trains() {
    let o = run_until_done(
        clean(10, Duration::from_millis(10)),
        (STREAMS, PER_STREAM),
        (0, 0),
        2_000_000,
    );
    assert!(
        o.server_rx.complete(STREAMS, PER_STREAM),
        "transfer did not finish: {} bytes read, {} steps",
        o.server_rx.bytes,
        o.pair.steps
    );
    let (datagrams, transmits) = (o.pair.datagrams.0, o.pair.transmits.0);
    let wakeups = o.pair.wakeups.0;
    let per_transmit = datagrams as f64 / transmits.max(1) as f64;
    let wakeups_per_datagram = wakeups as f64 / datagrams.max(1) as f64;
    println!(
        "client: {datagrams} datagrams in {transmits} transmits ({per_transmit:.2} per \
         transmit), {wakeups} timer wakeups ({wakeups_per_datagram:.3} per datagram)"
    );
    assert!(datagrams >= STREAMS as u64 * PER_STREAM / 1500, "{datagrams} datagrams");
    assert!(per_transmit >= 8.0, "{per_transmit:.2} datagrams per transmit");
    assert!(wakeups_per_datagram < 0.2, "{wakeups_per_datagram:.3} wakeups per datagram");
}

/// Paced sending over a high-BDP path (100 ms RTT): no instant sends more than the burst
/// (the pacer's bucket: the initial window, or 2 ms of the window once that is more), and
/// over every interval the sender stays within burst + 1.25 · cwnd / srtt · interval.
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
//= type=test
//# Senders SHOULD limit bursts to the initial congestion window; see
//# Section 7.2.
#[test]
fn pacing_bounds_bursts_and_rate() {
    let mut pair = Pair::new(clean(64, Duration::from_millis(50)));
    assert!(pair.handshake());
    let mds = pair.client.max_datagram_size() as u64;
    let mut tx = Sender::new(Dir::Bi, 4, 2 << 20, 16 * 1024);
    let mut rx = Receiver::default();
    // (time, datagrams sent at that instant, pacing rate bound in bytes per second then,
    // bucket size bound in bytes then)
    let mut sends: Vec<(Instant, u64, f64, f64)> = Vec::new();
    let pacer = Pacer::new(mds as u16);
    let mut done = false;
    for _ in 0..2_000_000 {
        let now = pair.now();
        let before = pair.datagrams.0;
        let more = pair.step();
        let n = pair.datagrams.0 - before;
        if n > 0 {
            let st = pair.client.stats();
            // The pacer uses the smoothed RTT; min RTT bounds it from below.
            let rtt = st.min_rtt.min(st.smoothed_rtt);
            let bucket = pacer.burst_bytes(st.cwnd, rtt) as f64;
            let rtt = rtt.as_secs_f64().max(1e-6);
            let rate = st.cwnd as f64 * PACING_GAIN.0 as f64 / PACING_GAIN.1 as f64 / rtt;
            sends.push((now, n, rate, bucket));
        }
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| tx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| rx.on_event(e));
        tx.pump(&mut pair.client);
        rx.pump(pair.server());
        if rx.complete(4, 2 << 20) && tx.all_acked() {
            done = true;
            break;
        }
        if !more {
            break;
        }
    }
    assert!(done, "transfer did not finish");
    let st = pair.client.stats();
    assert_eq!(st.pto_count, 0, "a clean path needs no probes (they are not paced)");
    // Bursts: no instant carries more than the bucket (+1 for an ACK-only datagram).
    for s in &sends {
        assert!(s.1 as f64 * mds as f64 <= s.3 + mds as f64, "burst of {} datagrams", s.1);
    }
    let max_burst = sends.iter().map(|s| s.1).max().unwrap_or(0);
    assert!(max_burst >= 8, "trains are filled: largest burst {max_burst}");
    println!("largest burst {max_burst} datagrams (initial window {PACING_BURST_PACKETS})");
    // Rate: for every interval [i, j], bytes ≤ burst + rate_max · (t_j − t_i), with the
    // highest rate and bucket the window and RTT allowed over the interval (windows only
    // grow here).
    let mut checked = 0u64;
    for i in 0..sends.len() {
        let mut bytes = 0f64;
        let mut rate = 0f64;
        let mut burst = 0f64;
        for s in &sends[i..] {
            bytes += s.1 as f64 * mds as f64;
            rate = rate.max(s.2);
            burst = burst.max(s.3 + mds as f64);
            let dt = (s.0 - sends[i].0).as_secs_f64();
            assert!(
                bytes <= burst + rate * dt * 1.01 + 1.0,
                "{bytes} bytes in {dt:.6} s at most {rate:.0} B/s"
            );
            checked += 1;
            if checked > 20_000_000 {
                break;
            }
        }
    }
    // Long run: the whole transfer took at least (bytes − burst) / highest rate.
    let total: u64 = sends.iter().map(|s| s.1).sum();
    let span = (sends.last().unwrap().0 - sends[0].0).as_secs_f64();
    let peak = sends.iter().map(|s| s.2).fold(0f64, f64::max);
    let burst = sends.iter().map(|s| s.3).fold(0f64, f64::max) + mds as f64;
    assert!((total * mds) as f64 - burst <= peak * span * 1.01, "{total} datagrams in {span} s");
}

/// With pacing off (`TransportConfig::with_pacing(false)`) the same path sends the window in
/// bursts larger than the pacer's bucket: the switch really bypasses the pacer.
#[test]
fn pacing_off_sends_bursts_beyond_the_bucket() {
    let mut cfg = clean(64, Duration::from_millis(50));
    cfg.client = cfg.client.clone().with_pacing(false);
    let mut pair = Pair::new(cfg);
    assert!(pair.handshake());
    let mut tx = Sender::new(Dir::Bi, 4, 2 << 20, 16 * 1024);
    let mut rx = Receiver::default();
    let mut max_burst = 0;
    let mut done = false;
    for _ in 0..2_000_000 {
        let before = pair.datagrams.0;
        let more = pair.step();
        max_burst = max_burst.max(pair.datagrams.0 - before);
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| tx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| rx.on_event(e));
        tx.pump(&mut pair.client);
        rx.pump(pair.server());
        if rx.complete(4, 2 << 20) && tx.all_acked() {
            done = true;
            break;
        }
        if !more {
            break;
        }
    }
    assert!(done, "transfer did not finish");
    assert!(max_burst > PACING_BURST_PACKETS + 1, "largest burst {max_burst} datagrams");
}

/// Full packets carry data up to the AEAD tag: the STREAM frame header is sized for its
/// stream instead of a worst-case 25 bytes, and no trailer is kept for the header-protection
/// sample (the frame covers it), so a bulk sender's datagrams hold within a few bytes of
/// `max_datagram_size` - short header - tag - STREAM header of data, with no padding.
#[test]
fn full_packets_carry_data_up_to_the_tag() {
    let o = run_until_done(clean(10, Duration::from_millis(10)), (1, 8 << 20), (0, 0), 2_000_000);
    assert!(o.server_rx.complete(1, 8 << 20), "transfer did not finish");
    let st = o.pair.client.stats();
    let mds = o.pair.client.max_datagram_size() as u64;
    // Short header: 1 + 8-byte CID + packet number (2 to 4 bytes); tag 16; STREAM header:
    // type, ID, 4-byte offset, 2-byte length.
    let ideal = mds - (1 + 8 + 4) - 16 - (1 + 1 + 4 + 2);
    let per_datagram = st.stream_bytes_sent as f64 / st.datagrams_sent as f64;
    println!("mds {mds}: {per_datagram:.1} stream bytes per datagram (ideal {ideal})");
    // The handshake, PMTU probes and the last packet are not full: allow 1% of slack.
    assert!(per_datagram >= ideal as f64 * 0.99, "{per_datagram:.1} < 0.99 * {ideal}");
}
