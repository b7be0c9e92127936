//! BBR on the simulated network, against what the protocol must do: find the bottleneck rate
//! within a few round trips, keep the bottleneck queue short once Startup is over, and move
//! 5 MB through the lossy relay of issue 18 (3% loss in bursts of up to 3 each way, 10 ms one
//! way, 100 Mbit/s, a 200-datagram queue) in a fraction of the time loss-based CUBIC needs.
//! All times are virtual (deterministic per seed), never wall-clock.

use std::time::Duration;

use peregrine_datapath::sim::{wire_len, LinkConfig};

use super::pair::{Pair, PairConfig};
use super::transfer::{check, run_until_done};
use crate::congestion::Algorithm;
use crate::connection::TransportConfig;

/// The relay's bottleneck rate, in bits per second of wire bytes.
const RATE: u64 = 100_000_000;
/// One-way delay.
const DELAY: Duration = Duration::from_millis(10);
/// Bottleneck queue in datagrams.
const QUEUE: usize = 200;
/// UDP payload of a full datagram on the 1500-byte path.
const PAYLOAD: usize = 1472;

/// The bottleneck rate in UDP payload bytes per second (what a sender's delivery rate
/// measures): the wire rate less the IP and UDP headers.
fn payload_rate() -> f64 {
    RATE as f64 / 8.0 * PAYLOAD as f64 / wire_len(PAYLOAD, false) as f64
}

/// The relay each way with `loss` (bursts of up to 3), on a 1500-byte path.
fn relay(loss: f64) -> LinkConfig {
    LinkConfig { mtu: Some(1500), ..LinkConfig::relay(DELAY, RATE, QUEUE, loss, 3) }
}

fn pair_config(alg: Algorithm, loss: f64, seed: u64) -> PairConfig {
    PairConfig {
        seed,
        up: relay(loss),
        down: relay(loss),
        client: TransportConfig::default().with_rng_seed(11).with_congestion(alg),
        server: TransportConfig::default().with_rng_seed(22).with_congestion(alg),
        ..PairConfig::default()
    }
}

/// The server sends `bytes` to the client on one stream through the relay with `loss`;
/// returns the virtual time from the client's first Initial to the last byte read and
/// acknowledged, and the server's statistics.
fn download(alg: Algorithm, loss: f64, bytes: u64, seed: u64) -> (Duration, Pair) {
    let o = run_until_done(pair_config(alg, loss, seed), (0, 0), (1, bytes), 3_000_000);
    check(&o, (0, 0), (1, bytes));
    let t = o.pair.net.elapsed();
    (t, o.pair)
}

/// A server that has unlimited data for the client: starts a 50 MB download and returns the
/// pair once connected (the sender is the server).
fn bulk_pair(alg: Algorithm) -> (Pair, super::app::Sender) {
    let mut pair = Pair::new(pair_config(alg, 0.0, 31));
    assert!(pair.handshake());
    let sender = super::app::Sender::new(crate::streams::Dir::Uni, 1, 50_000_000, 64 * 1024);
    (pair, sender)
}

