//! More interop cases: limits and flow control, stream resets, hostile paths, negotiation
//! details, Retry. Instantiated by [`crate::cases::interop_cases!`] like the basic ones.

use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;

use crate::app::{Ended, Peer, StreamError};
use crate::cases::Build;
use crate::driver::Budget;
use crate::scenarios;
use crate::setup::{Setup, DELAY, TIGHT_STREAMS};

/// Reset code used by [`reset_and_stop_sending`].
const RESET_CODE: u64 = 7;
/// STOP_SENDING code used by [`reset_and_stop_sending`].
const STOP_CODE: u64 = 9;

/// 20 streams x 64 KiB each way while each side allows only 4 concurrent streams, 16 KiB per
/// stream and 64 KiB per connection: MAX_STREAMS, MAX_STREAM_DATA and MAX_DATA must keep
/// coming back, both ways.
pub fn tight_limits<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup { tight: true, ..Setup::new(11) });
    scenarios::handshake(&mut p);
    let streams = 5 * TIGHT_STREAMS;
    scenarios::transfer(&mut p, streams, 64 * 1024, Budget::new(500_000, 600));
    scenarios::report("tight limits", &p);
    // quinn-proto's own count of the credit frames the other side sent it.
    for (side, frames) in
        [("client", p.client.quinn_frames_rx()), ("server", p.server.quinn_frames_rx())]
    {
        let Some(f) = frames else { continue };
        if side == "client" {
            // Only the client opens streams, so only it needs stream credit back.
            assert!(f.max_streams_bidi > 0, "quinn-proto client got MAX_STREAMS: {f:?}");
        }
        assert!(f.max_stream_data > 0, "quinn-proto {side} got MAX_STREAM_DATA: {f:?}");
        assert!(f.max_data > 0, "quinn-proto {side} got MAX_DATA: {f:?}");
    }
}

/// The client opens streams A and B. Then one side (the actor) resets its sending half of A
/// after 8 KiB with [`RESET_CODE`] and asks the other (the observer) to stop sending on B with
/// [`STOP_CODE`]. The observer must read `Reset(RESET_CODE)` on A and get `Stopped(STOP_CODE)`
/// writing on B; then the connection must still carry a transfer (flow control accounted).
pub fn reset_and_stop_sending<C: Peer, S: Peer>(build: impl Build<C, S>, by_client: bool) {
    let (mut p, _) = build(&Setup::new(12));
    scenarios::handshake(&mut p);
    let (a, b) = (p.client.open_bi().expect("stream A"), p.client.open_bi().expect("stream B"));
    for id in [a, b] {
        assert_eq!(p.client.write(id, b"open"), Ok(4), "client writes on {id}");
    }
    let mut accepted = Vec::new();
    let r = p.run_until(Budget::new(10_000, 30), |_, s, _| {
        while let Some(id) = s.accept_bi() {
            accepted.push(id);
        }
        accepted.len() == 2
    });
    r.unwrap_or_else(|e| panic!("server accepting A and B: {e}"));
    assert_eq!(accepted, vec![a, b], "the server accepts A and B in order");

    let (mut started, mut reset_seen, mut stop_seen) = (false, None, None);
    let (mut sink, mut written) = (Vec::new(), 0usize);
    let chunk = [0x5au8; 1024];
    let r = p.run_until(Budget::new(50_000, 60), |c, s, _| {
        let (actor, observer): (&mut dyn Peer, &mut dyn Peer) =
            if by_client { (c, s) } else { (s, c) };
        if !started {
            started = true;
            let n = actor.write(a, &[1u8; 8 * 1024]).expect("actor writes on A");
            assert!(n > 0, "the actor's first write on A is accepted");
            actor.reset(a, RESET_CODE).expect("actor resets A");
            actor.stop_sending(b, STOP_CODE).expect("actor stops B");
        }
        if reset_seen.is_none() {
            match observer.read(a, &mut sink) {
                Ok(false) => {}
                Ok(true) => panic!("A ended with FIN, not with a reset"),
                Err(e) => reset_seen = Some(e),
            }
        }
        if stop_seen.is_none() {
            match observer.write(b, &chunk) {
                Ok(n) => written += n,
                Err(e) => stop_seen = Some(e),
            }
        }
        reset_seen.is_some() && stop_seen.is_some()
    });
    let (actor, observer) = if by_client { ("client", "server") } else { ("server", "client") };
    if let Err(e) = r {
        panic!(
            "{observer} waiting for the {actor}'s reset and stop: {e}; reset seen {reset_seen:?}, \
             stop seen {stop_seen:?}, {written} B written on B"
        );
    }
    assert_eq!(reset_seen, Some(StreamError::Reset(RESET_CODE)), "{observer} reading A");
    assert_eq!(stop_seen, Some(StreamError::Stopped(STOP_CODE)), "{observer} writing B");
    // The connection goes on: flow control counted the reset stream's final size.
    scenarios::transfer(&mut p, 4, 64 * 1024, Budget::new(100_000, 60));
}

