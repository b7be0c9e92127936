//! Data transfer tests: byte-exact delivery under loss, reordering, duplication, corruption,
//! blackholes, MTU changes, tiny flow-control windows and many parallel streams.

use std::time::Duration;

use peregrine_datapath::sim::{Blackhole, GilbertElliott, LinkConfig};

use super::app::{dispatch, Receiver, Sender};
use super::pair::{Pair, PairConfig};
use crate::connection::{Event, TransportConfig};
use crate::streams::{Dir, StreamsConfig};

/// What a transfer run produced.
pub struct Outcome {
    pub pair: Pair,
    pub client_tx: Sender,
    pub server_rx: Receiver,
    pub server_tx: Sender,
    pub client_rx: Receiver,
    pub done: bool,
    pub other_events: Vec<Event>,
}

/// Client sends `up` = (streams, bytes each) on bidirectional streams, the server sends
/// `down` on unidirectional streams; runs until everything is read and acknowledged.
pub fn run_until_done(
    cfg: PairConfig,
    up: (usize, u64),
    down: (usize, u64),
    max_steps: u64,
) -> Outcome {
    let mut pair = Pair::new(cfg);
    assert!(
        pair.handshake(),
        "handshake failed after {} steps: {:?} {:?} {:?} {:?}",
        pair.steps,
        pair.client_events,
        pair.server_events,
        pair.client.error(),
        pair.server.as_ref().map(|s| s.error())
    );
    let mut client_tx = Sender::new(Dir::Bi, up.0, up.1, 16 * 1024);
    let mut server_tx = Sender::new(Dir::Uni, down.0, down.1, 16 * 1024);
    let mut server_rx = Receiver::default();
    let mut client_rx = Receiver::default();
    let mut other_events = Vec::new();
    let mut finished = false;
    for _ in 0..max_steps {
        let more = pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        other_events.extend(dispatch(&mut ev, |e| {
            client_tx.on_event(e);
            client_rx.on_event(e);
        }));
        let mut ev = std::mem::take(&mut pair.server_events);
        other_events.extend(dispatch(&mut ev, |e| {
            server_tx.on_event(e);
            server_rx.on_event(e);
        }));
        client_tx.pump(&mut pair.client);
        client_rx.pump(&mut pair.client);
        let s = pair.server();
        server_tx.pump(s);
        server_rx.pump(s);
        if server_rx.complete(up.0, up.1)
            && client_rx.complete(down.0, down.1)
            && client_tx.all_acked()
            && server_tx.all_acked()
        {
            finished = true;
            break;
        }
        if !more {
            break;
        }
    }
    Outcome { pair, client_tx, server_rx, server_tx, client_rx, done: finished, other_events }
}

pub(super) fn check(o: &Outcome, up: (usize, u64), down: (usize, u64)) {
    let cs = o.pair.client.stats();
    assert!(
        o.done,
        "transfer incomplete after {} steps at {:?}: server read {} / {}, client read {} / {}, \
         client acked {} streams, server acked {}; client {:?}; events {:?}",
        o.pair.steps,
        o.pair.net.elapsed(),
        o.server_rx.bytes,
        up.0 as u64 * up.1,
        o.client_rx.bytes,
        down.0 as u64 * down.1,
        o.client_tx.finished,
        o.server_tx.finished,
        cs,
        o.other_events,
    );
    assert_eq!(o.server_rx.mismatches + o.client_rx.mismatches, 0);
    assert_eq!(o.server_rx.bytes, up.0 as u64 * up.1);
    assert_eq!(o.client_rx.bytes, down.0 as u64 * down.1);
    // Invariant 2: every accepted write completed exactly once, delivered.
    assert_eq!(o.client_tx.completions, (o.client_tx.writes, 0));
    assert_eq!(o.server_tx.completions, (o.server_tx.writes, 0));
    assert!(o.pair.client.error().is_none() && o.pair.server.as_ref().unwrap().error().is_none());
}

fn lossy(loss: f64, seed: u64) -> PairConfig {
    let link = LinkConfig { loss, ..LinkConfig::with_delay(Duration::from_millis(15)) };
    PairConfig { seed, up: link.clone(), down: link, ..PairConfig::default() }
}

