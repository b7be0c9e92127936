//! The interop test cases, generic over the pairing; [`interop_cases!`] instantiates them as
//! `#[test]`s for one pairing (quinn-proto with itself, or Peregrine with quinn-proto).
//!
//! Each case asserts what each side saw of the other (codes, reasons, bytes, key phases on the
//! wire), not only that nothing panicked.

use std::time::Duration;

use crate::app::{Ended, Peer};
use crate::driver::{Budget, Pair};
use crate::scenarios;
use crate::setup::Setup;
use crate::tap::KeyLog;

/// Builds a pair (and the quinn-proto side's key log) for a setup.
pub trait Build<C, S>: Fn(&Setup) -> (Pair<C, S>, KeyLog) {}
impl<C, S, F: Fn(&Setup) -> (Pair<C, S>, KeyLog)> Build<C, S> for F {}

/// Application error code used by the close cases.
const APP_CODE: u64 = 0x4242;
/// TLS alert no_application_protocol (RFC 7301 §3.2) as a QUIC CRYPTO_ERROR.
const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;
/// TLS alert unknown_ca (RFC 8446 §6.2) as a QUIC CRYPTO_ERROR.
const UNKNOWN_CA: u64 = 0x100 + 48;

/// Handshake with ALPN `hq-interop` and a CA-signed certificate.
pub fn handshake<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, keys) = build(&Setup::new(1));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 1, 1000, Budget::new(10_000, 30));
    let (up, down) = p.tap.datagrams();
    assert!(up >= 2 && down >= 2, "datagrams both ways: {up} / {down}");
    let phases = p.tap.key_phases(&keys).expect("key phases");
    assert_eq!(phases, [vec![0], vec![0]], "no key update unless asked");
}

/// 20 streams x 256 KiB each way, byte-exact, on a clean path.
pub fn transfer_20x256k<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup::new(2));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 20, 256 * 1024, Budget::new(500_000, 600));
    scenarios::report("20 x 256 KiB", &p);
    let (up, down) = p.tap.bytes();
    assert!(up > 20 * 256 * 1024 && down > 20 * 256 * 1024, "bytes on the wire: {up} / {down}");
}

/// 20 streams x 256 KiB each way with 5% random loss on both directions.
pub fn transfer_with_loss<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup::new(3).loss(0.05));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 20, 256 * 1024, Budget::new(1_000_000, 600));
    scenarios::report("5% loss", &p);
    let stats = p.net.total_stats();
    assert!(stats.lost_random > 0, "5% loss must drop datagrams: {stats:?}");
}

/// The client (or the server) updates keys twice; the other side follows each time, and data
/// keeps flowing. Checked on the wire: the key-phase bit flips 0 -> 1 -> 0 both ways.
pub fn key_update<C: Peer, S: Peer>(build: impl Build<C, S>, by_client: bool) {
    let (mut p, keys) = build(&Setup::new(4));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 1, 16 * 1024, Budget::new(20_000, 30));
    for round in 1..=2 {
        // Let the previous update settle (both sides drop old keys after ~3 PTO).
        let _ = p.run_until(Budget::new(10_000, 1), |_, _, _| false);
        let accepted =
            if by_client { p.client.force_key_update() } else { p.server.force_key_update() };
        assert!(accepted, "key update {round} refused");
        scenarios::transfer(&mut p, 2, 16 * 1024, Budget::new(20_000, 30));
    }
    let [up, down] = p.tap.key_phases(&keys).expect("key phases");
    let who = if by_client { "client" } else { "server" };
    assert_eq!(up, vec![0, 1, 0], "client -> server key phases, {who} updating");
    assert_eq!(down, vec![0, 1, 0], "server -> client key phases, {who} updating");
}

/// One side closes with an application code and reason; the other sees exactly those.
pub fn application_close<C: Peer, S: Peer>(build: impl Build<C, S>, by_client: bool) {
    let (mut p, _) = build(&Setup::new(5));
    scenarios::handshake(&mut p);
    let now = p.now();
    let reason = b"interop says goodbye";
    if by_client {
        p.client.close(now, APP_CODE, reason);
    } else {
        p.server.close(now, APP_CODE, reason);
    }
    let seen = scenarios::wait_end(&mut p, !by_client, Budget::new(1_000, 10));
    assert_eq!(seen, Ended::PeerApplication { code: APP_CODE, reason: reason.to_vec() });
    p.run_to_quiescence(Budget::new(10_000, 30), |_, _, _| {}).expect("both sides drain");
    let closer = if by_client { p.client.ended() } else { p.server.ended() };
    assert!(
        matches!(closer, None | Some(Ended::LocallyClosed)),
        "the closing side reports its own close: {closer:?}"
    );
}