/// A key update by the client in the middle of a transfer on a path with 5% loss.
pub fn key_update_with_loss<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, keys) = build(&Setup::new(13).loss(0.05));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 2, 32 * 1024, Budget::new(100_000, 60));
    assert!(p.client.force_key_update(), "key update refused");
    scenarios::transfer(&mut p, 4, 64 * 1024, Budget::new(200_000, 120));
    let [up, down] = p.tap.key_phases(&keys).expect("key phases");
    assert_eq!((up, down), (vec![0, 1], vec![0, 1]), "key phases client->server, server->client");
}

/// A hostile path: 3% loss, 5% reordering, 2% duplication, 5 ms jitter, both ways.
pub fn messy_path<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let link = LinkConfig {
        loss: 0.03,
        reorder: 0.05,
        duplicate: 0.02,
        jitter: Duration::from_millis(5),
        ..LinkConfig::with_delay(DELAY)
    };
    let (mut p, _) = build(&Setup { link, ..Setup::new(14) });
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 8, 128 * 1024, Budget::new(500_000, 600));
    scenarios::report("messy path", &p);
    let stats = p.net.total_stats();
    assert!(stats.reordered > 0 && stats.duplicated > 0 && stats.lost_random > 0, "{stats:?}");
}

/// A 20 Mbit/s bottleneck with a 32 KiB tail-drop queue: congestion control must back off
/// on queue drops and still deliver 2 MiB each way.
pub fn bottleneck<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let link = LinkConfig {
        rate_bps: Some(20_000_000),
        queue_bytes: 32 * 1024,
        ..LinkConfig::with_delay(Duration::from_millis(20))
    };
    let (mut p, _) = build(&Setup { link, ..Setup::new(15) });
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 2, 1024 * 1024, Budget::new(1_000_000, 600));
    scenarios::report("bottleneck", &p);
    let stats = p.net.total_stats();
    assert!(stats.dropped_queue_full > 0, "the queue overflowed at least once: {stats:?}");
}

/// Handshakes under 15% loss on both directions, three loss patterns: the Initial and
/// Handshake flights must be retransmitted (PTO) until both sides are connected.
pub fn handshake_with_loss<C: Peer, S: Peer>(build: impl Build<C, S>) {
    for seed in [21, 22, 23] {
        let (mut p, _) = build(&Setup::new(seed).loss(0.15));
        scenarios::handshake(&mut p);
        scenarios::transfer(&mut p, 2, 8 * 1024, Budget::new(100_000, 120));
    }
}

/// The client closes with an application code before the handshake completes (right after
/// the server's first flight left, before it arrived): the close goes out in an Initial packet
/// as a transport CONNECTION_CLOSE, APPLICATION_ERROR (0x0c), reason cleared, which the
/// server sees (RFC 9000 §10.2.3).
pub fn close_during_handshake<C: Peer, S: Peer>(build: impl Build<C, S>) {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
    //= type=test
    //# Endpoints MUST clear the value of the Reason Phrase field and SHOULD
    //# use the APPLICATION_ERROR code when converting to a CONNECTION_CLOSE
    //# of type 0x1c.
    let (mut p, _) = build(&Setup::new(16));
    for _ in 0..1_000 {
        if p.tap.datagrams().1 > 0 {
            break;
        }
        // One step at a time until the server has answered.
        let _ = p.run_until(Budget::new(1, 10), |_, _, _| false);
    }
    assert!(p.tap.datagrams().1 > 0, "the server answered the ClientHello");
    assert!(!p.client.is_connected(), "the client has not seen the server's flight yet");
    let now = p.now();
    p.client.close(now, 0x4242, b"changed my mind");
    let seen = scenarios::wait_end(&mut p, false, Budget::new(1_000, 10));
    assert_eq!(seen, Ended::PeerTransport { code: 0x0c, reason: Vec::new() }, "server saw");
    p.run_to_quiescence(Budget::new(10_000, 30), |_, _, _| {}).expect("both sides drain");
}

