//! Path MTU discovery (DPLPMTUD, RFC 8899 / RFC 9000 §14.3) on the simulated network.

use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;

use super::app::{dispatch, Receiver, Sender};
use super::pair::{Pair, PairConfig};
use crate::connection::{MtudState, TransportConfig};
use crate::streams::Dir;

pub(super) fn pair_cfg(mtu: Option<usize>, t: TransportConfig) -> PairConfig {
    let link = LinkConfig { mtu, ..LinkConfig::with_delay(Duration::from_millis(10)) };
    PairConfig {
        client: t.clone().with_rng_seed(1),
        server: t.with_rng_seed(2),
        up: link.clone(),
        down: link,
        ..PairConfig::default()
    }
}

/// Runs an upload of `n` x `size` bytes; returns the pair, whether it completed and the
/// receiver's mismatches. `at`: (time after the handshake, new link) to change the path.
pub(super) fn upload(
    cfg: PairConfig,
    n: usize,
    size: u64,
    change: Option<(Duration, LinkConfig)>,
) -> (Pair, bool, u64) {
    let mut pair = Pair::new(cfg);
    assert!(pair.handshake());
    let mut tx = Sender::new(Dir::Bi, n, size, 16 * 1024);
    let mut rx = Receiver::default();
    let start = pair.now();
    let mut change = change;
    for _ in 0..1_000_000 {
        if let Some((after, link)) = change.as_ref() {
            if pair.now() > start + *after {
                pair.net.set_path(pair.client_addr, pair.server_addr, link.clone()).unwrap();
                change = None;
            }
        }
        pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| tx.on_event(e));
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| rx.on_event(e));
        tx.pump(&mut pair.client);
        rx.pump(pair.server());
        if rx.complete(n, size) && tx.all_acked() {
            return (pair, true, rx.mismatches);
        }
    }
    (pair, false, rx.mismatches)
}

fn on() -> TransportConfig {
    TransportConfig::default().with_pmtud(true)
}

/// On a 1500-byte IPv4 path the search converges to the largest UDP payload that fits (1472)
/// and the transfer uses it.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.3.1
//= type=test
//# A QUIC sender can therefore enter the DPLPMTUD BASE state
//# (Section 5.2 of [DPLPMTUD]) when the QUIC connection handshake has
//# been completed.
#[test]
fn converges_to_1472_on_1500_mtu() {
    let (pair, done, bad) = upload(pair_cfg(Some(1500), on()), 1, 2_000_000, None);
    assert!(done && bad == 0);
    let s = pair.client.stats();
    println!("client {s:?}");
    assert_eq!(s.pmtu, 1472, "{s:?}");
    assert_eq!(pair.client.mtud_state(), MtudState::SearchComplete);
    assert!(s.pmtu_probes_sent >= 4 && s.pmtu_probes_lost == 3, "{s:?}");
    // Datagrams observed: ~1.36 M stream bytes per 1000 datagrams at 1472 (1200: ~1.1 M).
    let avg = s.bytes_sent / s.datagrams_sent;
    assert!(avg > 1400, "average datagram {avg} bytes: {s:?}");
}