/// The client offers an ALPN the server does not speak: the server closes the handshake with
/// a transport error (CRYPTO_ERROR no_application_protocol) that the client sees.
pub fn transport_close_alpn<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let setup = Setup { client_alpn: b"hq-none", ..Setup::new(6) };
    let (mut p, _) = build(&setup);
    let seen = scenarios::wait_end(&mut p, true, Budget::new(1_000, 10));
    assert!(
        matches!(seen, Ended::PeerTransport { code: NO_APPLICATION_PROTOCOL, .. }),
        "client saw {seen:?}"
    );
    let server = scenarios::wait_end(&mut p, false, Budget::new(1_000, 10));
    assert_eq!(server, Ended::LocalTransport { code: NO_APPLICATION_PROTOCOL }, "server");
    assert!(!p.client.is_connected() && !p.server.is_connected());
}

/// The client does not trust the server's CA: it closes with CRYPTO_ERROR unknown_ca, which
/// the server sees.
pub fn transport_close_unknown_ca<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let setup = Setup { trusted: false, ..Setup::new(7) };
    let (mut p, _) = build(&setup);
    let seen = scenarios::wait_end(&mut p, false, Budget::new(1_000, 10));
    assert!(matches!(seen, Ended::PeerTransport { code: UNKNOWN_CA, .. }), "server saw {seen:?}");
    let client = scenarios::wait_end(&mut p, true, Budget::new(1_000, 10));
    assert_eq!(client, Ended::LocalTransport { code: UNKNOWN_CA }, "client");
    assert!(!p.client.is_connected() && !p.server.is_connected());
}

/// With 2 s idle timeouts and no traffic, both sides time out (not before 2 s).
pub fn idle_timeout<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let idle = Duration::from_secs(2);
    let (mut p, _) = build(&Setup { idle_timeout: Some(idle), ..Setup::new(8) });
    scenarios::handshake(&mut p);
    let start = p.now();
    assert_eq!(scenarios::wait_end(&mut p, true, Budget::new(1_000, 10)), Ended::TimedOut);
    assert_eq!(scenarios::wait_end(&mut p, false, Budget::new(1_000, 10)), Ended::TimedOut);
    let idle_for = p.now() - start;
    assert!(idle_for >= idle, "timed out after {idle_for:?}, before the {idle:?} timeout");
    assert!(idle_for < idle * 3, "timed out late: {idle_for:?}");
}

/// Instantiates every case as a `#[test]` for the pairing built by `$build`.
macro_rules! interop_cases {
    ($build:path) => {
        #[test]
        fn handshake() {
            crate::cases::handshake($build);
        }
        #[test]
        fn transfer_20x256k() {
            crate::cases::transfer_20x256k($build);
        }
        #[test]
        fn transfer_with_loss() {
            crate::cases::transfer_with_loss($build);
        }
        #[test]
        fn key_update_by_client() {
            crate::cases::key_update($build, true);
        }
        #[test]
        fn key_update_by_server() {
            crate::cases::key_update($build, false);
        }
        #[test]
        fn application_close_by_client() {
            crate::cases::application_close($build, true);
        }
        #[test]
        fn application_close_by_server() {
            crate::cases::application_close($build, false);
        }
        #[test]
        fn transport_close_alpn_mismatch() {
            crate::cases::transport_close_alpn($build);
        }
        #[test]
        fn transport_close_unknown_ca() {
            crate::cases::transport_close_unknown_ca($build);
        }
        #[test]
        fn idle_timeout() {
            crate::cases::idle_timeout($build);
        }
        #[test]
        fn tight_limits() {
            crate::cases_more::tight_limits($build);
        }
        #[test]
        fn reset_and_stop_sending_by_client() {
            crate::cases_more::reset_and_stop_sending($build, true);
        }
        #[test]
        fn reset_and_stop_sending_by_server() {
            crate::cases_more::reset_and_stop_sending($build, false);
        }
        #[test]
        fn key_update_with_loss() {
            crate::cases_more::key_update_with_loss($build);
        }
        #[test]
        fn messy_path() {
            crate::cases_more::messy_path($build);
        }
        #[test]
        fn bottleneck() {
            crate::cases_more::bottleneck($build);
        }
        #[test]
        fn handshake_with_loss() {
            crate::cases_more::handshake_with_loss($build);
        }
        #[test]
        fn close_during_handshake() {
            crate::cases_more::close_during_handshake($build);
        }
        #[test]
        fn idle_timeout_negotiated() {
            crate::cases_more::idle_timeout_negotiated($build);
        }
        #[test]
        fn full_size_datagrams() {
            crate::cases_path::full_size_datagrams($build);
        }
        #[test]
        fn ecn_ce_marking() {
            crate::cases_path::ecn_ce_marking($build);
        }
        #[test]
        fn uni_streams_both_ways() {
            crate::cases_streams::uni_streams_both_ways($build);
        }
        #[test]
        fn many_small_streams() {
            crate::cases_streams::many_small_streams($build);
        }
        #[test]
        fn corruption() {
            crate::cases_more::corruption($build);
        }
        #[test]
        fn seed_sweep() {
            crate::cases_more::seed_sweep($build);
        }
        #[test]
        fn large_certificate_chain() {
            crate::cases_streams::large_certificate_chain($build);
        }
    };
}
pub(crate) use interop_cases;