/// Only the server advertises a 2 s idle timeout; the client (default 30 s) must apply the
/// negotiated minimum and time out after ~2 s too (RFC 9000 §10.1).
pub fn idle_timeout_negotiated<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let idle = Duration::from_secs(2);
    let setup = Setup { idle_timeout: Some(idle), idle_server_only: true, ..Setup::new(17) };
    let (mut p, _) = build(&setup);
    scenarios::handshake(&mut p);
    let start = p.now();
    assert_eq!(scenarios::wait_end(&mut p, true, Budget::new(1_000, 10)), Ended::TimedOut);
    let client_after = p.now() - start;
    assert!(client_after >= idle && client_after < idle * 3, "client timed out {client_after:?}");
    assert_eq!(scenarios::wait_end(&mut p, false, Budget::new(1_000, 10)), Ended::TimedOut);
}

/// The quinn-proto server answers the first Initial with a Retry; the client must echo the
/// token, and both must validate the retry_source_connection_id transport parameter.
pub fn retry<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let (mut p, _) = build(&Setup { retry: true, ..Setup::new(18) });
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 2, 16 * 1024, Budget::new(50_000, 60));
    assert_eq!(p.tap.retries(), 1, "one Retry on the wire");
}

/// Seeds swept by [`seed_sweep`] unless `PEREGRINE_INTEROP_SEEDS` says how many.
const SWEEP_SEEDS: u64 = 24;

/// Many loss/reorder patterns: for each seed, a handshake, 4 x 32 KiB each way and an
/// application close (seen by the server, or lost and then timed out / reset) on a path with 5% loss, 3% reordering, 1% duplication and 2 ms jitter.
/// Every failing seed is listed (set `PEREGRINE_INTEROP_SEEDS` to sweep more).
pub fn seed_sweep<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let seeds = std::env::var("PEREGRINE_INTEROP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SWEEP_SEEDS);
    let link = LinkConfig {
        loss: 0.05,
        reorder: 0.03,
        duplicate: 0.01,
        jitter: Duration::from_millis(2),
        ..LinkConfig::with_delay(DELAY)
    };
    let mut failed = Vec::new();
    for seed in 1000..1000 + seeds {
        let setup = Setup { link: link.clone(), ..Setup::new(seed) };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (mut p, _) = build(&setup);
            scenarios::handshake(&mut p);
            scenarios::transfer(&mut p, 4, 32 * 1024, Budget::new(200_000, 300));
            let now = p.now();
            p.client.close(now, 1, b"sweep done");
            // The close is sent once, then only in answer to packets (RFC 9000 §10.2.1): when
            // it is lost and the server has nothing to send, the server learns of the end by
            // its idle timeout or by a stateless reset; both are correct.
            let seen = scenarios::wait_end(&mut p, false, Budget::new(10_000, 60));
            let closed = Ended::PeerApplication { code: 1, reason: b"sweep done".to_vec() };
            assert!(
                seen == closed || matches!(seen, Ended::TimedOut | Ended::Reset),
                "server saw {seen:?}"
            );
        }));
        if let Err(e) = run {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("seed {seed}: {msg}"));
        }
    }
    assert!(failed.is_empty(), "{} of {seeds} seeds failed:\n{}", failed.len(), failed.join("\n"));
}

/// Bit flips: 2% of datagrams get one bit flipped (and 2% are lost), ten patterns. Corrupted
/// packets must fail authentication and be dropped like losses, never end the connection or
/// corrupt stream data.
pub fn corruption<C: Peer, S: Peer>(build: impl Build<C, S>) {
    let link = LinkConfig { corrupt: 0.02, loss: 0.02, ..LinkConfig::with_delay(DELAY) };
    let mut corrupted = 0;
    for seed in 2000..2010 {
        let (mut p, _) = build(&Setup { link: link.clone(), ..Setup::new(seed) });
        scenarios::handshake(&mut p);
        scenarios::transfer(&mut p, 4, 32 * 1024, Budget::new(200_000, 300));
        corrupted += p.net.total_stats().corrupted;
    }
    assert!(corrupted > 20, "bits were flipped: {corrupted} datagrams");
}
