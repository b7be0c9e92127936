//! Path MTU discovery beyond Ethernet: the search climbs the common link MTUs (1500, 9000,
//! 9216, loopback 65536) up to what the path, the datapath and the peer's
//! max_udp_payload_size allow, and black-hole detection still falls back.

use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;

use super::mtud::{pair_cfg, upload};
use crate::connection::{MtudState, TransportConfig};

fn on() -> TransportConfig {
    TransportConfig::default()
}

/// A link with `mtu` and a queue that holds a few of its packets at least.
fn link(mtu: Option<usize>) -> LinkConfig {
    LinkConfig { mtu, queue_bytes: 4 << 20, ..LinkConfig::with_delay(Duration::from_millis(10)) }
}

fn cfg(
    mtu: Option<usize>,
    client: TransportConfig,
    server: TransportConfig,
) -> super::pair::PairConfig {
    let mut c = pair_cfg(mtu, on());
    c.up = link(mtu);
    c.down = link(mtu);
    c.client = client.with_rng_seed(1);
    c.server = server.with_rng_seed(2);
    c
}

/// On each common link MTU the search ends at its largest IPv4 UDP payload: one failed size
/// above it (three lost probes) and no lost data. Both ends state a 65507-byte limit, as
/// Peregrine's UDP datapath does.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.3
//= type=test
//# Endpoints SHOULD set the initial value of BASE_PLPMTU (Section 5.1 of
//# [DPLPMTUD]) to be consistent with QUIC's smallest allowed maximum
//# datagram size.
#[test]
fn probe_sizes_reached_on_1500_9000_and_9216_byte_links() {
    for (mtu, want, lost) in [(1500, 1472, 3), (9000, 8972, 3), (9216, 9188, 3)] {
        let udp = || on().fit_datapath(65507);
        let (pair, done, bad) = upload(cfg(Some(mtu), udp(), udp()), 1, 4_000_000, None);
        let s = pair.client.stats();
        assert!(done && bad == 0, "mtu {mtu}: {s:?}");
        assert_eq!(s.pmtu, want, "mtu {mtu}: {s:?}");
        assert_eq!(pair.client.mtud_state(), MtudState::SearchComplete, "mtu {mtu}");
        assert_eq!(s.pmtu_probes_lost, lost, "mtu {mtu}: {s:?}");
        assert_eq!((s.congestion_events, s.stream_bytes_retransmitted), (0, 0), "mtu {mtu}");
        // The bulk went at the discovered size.
        let avg = s.bytes_sent / s.datagrams_sent;
        assert!(avg * 10 > want * 9, "mtu {mtu}: average datagram {avg}: {s:?}");
        let l = pair.net.link_stats(pair.client_addr, pair.server_addr);
        assert_eq!(l.dropped_mtu, lost, "mtu {mtu}: only probes exceeded the path MTU: {l:?}");
    }
}

/// No MTU on the path (loopback-like), and a peer that states it takes 65507-byte datagrams
/// (as Peregrine over UDP does, from its datapath): the search reaches 65507, the largest UDP
/// payload an IPv4 packet carries, without a single lost probe.
#[test]
fn climbs_to_the_ipv4_maximum_without_a_path_limit() {
    let udp = || on().fit_datapath(65507);
    let (pair, done, bad) = upload(cfg(None, udp(), udp()), 1, 8_000_000, None);
    let s = pair.client.stats();
    assert!(done && bad == 0, "{s:?}");
    assert_eq!(s.pmtu, 65507, "{s:?}");
    assert_eq!(s.pmtu_probes_sent, 4, "1472, 8972, 9188, 65507: {s:?}");
    assert_eq!(s.pmtu_probes_lost, 0, "{s:?}");
}

/// A peer whose max_udp_payload_size is the protocol default (it sent none, or 65527) is probed
/// up to jumbo-frame sizes only, even where the path would carry more.
#[test]
fn a_peer_without_a_stated_limit_is_probed_to_jumbo_sizes_only() {
    let (pair, done, bad) = upload(cfg(None, on(), on()), 1, 8_000_000, None);
    let s = pair.client.stats();
    assert!(done && bad == 0, "{s:?}");
    assert_eq!(s.pmtu, 9188, "{s:?}");
    assert_eq!((s.pmtu_probes_sent, s.pmtu_probes_lost), (3, 0), "{s:?}");
}

/// The peer's max_udp_payload_size (here a datapath limit of 9000 bytes) bounds the search:
/// no probe above it is sent.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# This limit does act as an additional constraint on datagram size in
//# the same way as the path MTU, but it is a property of the endpoint
//# and not the path; see Section 14.
#[test]
fn peer_max_udp_payload_size_bounds_the_search() {
    let server = on().fit_datapath(9000);
    let (pair, done, bad) = upload(cfg(None, on(), server), 1, 4_000_000, None);
    let s = pair.client.stats();
    assert!(done && bad == 0, "{s:?}");
    assert_eq!(s.pmtu, 9000, "{s:?}");
    assert_eq!(s.pmtu_probes_lost, 0, "{s:?}");
}

/// A 9000-byte path turns into a 1500-byte one mid-transfer: black-hole detection falls back
/// to 1200 bytes and the new search settles at 1472; the transfer completes byte-exact.
#[test]
fn jumbo_path_shrinking_to_ethernet_falls_back_and_searches_again() {
    // 100 Mbit/s: 8 MB take ~650 ms, the path changes after 200.
    let slow = |mtu| LinkConfig { rate_bps: Some(100_000_000), ..link(mtu) };
    let mut c = cfg(Some(9000), on(), on());
    (c.up, c.down) = (slow(Some(9000)), slow(Some(9000)));
    let (pair, done, bad) =
        upload(c, 1, 8_000_000, Some((Duration::from_millis(200), slow(Some(1500)))));
    let s = pair.client.stats();
    assert!(done && bad == 0, "{s:?}");
    assert!(s.mtu_fallbacks >= 1, "black hole detected: {s:?}");
    assert_eq!(s.pmtu, 1472, "{s:?}");
}