/// Steps the pair for `d` of virtual time, pumping `tx` and reading everything the client
/// gets; `each` runs after every step.
fn run(
    pair: &mut Pair,
    tx: &mut super::app::Sender,
    rx: &mut super::app::Receiver,
    d: Duration,
    mut each: impl FnMut(&mut Pair),
) {
    let end = pair.now() + d;
    for _ in 0..2_000_000 {
        if pair.now() >= end {
            return;
        }
        let more = pair.step_capped(Some(end));
        let mut ev = std::mem::take(&mut pair.client_events);
        super::app::dispatch(&mut ev, |e| rx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        super::app::dispatch(&mut ev, |e| tx.on_event(e));
        rx.pump(&mut pair.client);
        tx.pump(pair.server());
        each(pair);
        if !more {
            return;
        }
    }
}

#[test]
fn bbr_finds_the_bottleneck_rate_within_a_few_round_trips() {
    let (mut pair, mut tx) = bulk_pair(Algorithm::Bbr);
    let mut rx = super::app::Receiver::default();
    // 12 round trips of 20 ms after the handshake: Startup doubles from the initial window to
    // the BDP (~170 datagrams) in about 4, and the estimate must be there.
    run(&mut pair, &mut tx, &mut rx, Duration::from_millis(240), |_| {});
    let cc = pair.server().congestion_controller();
    assert_eq!(cc.name(), "bbr");
    let bw = cc.bandwidth_estimate().expect("BBR keeps a bandwidth estimate") as f64;
    let rate = payload_rate();
    eprintln!(
        "BBR bandwidth estimate after 12 RTTs: {:.1} Mbit/s of {:.1} (payload rate)",
        bw * 8e-6,
        rate * 8e-6
    );
    assert!((0.85 * rate..=1.1 * rate).contains(&bw), "estimate {bw} B/s, bottleneck {rate} B/s");
    // Startup ends three rounds after the bandwidth stopped growing (rounds stretched by the
    // queue Startup builds), and Drain empties that queue: by 20 round trips both are over.
    run(&mut pair, &mut tx, &mut rx, Duration::from_millis(160), |_| {});
    assert!(!pair.server().congestion_controller().in_slow_start(), "Startup is over");
    // And the data moves at that rate: over the next 500 ms the client reads at least 85% of
    // what the bottleneck carries.
    let before = rx.bytes;
    run(&mut pair, &mut tx, &mut rx, Duration::from_millis(500), |_| {});
    let goodput = (rx.bytes - before) as f64 / 0.5;
    eprintln!("BBR goodput over the next 500 ms: {:.1} Mbit/s", goodput * 8e-6);
    assert!(goodput > 0.85 * rate, "goodput {goodput} B/s of {rate}");
}

/// Samples the bottleneck queue (server to client) every 5 ms from 1 s to 4 s after the
/// handshake of a bulk download; returns (mean, max) in datagrams and the server's smoothed
/// RTT at the end.
fn queue_profile(alg: Algorithm) -> (f64, usize, Duration, Duration) {
    let (mut pair, mut tx) = bulk_pair(alg);
    let mut rx = super::app::Receiver::default();
    run(&mut pair, &mut tx, &mut rx, Duration::from_secs(1), |_| {});
    let wire = wire_len(PAYLOAD, false);
    let (mut sum, mut n, mut max) = (0usize, 0usize, 0usize);
    let mut next = pair.now();
    let (s, c) = (pair.server_addr, pair.client_addr);
    run(&mut pair, &mut tx, &mut rx, Duration::from_secs(3), |p| {
        if p.now() >= next {
            let q = p.net.backlog_bytes(s, c) / wire;
            sum += q;
            n += 1;
            max = max.max(q);
            next = p.now() + Duration::from_millis(5);
        }
    });
    let stats = pair.server().stats();
    (sum as f64 / n.max(1) as f64, max, stats.smoothed_rtt, stats.min_rtt)
}

#[test]
fn bbr_keeps_the_bottleneck_queue_short_after_startup() {
    let (bbr_mean, bbr_max, bbr_srtt, bbr_min) = queue_profile(Algorithm::Bbr);
    let (cubic_mean, cubic_max, cubic_srtt, _) = queue_profile(Algorithm::Cubic);
    eprintln!(
        "bottleneck queue 1-4 s (datagrams of {QUEUE}): BBR mean {bbr_mean:.1} max {bbr_max}, \
         srtt {bbr_srtt:?} (min {bbr_min:?}); CUBIC mean {cubic_mean:.1} max {cubic_max}, \
         srtt {cubic_srtt:?}"
    );
    // The BDP is ~170 datagrams: BBR's queue stays a fraction of it (ProbeBW_UP adds a
    // quarter BDP for a round, DOWN drains it), where CUBIC fills the buffer to tail drop.
    assert!(bbr_mean < 25.0, "BBR mean queue {bbr_mean:.1} datagrams");
    assert!(bbr_max < QUEUE / 2, "BBR max queue {bbr_max} datagrams");
    assert!(cubic_max > bbr_max, "the test tells the two apart: CUBIC {cubic_max}");
    // RTT inflation: the smoothed RTT stays within 30% of the 20 ms propagation delay.
    assert!(bbr_srtt < Duration::from_millis(26), "BBR srtt {bbr_srtt:?}");
    assert!(bbr_min >= Duration::from_millis(20));
}

/// Datagrams the relay really dropped on the way from the server to the client (random and
/// burst loss, tail drops), and the server's loss declarations beside them.
fn declared_and_dropped(p: &mut Pair) -> (u64, u64) {
    let down = p.net.link_stats(p.server_addr, p.client_addr);
    let dropped = down.lost_random + down.lost_burst + down.dropped_queue_full;
    (p.server().stats().packets_lost, dropped)
}

#[test]
fn five_megabytes_through_the_lossy_relay_bbr_and_cubic() {
    const SIZE: u64 = 5_000_000;
    let mut times = Vec::new();
    for seed in [41, 42, 43] {
        let (bbr, mut p) = download(Algorithm::Bbr, 0.03, SIZE, seed);
        let bs = p.client.stats();
        let (bbr_declared, bbr_dropped) = declared_and_dropped(&mut p);
        let (cubic, mut q) = download(Algorithm::Cubic, 0.03, SIZE, seed);
        let cs = q.client.stats();
        let ss = q.server().stats();
        let (cubic_declared, cubic_dropped) = declared_and_dropped(&mut q);
        // CUBIC's window under 3% random loss: the loss-based response (about 1.7 / sqrt(p)
        // datagrams, ~10 of them, 14 kB), not persistent congestion.
        eprintln!(
            "CUBIC sender, seed {seed}: {} congestion events, {} persistent congestion, {} PTOs, {} lost, final cwnd {}",
            ss.congestion_events,
            ss.persistent_congestion,
            ss.pto_count,
            ss.packets_lost,
            ss.cwnd
        );
        assert_eq!(ss.persistent_congestion, 0, "random loss is not persistent congestion");
        let down = p.net.link_stats(p.server_addr, p.client_addr);
        eprintln!(
            "5 MB through the relay (3% loss, bursts <= 3, 10 ms, 100 Mbit/s, 200 datagrams), \
             seed {seed}: BBR {bbr:?} (server lost {} of {} datagrams, {} bursts capped), \
             CUBIC {cubic:?} (client saw {} / {} received); declared lost / dropped by the \
             relay: BBR {bbr_declared} / {bbr_dropped}, CUBIC {cubic_declared} / {cubic_dropped}",
            down.lost_random, down.sent, down.loss_spared, cs.packets_received, bs.packets_received,
        );
        assert!(down.lost_random > 0, "the relay loses packets");
        // No spurious loss declarations: the relay neither reorders nor jitters, so every
        // packet the sender declares lost (packet or time threshold) was really dropped.
        // A spurious declaration would cost a window reduction for nothing.
        assert!(bbr_declared <= bbr_dropped, "BBR: {bbr_declared} declared, {bbr_dropped} lost");
        assert!(
            cubic_declared <= cubic_dropped,
            "CUBIC: {cubic_declared} declared, {cubic_dropped} lost"
        );
        times.push((bbr, cubic));
    }
    for (bbr, cubic) in times {
        // 5 MB at 100 Mbit/s is 0.4 s; issue 18 asks for at most 2 s (handshake included)
        // through this relay, which BBR must meet under random loss.
        assert!(bbr <= Duration::from_secs(2), "BBR took {bbr:?}");
        assert!(bbr < cubic, "BBR {bbr:?} not faster than CUBIC {cubic:?} under random loss");
    }
}

#[test]
fn bbr_survives_one_percent_random_loss_near_the_rate() {
    // 20 MB through the relay with 1% loss: at least half the bottleneck rate end to end.
    let (t, _) = download(Algorithm::Bbr, 0.01, 20_000_000, 51);
    let goodput = 20_000_000.0 / t.as_secs_f64();
    eprintln!("20 MB with 1% loss under BBR: {t:?}, {:.1} Mbit/s", goodput * 8e-6);
    assert!(goodput > 0.5 * payload_rate(), "goodput {goodput} B/s");
}

#[test]
fn the_default_transport_sends_five_megabytes_through_the_relay_within_two_seconds() {
    // Issue 18's target for a server with its defaults: 5 MB through the lossy relay in at
    // most 2 s (virtual time, handshake included). CUBIC, the previous default, needs ~10 s.
    let config = PairConfig {
        seed: 44,
        up: relay(0.03),
        down: relay(0.03),
        client: TransportConfig::default().with_rng_seed(11),
        server: TransportConfig::default().with_rng_seed(22),
        ..PairConfig::default()
    };
    let o = run_until_done(config, (0, 0), (1, 5_000_000), 3_000_000);
    check(&o, (0, 0), (1, 5_000_000));
    let mut pair = o.pair;
    let t = pair.net.elapsed();
    eprintln!("5 MB through the relay with the default transport (seed 44): {t:?}");
    assert_eq!(pair.server().congestion_controller().name(), "bbr");
    assert!(t <= Duration::from_secs(2), "took {t:?}");
}