/// With the default configuration (no PMTU setting touched) the connection reaches the path
/// MTU of a 1500-byte path, and a bulk transfer of many streams in both directions completes
/// byte-exact at that size.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.2
//= type=test
//# An endpoint SHOULD use DPLPMTUD (Section 14.3) or PMTUD (Section 14.2.1)
//# to determine whether the path to a destination will support a desired
//# maximum datagram size without fragmentation.
#[test]
fn default_config_reaches_path_mtu_and_bulk_transfer_completes() {
    assert!(TransportConfig::default().pmtud, "DPLPMTUD is on by default");
    let link = LinkConfig { mtu: Some(1500), ..LinkConfig::with_delay(Duration::from_millis(10)) };
    let cfg = PairConfig { up: link.clone(), down: link, ..PairConfig::default() };
    let (up, down) = ((20, 256 * 1024), (4, 512 * 1024));
    let o = super::transfer::run_until_done(cfg, up, down, 2_000_000);
    let (c, s) = (o.pair.client.stats(), o.pair.server.as_ref().unwrap().stats());
    println!("client {c:?}\nserver {s:?}");
    assert!(o.done, "transfer did not finish after {} steps: {c:?}", o.pair.steps);
    assert_eq!(o.server_rx.mismatches + o.client_rx.mismatches, 0);
    assert_eq!(o.server_rx.bytes, up.0 as u64 * up.1);
    assert_eq!(o.client_rx.bytes, down.0 as u64 * down.1);
    for (who, st, conn) in
        [("client", c, &o.pair.client), ("server", s, o.pair.server.as_ref().unwrap())]
    {
        assert_eq!(st.pmtu, 1472, "{who}: {st:?}");
        assert_eq!(conn.mtud_state(), MtudState::SearchComplete, "{who}");
        // 1472 acknowledged; the 9000-byte jumbo size above it lost three times.
        assert!(st.pmtu_probes_sent >= 4 && st.pmtu_probes_lost == 3, "{who}: {st:?}");
    }
    // The bulk of the data went in full-size datagrams.
    let avg = c.bytes_sent / c.datagrams_sent;
    assert!(avg > 1400, "client's average datagram {avg} bytes: {c:?}");
    let link = o.pair.net.link_stats(o.pair.client_addr, o.pair.server_addr);
    assert_eq!(link.dropped_mtu, c.pmtu_probes_lost, "only probes exceeded the path MTU: {link:?}");
}

/// On a 1280-byte path (IPv4 + UDP: 1252-byte payloads) probes above it are lost; the PMTU stays
/// at most 1252, no data is lost, and the lost probes are no congestion signal.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.4
//= type=test
//# Loss of a QUIC packet that is carried in a PMTU probe is therefore not a
//# reliable indication of congestion and SHOULD NOT trigger a congestion
//# control reaction; see Item 7 in Section 3 of [DPLPMTUD].
#[test]
fn stays_below_1280_mtu_and_lost_probes_are_no_congestion() {
    let (pair, done, bad) = upload(pair_cfg(Some(1280), on()), 1, 1_000_000, None);
    assert!(done && bad == 0);
    let s = pair.client.stats();
    println!("client {s:?}");
    assert!(s.pmtu <= 1252 && s.pmtu >= 1200, "{s:?}");
    assert!(s.pmtu_probes_lost >= 3, "probes above the MTU were lost: {s:?}");
    assert_eq!(s.congestion_events, 0, "lost probes are no congestion signal: {s:?}");
    assert_eq!(s.stream_bytes_retransmitted, 0, "{s:?}");
    assert_eq!(s.mtu_fallbacks, 0, "{s:?}");
}

/// Discovery off: every datagram stays at 1200 bytes.
#[test]
fn disabled_keeps_1200() {
    let (pair, done, bad) = upload(
        pair_cfg(Some(1500), TransportConfig::default().with_pmtud(false)),
        1,
        500_000,
        None,
    );
    assert!(done && bad == 0);
    let s = pair.client.stats();
    assert_eq!(s.pmtu, 1200);
    assert_eq!(s.pmtu_probes_sent, 0);
    assert_eq!(pair.client.mtud_state(), MtudState::Disabled);
    assert!(s.bytes_sent <= s.datagrams_sent * 1200, "{s:?}");
}

/// The MTU drops from 1500 to 1280 mid-transfer: black-hole detection falls back to 1200, the
/// search runs again and settles at most at 1252; the transfer completes byte-exact.
#[test]
fn mtu_drop_black_hole_fallback_and_research() {
    let small = LinkConfig { mtu: Some(1280), ..LinkConfig::with_delay(Duration::from_millis(10)) };
    let (pair, done, bad) =
        upload(pair_cfg(Some(1500), on()), 1, 3_000_000, Some((Duration::from_millis(40), small)));
    let s = pair.client.stats();
    println!("client {s:?}");
    assert!(done && bad == 0, "{s:?}");
    assert!(s.mtu_fallbacks >= 1, "black hole detected: {s:?}");
    assert!(s.pmtu >= 1200 && s.pmtu <= 1252, "{s:?}");
    let link = pair.net.link_stats(pair.client_addr, pair.server_addr);
    assert!(link.dropped_mtu > 0, "{link:?}");
}
