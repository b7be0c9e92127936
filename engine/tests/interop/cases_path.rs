//! Path-level interop cases: ECN with CE marking, NAT rebinding, Version Negotiation,
//! stateless reset.

use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;
use peregrine_datapath::Ecn;

use crate::app::{Ended, Peer};
use crate::cases::Build;
use crate::driver::Budget;
use crate::quinn_peer::QuinnPeer;
use crate::scenarios;
use crate::setup::{Setup, DELAY};

/// A 20 Mbit/s bottleneck that marks CE above 16 KiB of queue (and drops Not-ECT packets
/// there, like an AQM). Both sides must validate ECN (RFC 9000 §13.4.2: the peer's ACK_ECN
/// counts must add up) and keep sending ECT(0) to the end, and react to CE: no AQM drop, CE
/// marks seen, the transfer completes.
pub fn ecn_ce_marking<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let link = LinkConfig {
        rate_bps: Some(20_000_000),
        queue_bytes: 256 * 1024,
        ce_threshold: Some(16 * 1024),
        ..LinkConfig::with_delay(Duration::from_millis(20))
    };
    let (mut p, _) = build(&Setup { link, ..Setup::new(31) });
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 2, 1024 * 1024, Budget::new(1_000_000, 600));
    scenarios::report("ECN", &p);
    let stats = p.net.total_stats();
    assert!(stats.ce_marked > 0, "the bottleneck marked CE: {stats:?}");
    assert_eq!(stats.dropped_aqm, 0, "no Not-ECT packet met the AQM (ECN stayed on): {stats:?}");
    assert_eq!(p.tap.last_ecn(), (Ecn::Ect0, Ecn::Ect0), "both still send ECT(0) at the end");
}

/// The client's NAT mapping changes mid-transfer and the old one expires: the server must
/// notice the new address, validate it (PATH_CHALLENGE / PATH_RESPONSE, RFC 9000 §9.3) and
/// send there, or the transfer stalls. The change comes while the server's data and the
/// client's ACKs are in flight, so the server certainly sends to the old mapping first
/// (whatever the peers' ACK and pacing timing).
pub fn nat_rebinding<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup::new(32));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 2, 32 * 1024, Budget::new(50_000, 60));
    let new_addr = "10.0.0.1:50001".parse().expect("address");
    let budget = Budget::new(200_000, 60);
    scenarios::transfer_rebinding(&mut p, 4, 256 * 1024, budget, Some((128 * 1024, new_addr)));
    if let Some(f) = p.server.quinn_frames_rx() {
        assert!(f.path_response > 0, "the client answered the server's PATH_CHALLENGE: {f:?}");
    }
    let unroutable = p.net.total_stats().unroutable;
    assert!(unroutable > 0, "datagrams went to the expired mapping before the switch");
}

/// A client that speaks only QUIC v2 against a server that speaks only v1: the server answers
/// with Version Negotiation and the client abandons the attempt (RFC 9000 §6.2).
pub fn version_negotiation<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let v2 = peregrine_engine::version::V2;
    let setup = Setup { client_version: v2, client_versions: Some(vec![v2]), ..Setup::new(33) };
    let (mut p, _) = build(&setup);
    let seen = scenarios::wait_end(&mut p, true, Budget::new(1_000, 10));
    assert_eq!(seen, Ended::VersionMismatch, "client");
    assert!(!p.server.is_connected(), "no server connection");
    let (up, down) = p.tap.datagrams();
    assert_eq!((up, down), (1, 1), "one Initial, one Version Negotiation");
}

/// A client starting in v2 (and offering v1) against a server that speaks only v1 and does
/// not implement RFC 9368: the client follows the Version Negotiation and starts again in v1,
/// but the server's transport parameters carry no version_information, so the client cannot
/// tell a genuine Version Negotiation from a forged one and must close with
/// VERSION_NEGOTIATION_ERROR (RFC 9368 §4) instead of completing the handshake.
pub fn version_negotiation_without_version_information<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let setup = Setup { client_version: peregrine_engine::version::V2, ..Setup::new(36) };
    let (mut p, _) = build(&setup);
    let seen = scenarios::wait_end(&mut p, true, Budget::new(10_000, 10));
    assert_eq!(seen, Ended::LocalTransport { code: 0x11 }, "client");
    let (up, _) = p.tap.datagrams();
    assert!(up >= 2, "a v2 Initial, then a v1 first flight: {up}");
}

/// The quinn-proto server restarts and forgets the connection (keeping its reset key): the
/// client's next packets draw a stateless reset, which the client must recognise by its token
/// (RFC 9000 §10.3) and end the connection with.
pub fn stateless_reset<C: Peer>(build: impl Build<C, QuinnPeer>) {
    let (mut p, _) = build(&Setup::new(34));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 1, 4096, Budget::new(10_000, 30));
    p.server.restart();
    let id = p.client.open_bi().expect("stream");
    assert!(p.client.write(id, &[7u8; 2000]).expect("write") > 0);
    let seen = scenarios::wait_end(&mut p, true, Budget::new(10_000, 30));
    assert_eq!(seen, Ended::Reset, "the client saw a stateless reset");
    assert!(p.server.conn().is_none(), "the restarted server has no connection");
}

/// Peregrine builds 1472-byte datagrams (a 1500-byte IPv4 MTU, which the link enforces) and
/// quinn-proto probes its path MTU up to its 1452-byte default: nothing may be dropped for
/// size, and 1 MiB each way arrives intact.
pub fn full_size_datagrams<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let link = LinkConfig { mtu: Some(1500), ..LinkConfig::with_delay(DELAY) };
    let (mut p, _) = build(&Setup { link, max_datagram: Some(1472), ..Setup::new(35) });
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 4, 256 * 1024, Budget::new(200_000, 120));
    scenarios::report("1500-byte MTU", &p);
    let stats = p.net.total_stats();
    assert_eq!(stats.dropped_mtu, 0, "no datagram above the MTU: {stats:?}");
    let (up, down) = p.tap.max_datagram();
    for (dir, max) in [("client -> server", up), ("server -> client", down)] {
        assert!((1400..=1472).contains(&max), "largest datagram {dir}: {max} B");
    }
}