#[test]
fn one_megabyte_each_way() {
    let o = run_until_done(PairConfig::default(), (1, 1 << 20), (1, 1 << 20), 200_000);
    check(&o, (1, 1 << 20), (1, 1 << 20));
    let s = o.pair.client.stats();
    assert_eq!(s.packets_lost, 0, "no loss on a clean link");
    assert!(s.stream_bytes_sent >= 1 << 20);
}

#[test]
fn loss_one_percent() {
    let o = run_until_done(lossy(0.01, 3), (2, 300_000), (2, 300_000), 400_000);
    check(&o, (2, 300_000), (2, 300_000));
}

#[test]
fn loss_five_percent() {
    let o = run_until_done(lossy(0.05, 4), (2, 200_000), (1, 200_000), 400_000);
    check(&o, (2, 200_000), (1, 200_000));
    assert!(o.pair.client.stats().packets_lost > 0, "5% loss loses packets");
}

#[test]
fn loss_twenty_percent() {
    let o = run_until_done(lossy(0.20, 5), (1, 100_000), (1, 100_000), 800_000);
    check(&o, (1, 100_000), (1, 100_000));
    let s = o.pair.client.stats();
    assert!(s.packets_lost > 0 && s.stream_bytes_retransmitted > 0);
}

#[test]
fn burst_loss() {
    let link = LinkConfig {
        burst_loss: Some(GilbertElliott::bursty(0.02, 0.3)),
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let cfg = PairConfig { seed: 6, up: link.clone(), down: link, ..PairConfig::default() };
    let o = run_until_done(cfg, (2, 200_000), (2, 200_000), 400_000);
    check(&o, (2, 200_000), (2, 200_000));
}

#[test]
fn reordering_duplication_corruption() {
    let link = LinkConfig {
        jitter: Duration::from_millis(3),
        reorder: 0.05,
        duplicate: 0.03,
        corrupt: 0.02,
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let cfg = PairConfig { seed: 7, up: link.clone(), down: link, ..PairConfig::default() };
    let o = run_until_done(cfg, (3, 150_000), (3, 150_000), 400_000);
    check(&o, (3, 150_000), (3, 150_000));
    let s = o.pair.client.stats();
    assert!(s.packets_dropped > 0, "corrupted or duplicated packets were dropped: {s:?}");
}

#[test]
fn blackhole_periods() {
    // The simulator's clock starts at the same base for every network of a seed.
    let start = peregrine_datapath::sim::SimNetwork::new(1).now();
    let holes = vec![
        Blackhole {
            start: start + Duration::from_millis(300),
            end: start + Duration::from_millis(900),
        },
        Blackhole {
            start: start + Duration::from_millis(1500),
            end: start + Duration::from_secs(3),
        },
    ];
    let link = LinkConfig {
        blackholes: holes,
        rate_bps: Some(5_000_000),
        queue_bytes: 256 * 1024,
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let cfg = PairConfig { up: link.clone(), down: link, ..PairConfig::default() };
    let o = run_until_done(cfg, (1, 2_000_000), (1, 500_000), 800_000);
    check(&o, (1, 2_000_000), (1, 500_000));
    let up = o.pair.net.link_stats(o.pair.client_addr, o.pair.server_addr);
    assert!(up.dropped_blackhole > 0, "the blackholes swallowed packets: {up:?}");
    assert!(o.pair.net.elapsed() > Duration::from_secs(3), "outlived the second blackhole");
    assert!(o.pair.client.stats().pto_count > 0, "probes crossed the outages");
}

#[test]
fn mtu_drop_below_datagram_size_is_survived_at_1200() {
    // Our datagrams are 1200 bytes: an MTU of 1280 (IPv6 minimum) carries them; the transfer
    // completes byte-exact over it.
    let link = LinkConfig { mtu: Some(1280), ..LinkConfig::with_delay(Duration::from_millis(5)) };
    let cfg = PairConfig { up: link.clone(), down: link, ..PairConfig::default() };
    let o = run_until_done(cfg, (1, 500_000), (1, 500_000), 400_000);
    check(&o, (1, 500_000), (1, 500_000));
}

#[test]
fn tiny_flow_control_windows() {
    let streams = StreamsConfig::default()
        .with_stream_receive_window(1024)
        .unwrap()
        .with_max_stream_receive_window(1024)
        .unwrap()
        .with_receive_window(4096)
        .unwrap()
        .with_max_receive_window(4096)
        .unwrap();
    let t = TransportConfig::default().with_streams(streams);
    let cfg = PairConfig {
        client: t.clone().with_rng_seed(1),
        server: t.with_rng_seed(2),
        ..PairConfig::default()
    };
    let o = run_until_done(cfg, (3, 60_000), (2, 60_000), 400_000);
    check(&o, (3, 60_000), (2, 60_000));
}

#[test]
fn many_streams_both_directions() {
    let (n, size) = if cfg!(debug_assertions) { (200, 5_000) } else { (200, 50_000) };
    let o = run_until_done(PairConfig::default(), (n, size), (n, size), 1_000_000);
    check(&o, (n, size), (n, size));
}

#[test]
fn hundred_megabytes_release_only() {
    if cfg!(debug_assertions) {
        eprintln!("skipped in debug builds: run with --release");
        return;
    }
    let size = 100 << 20;
    let t = TransportConfig::default().with_max_datagram_size(1452).unwrap();
    let link = LinkConfig {
        rate_bps: Some(1_000_000_000),
        queue_bytes: 1 << 20,
        ..LinkConfig::with_delay(Duration::from_millis(5))
    };
    let cfg = PairConfig {
        client: t.clone().with_rng_seed(5),
        server: t.with_rng_seed(6),
        up: link.clone(),
        down: link,
        gso_segments: 32,
        ..PairConfig::default()
    };
    let o = run_until_done(cfg, (1, size), (0, 0), 5_000_000);
    check(&o, (1, size), (0, 0));
}

/// The path MTU drops below our 1452-byte datagrams mid-transfer: the connection notices the
/// black hole, falls back to 1200-byte datagrams and completes byte-exact.
#[test]
fn mtu_drops_mid_transfer() {
    let t = TransportConfig::default().with_max_datagram_size(1452).unwrap();
    let link = LinkConfig { mtu: Some(1500), ..LinkConfig::with_delay(Duration::from_millis(10)) };
    let cfg = PairConfig {
        client: t.clone().with_rng_seed(1),
        server: t.with_rng_seed(2),
        up: link.clone(),
        down: link.clone(),
        ..PairConfig::default()
    };
    let (n, size) = (1, 1_500_000);
    let mut pair = Pair::new(cfg);
    assert!(pair.handshake());
    let mut tx = Sender::new(Dir::Bi, n, size, 16 * 1024);
    let mut rx = Receiver::default();
    let small = LinkConfig { mtu: Some(1280), ..link };
    let mut dropped = false;
    for _ in 0..400_000 {
        // Halfway through, whatever the sending rate.
        if !dropped && rx.bytes >= size / 2 {
            pair.net.set_path(pair.client_addr, pair.server_addr, small.clone()).unwrap();
            dropped = true;
        }
        pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| tx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| rx.on_event(e));
        tx.pump(&mut pair.client);
        rx.pump(pair.server());
        if rx.complete(n, size) && tx.all_acked() {
            break;
        }
    }
    assert!(dropped, "the MTU changed mid-transfer");
    assert!(rx.complete(n, size), "read {} of {size}; {:?}", rx.bytes, pair.client.stats());
    assert_eq!(rx.mismatches, 0);
    let s = pair.client.stats();
    assert_eq!(s.mtu_fallbacks, 1, "{s:?}");
    let link = pair.net.link_stats(pair.client_addr, pair.server_addr);
    assert!(link.dropped_mtu > 0, "large datagrams were dropped: {link:?}");
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.1
//= type=test
//# Even if an endpoint does not set an ECT field in packets it sends,
//# the endpoint MUST provide feedback about ECN markings it receives, if
//# these are accessible.
#[test]
fn ecn_validated_and_ce_marks_slow_the_sender() {
    // A 20 Mbit/s bottleneck that marks CE above 30 KB of queue instead of dropping.
    let link = LinkConfig {
        rate_bps: Some(20_000_000),
        queue_bytes: 1 << 20,
        ce_threshold: Some(30_000),
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let cfg = PairConfig { up: link.clone(), down: link, ..PairConfig::default() };
    let o = run_until_done(cfg, (1, 3_000_000), (0, 0), 400_000);
    check(&o, (1, 3_000_000), (0, 0));
    assert_eq!(o.pair.client.ecn_state(), crate::recovery::EcnState::Capable);
    let up = o.pair.net.link_stats(o.pair.client_addr, o.pair.server_addr);
    assert!(up.ce_marked > 0, "the bottleneck marked CE: {up:?}");
    let s = o.pair.client.stats();
    assert!(s.congestion_events > 0, "CE counts reduced the window: {s:?}");
    assert_eq!(up.dropped_queue_full, 0, "ECN kept the queue from overflowing");
}

/// The client's NAT rebinds mid-transfer (new port, then new address): the server follows the
/// highest-numbered non-probing packet to the new address, validates it with PATH_CHALLENGE,
/// and the transfer completes byte-exact.
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.3
//= type=test
//# If the recipient permits the migration, it MUST send subsequent
//# packets to the new peer address and MUST initiate path validation
//# (Section 8.2) to verify the peer's ownership of the address if
//# validation is not already underway.
#[test]
fn nat_rebinding_mid_transfer() {
    let link = LinkConfig {
        rate_bps: Some(20_000_000),
        queue_bytes: 512 * 1024,
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let start = peregrine_datapath::sim::SimNetwork::new(1).now();
    let cfg = PairConfig { up: link.clone(), down: link.clone(), ..PairConfig::default() };
    let (up, down) = ((1, 1_000_000), (1, 1_000_000));
    let mut pair = Pair::new(cfg);
    pair.net.set_default_link(link).unwrap();
    let port: std::net::SocketAddr = "10.0.0.1:50001".parse().unwrap();
    let ip: std::net::SocketAddr = "10.0.0.9:50001".parse().unwrap();
    pair.net.rebind(pair.client_addr, port, start + Duration::from_millis(150)).unwrap();
    pair.net.rebind(pair.client_addr, ip, start + Duration::from_millis(400)).unwrap();
    assert!(pair.handshake());
    let mut ctx = Sender::new(Dir::Bi, up.0, up.1, 16 * 1024);
    let mut stx = Sender::new(Dir::Uni, down.0, down.1, 16 * 1024);
    let (mut crx, mut srx) = (Receiver::default(), Receiver::default());
    let mut addrs = Vec::new();
    for _ in 0..400_000 {
        pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| {
            ctx.on_event(e);
            crx.on_event(e);
        });
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| {
            stx.on_event(e);
            srx.on_event(e);
        });
        ctx.pump(&mut pair.client);
        crx.pump(&mut pair.client);
        let s = pair.server();
        stx.pump(s);
        srx.pump(s);
        let a = s.remote_address();
        if addrs.last() != Some(&a) {
            addrs.push(a);
        }
        if srx.complete(up.0, up.1)
            && crx.complete(down.0, down.1)
            && ctx.all_acked()
            && stx.all_acked()
        {
            break;
        }
    }
    assert!(srx.complete(up.0, up.1) && crx.complete(down.0, down.1), "{:?}", pair.client.stats());
    assert_eq!(srx.mismatches + crx.mismatches, 0);
    assert_eq!(addrs, vec![pair.client_addr, port, ip], "the server followed both rebindings");
    // The transfer can end with the PATH_RESPONSE still on its way (fewer ACKs from the
    // client under ACK_FREQUENCY leave less slack): give it a bounded round trip or two.
    let end = pair.now() + Duration::from_secs(1);
    while !pair.server.as_ref().unwrap().path.validated && pair.now() < end {
        if !pair.step_capped(Some(end)) {
            break;
        }
    }
    let s = pair.server.as_ref().unwrap();
    assert!(s.path.validated, "the new path was validated");
    assert!(pair.net.elapsed() > Duration::from_millis(400));
}
