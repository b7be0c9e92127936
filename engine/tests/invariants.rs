//! DESIGN.md "Invariants taught by other stacks' failures": one test each, named after it.

// The tests bound their waits with the wall clock (never asserting speed, only termination).
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{
    block_on, ConnError, Connection, Endpoint, EndpointConfig, RecvStream, RecvStreamError,
    SendStream, WriteCompletion, WriteStatus,
};
use peregrine_engine::connection::TransportConfig;
#[allow(unused_imports)]
use peregrine_engine::streams::{CancelReason, Dir, StreamsConfig};
use peregrine_engine::VarInt;
#[allow(unused_imports)]
use support::tapq::{packet_spaces, Tap, TapQueue, HANG, STALL};

const T: Duration = Duration::from_secs(10);

fn tapped(cfg: EndpointConfig) -> (Endpoint, Arc<Tap>) {
    let tap = Tap::new();
    let ep = Endpoint::with_queues(vec![TapQueue::open(tap.clone())], cfg).unwrap();
    (ep, tap)
}

fn server_cfg(t: TransportConfig) -> EndpointConfig {
    EndpointConfig::server(support::server_config(t))
}

fn client_cfg(t: TransportConfig) -> EndpointConfig {
    EndpointConfig::client(support::client_config(t))
}

/// Polls `f` every millisecond until it holds, at most `limit` (bounded wait).
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    f()
}

/// After a close: the closing side's datagrams from `from` on carry exactly one packet per
/// space the close flag recorded as written, and nothing more follows; the worker's flush
/// loop stayed bounded and does not spin on the emitted close.
fn check_close_on_wire(ep: &Endpoint, tap: &Tap, from: usize, written: [bool; 3], stage: &str) {
    let it0 = ep.stats().workers[0].iterations;
    std::thread::sleep(Duration::from_millis(300));
    let after = tap.since(from);
    let mut per_space = [0usize; 3];
    for d in &after {
        for s in packet_spaces(d) {
            assert!(s < 3, "{stage}: unexpected packet type");
            per_space[s] += 1;
        }
    }
    for s in 0..3 {
        assert_eq!(
            per_space[s],
            usize::from(written[s]),
            "{stage}: close packets in space {s} (written {written:?}, datagrams {})",
            after.len()
        );
    }
    assert_eq!(after.len(), 1, "{stage}: one coalesced close datagram");
    let st = ep.stats().workers[0].clone();
    // A flush takes at most ready + max_batch turns; nothing loops on the emitted close.
    assert!(st.scheduler.max_turns_per_flush <= 64 + 8, "{stage}: {:?}", st.scheduler);
    // No spin: in 300 ms an idle worker sleeps to its next timer (each sleep is at most
    // 100 ms, plus wake-ups for our own polling of stats): far below a spinning loop's count.
    assert!(st.iterations - it0 < 100, "{stage}: {} iterations while closed", st.iterations - it0);
    let sent: u64 = st.scheduler.close_packets.iter().sum();
    assert_eq!(
        sent as usize,
        written.iter().filter(|w| **w).count(),
        "{stage}: scheduler close count"
    );
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
//= type=test
//# When sending a CONNECTION_CLOSE frame, the goal is to ensure that
//# the peer will process the frame.
#[test]
fn invariant_close_emitted_once() {
    let mut seen = Vec::new();

    // Stage 0: closed from another thread before the first flight left (client Initial keys).
    {
        let (server, _stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        // Recorded but not delivered: the server cannot answer before the close arrives.
        ctap.drop_all.store(true, Ordering::SeqCst);
        let connecting = client.connect(server.local_addr(), "localhost").unwrap();
        let c = connecting.connection().unwrap();
        std::thread::spawn(move || c.close(VarInt::from_u32(1), b"early")).join().unwrap();
        let c = connecting.connection().unwrap();
        assert!(wait_for(T, || c.close_emitted()));
        // The first Initial may have left before the close command arrived: the close
        // datagram is the last one, and nothing may follow it.
        assert!(ctap.count() <= 2);
        let from = ctap.count() - 1;
        let w = c.close_written();
        assert_eq!(w, [true, false, false]);
        check_close_on_wire(&client, &ctap, from, w, "before first flight");
        seen.push(w);
        assert!(block_on(connecting, Some(T)).unwrap().is_err());
    }

    // Stage 1: Initial only — the server never answers; the app closes from another thread.
    {
        let (server, stap) = tapped(server_cfg(TransportConfig::default()));
        stap.drop_all.store(true, Ordering::SeqCst);
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        let connecting = client.connect(server.local_addr(), "localhost").unwrap();
        assert!(wait_for(T, || ctap.count() >= 1));
        let c = connecting.connection().unwrap();
        let from = ctap.count();
        std::thread::spawn(move || c.close(VarInt::from_u32(2), b"initial")).join().unwrap();
        let c = connecting.connection().unwrap();
        assert!(wait_for(T, || c.close_emitted()));
        let w = c.close_written();
        assert_eq!(w, [true, false, false]);
        check_close_on_wire(&client, &ctap, from, w, "initial only");
        seen.push(w);
    }

    // Stage 2: a transport close at Initial + Handshake: the client cannot verify the
    // server's certificate (wrong name) after deriving Handshake keys, before 1-RTT.
    {
        let (server, stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        let from_srv = stap.count();
        let connecting = client.connect(server.local_addr(), "not-localhost.example").unwrap();
        let c = connecting.connection().unwrap();
        assert!(wait_for(T, || c.close_emitted()));
        // Silence the server so nothing re-arms the close.
        stap.drop_all.store(true, Ordering::SeqCst);
        let w = c.close_written();
        assert!(w[0] && w[1] && !w[2], "transport close spaces {w:?}");
        // The close datagram is the last one the client sent.
        let from = ctap.count() - 1;
        check_close_on_wire(&client, &ctap, from, w, "initial+handshake transport close");
        assert!(block_on(connecting, Some(T)).unwrap().is_err());
        assert!(stap.count() > from_srv);
        seen.push(w);
    }

    // Stage 3: the server closes mid-handshake (Initial, Handshake and 1-RTT send keys) by
    // shutting down while the client's answer is withheld.
    {
        let (server, stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        ctap.pass_budget.store(1, Ordering::SeqCst); // only the first Initial reaches the server
        let _connecting = client.connect(server.local_addr(), "localhost").unwrap();
        assert!(wait_for(T, || stap.count() >= 1));
        std::thread::sleep(Duration::from_millis(20));
        let from = stap.count();
        let srv = Arc::new(server);
        let s2 = srv.clone();
        let h = std::thread::spawn(move || s2.shutdown(Duration::from_secs(4)));
        assert!(
            wait_for(T, || srv.stats().workers[0].scheduler.close_packets.iter().sum::<u64>() > 0)
        );
        let cp = srv.stats().workers[0].scheduler.close_packets;
        let w = [cp[0] > 0, cp[1] > 0, cp[2] > 0];
        assert!(w[0] && w[1], "server handshake close spaces {w:?}");
        check_close_on_wire(&srv, &stap, from, w, "server mid-handshake");
        assert!(h.join().unwrap().is_ok());
        assert_eq!(srv.stats().drained_signals, 1);
        seen.push(w);
    }

    // Stage 4: 1-RTT after the handshake is confirmed: only the application space.
    {
        let (server, stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        let c = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
        let _s = server.accept_blocking(Some(T)).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // HANDSHAKE_DONE, keys discarded
        stap.drop_all.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        let from = ctap.count();
        let c2 = c.clone();
        std::thread::spawn(move || c2.close(VarInt::from_u32(4), b"1-rtt")).join().unwrap();
        assert!(wait_for(T, || c.close_emitted()));
        let w = c.close_written();
        assert_eq!(w, [false, false, true]);
        check_close_on_wire(&client, &ctap, from, w, "1-RTT");
        // A second close is a no-op.
        c.close(VarInt::from_u32(5), b"again");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ctap.count(), from + 1);
        seen.push(w);
    }
    assert!(seen.contains(&[true, false, false]) && seen.contains(&[false, false, true]));
}

/// Waits for every completion; each resolves exactly once (a `WriteCompletion` is consumed
/// by its one wait). Returns (delivered, cancelled, refused).
fn settle(ws: Vec<WriteCompletion>, limit: Duration) -> (usize, usize, usize) {
    let (mut d, mut c, mut r) = (0, 0, 0);
    for w in ws {
        match w.wait(limit).expect("every write completes") {
            WriteStatus::Delivered => d += 1,
            WriteStatus::Cancelled(_) => c += 1,
            WriteStatus::Refused(_) => r += 1,
        }
    }
    (d, c, r)
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn invariant_send_complete_exactly_once() {
    let (server, client) =
        support::loopback_pair(TransportConfig::default(), TransportConfig::default());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut all = Vec::new();

    // Random writes, finishes, resets and peer stop-sendings on one connection, then close.
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let sconn = server.accept_blocking(Some(T)).unwrap();
    let reader = std::thread::spawn(move || {
        // The server reads some streams to the end and stops others.
        let mut n = 0u64;
        while let Ok((_s, mut r)) = sconn.accept_bi_blocking(Duration::from_secs(2)) {
            n += 1;
            if n % 3 == 0 {
                r.stop(77);
            } else {
                let _ = r.read_to_end_blocking(64 << 20, Duration::from_secs(5));
            }
        }
        sconn
    });
    let mut streams = Vec::new();
    for _ in 0..40 {
        streams.push(conn.open_bi_blocking(T).unwrap().0);
    }
    for i in 0..4000 {
        let s = &streams[(rng(&mut seed) % streams.len() as u64) as usize];
        match rng(&mut seed) % 20 {
            0 => all.push(s.finish()),
            1 => s.reset(5),
            _ => all.push(s.write(vec![i as u8; (rng(&mut seed) % 3000) as usize + 1])),
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    conn.close(VarInt::from_u32(9), b"done");
    // Writes after the close complete too (refused or cancelled).
    for s in &streams[..5] {
        all.push(s.write(vec![1u8; 10]));
    }
    let issued = all.len();
    let (d, c, r) = settle(all, T);
    assert_eq!(d + c + r, issued);
    assert!(c > 0, "some writes were cancelled by reset/stop/close");
    let st = client.stats();
    assert_eq!(st.duplicate_completions, 0);
    assert_eq!(st.writes, st.completions);
    assert_eq!(st.delivered as usize, d);
    assert_eq!((st.cancelled as usize, st.refused as usize), (c, r));
    let _ = reader.join();

    // Idle timeout: the server endpoint disappears while writes are in flight.
    let idle =
        TransportConfig::default().with_idle_timeout(Some(Duration::from_millis(300))).unwrap();
    let (server2, client2) = support::loopback_pair(idle.clone(), idle);
    let conn2 = client2.connect(server2.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let s2 = server2.accept_blocking(Some(T)).unwrap();
    // The server endpoint goes away without closing (its handle outlives it): only the
    // client's idle timer can end the connection.
    drop(server2);
    let (s, _r) = conn2.open_bi_blocking(T).unwrap();
    let ws: Vec<_> = (0..500).map(|i| s.write(vec![i as u8; 1000])).collect();
    let statuses: Vec<WriteStatus> = ws.into_iter().map(|w| w.wait(T).unwrap()).collect();
    assert_eq!(statuses.len(), 500);
    let idle = WriteStatus::Cancelled(CancelReason::IdleTimeout);
    assert!(statuses.contains(&idle), "idle timeout cancelled the unacknowledged writes");
    assert!(statuses.iter().all(|s| *s == idle || *s == WriteStatus::Delivered));
    drop(s2);
    assert!(matches!(block_on(conn2.closed(), Some(T)).unwrap(), ConnError::Connection(_)));
    assert_eq!(client2.stats().duplicate_completions, 0);

    // Endpoint drop: a silent peer, writes in flight, the client endpoint dropped.
    let (server3, client3) =
        support::loopback_pair(TransportConfig::default(), TransportConfig::default());
    let conn3 = client3.connect(server3.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let (s3, _r3) = conn3.open_bi_blocking(T).unwrap();
    drop(server3);
    let ws: Vec<_> = (0..1000).map(|i| s3.write(vec![i as u8; 1200])).collect();
    drop(client3);
    // Writes posted after the drop complete at once as cancelled.
    let late = s3.write(vec![0u8; 10]);
    let (d3, c3, r3) = settle(ws, T);
    assert_eq!(d3 + c3 + r3, 1000);
    assert!(c3 > 0);
    assert!(matches!(late.wait(T).unwrap(), WriteStatus::Cancelled(_)));
}

#[test]
fn invariant_shutdown_accounting() {
    let n = if cfg!(debug_assertions) { 200 } else { 2000 };
    let any = "127.0.0.1:0".parse().unwrap();
    let mut scfg = server_cfg(TransportConfig::default());
    scfg.workers = 2;
    let server = Arc::new(Endpoint::bind(any, scfg).unwrap());
    let mut ccfg = client_cfg(TransportConfig::default());
    ccfg.workers = 2;
    let client = Arc::new(Endpoint::bind("127.0.0.1:0".parse().unwrap(), ccfg).unwrap());
    let pending: Vec<_> =
        (0..n).map(|_| client.connect(server.local_addr(), "localhost").unwrap()).collect();
    let conns: Vec<Connection> =
        pending.into_iter().filter_map(|c| c.wait(Duration::from_secs(30)).ok()).collect();
    assert!(conns.len() >= n * 9 / 10, "{} of {n} connected", conns.len());
    assert!(wait_for(T, || server.stats().live_connections >= conns.len() as u64));

    // Both sides close concurrently: client threads close connections while the server and
    // the client endpoint shut down.
    let half = conns.len() / 2;
    let (a, b) = conns.split_at(half);
    let a = a.to_vec();
    let b = b.to_vec();
    let t1 = std::thread::spawn(move || a.iter().for_each(|c| c.close(VarInt::from_u32(1), b"a")));
    let s2 = server.clone();
    let t2 = std::thread::spawn(move || s2.shutdown(Duration::from_secs(20)));
    let s3 = server.clone();
    let t3 = std::thread::spawn(move || s3.shutdown(Duration::from_secs(20)));
    b.iter().for_each(|c| c.close(VarInt::from_u32(2), b"b"));
    t1.join().unwrap();
    let r2 = t2.join().unwrap();
    let r3 = t3.join().unwrap();
    assert!(r2.is_ok() && r3.is_ok(), "{r2:?} {r3:?}");
    let cr = client.shutdown(Duration::from_secs(20));
    assert!(cr.is_ok(), "{cr:?}");
    // Idempotent: a third shutdown changes nothing.
    assert!(server.shutdown(Duration::from_secs(1)).is_ok());
    for ep in [&server, &client] {
        let st = ep.stats();
        assert_eq!(st.drained_signals, 1, "drained exactly once");
        assert_eq!(st.live_connections, 0);
        assert_eq!(st.accounting_underflows, 0);
        assert_eq!(st.opened, st.closed);
    }
    assert!(client.connect(server.local_addr(), "localhost").is_err());
    assert!(server.accept_blocking(Some(Duration::from_millis(10))).is_none());
}

/// A client/server pair whose server grants `limit` streams of each type.
fn limited_pair(limit: u64) -> (Endpoint, Endpoint, Connection, Connection) {
    let streams = StreamsConfig::default()
        .with_max_concurrent_streams(Dir::Bi, limit)
        .unwrap()
        .with_max_concurrent_streams(Dir::Uni, limit)
        .unwrap();
    let st = TransportConfig::default().with_streams(streams.clone());
    let (server, client) = support::loopback_pair(st.clone(), st);
    let c = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let s = server.accept_blocking(Some(T)).unwrap();
    (server, client, c, s)
}

#[test]
fn invariant_open_stream_wakes() {
    let (_server, _client, c, s) = limited_pair(1);

    // Each case uses the one credit for a stream the server has seen, shows that a further
    // open waits (honouring its timeout), then ends the stream its own way — FIN, reset or
    // STOP_SENDING, from either side — and the waiting open must wake.
    type Halves = (SendStream, RecvStream, SendStream, RecvStream);
    type Ender = fn(Halves);
    let cases: [(&str, Ender); 4] = [
        ("fin both ways", |(cs, mut cr, ss, mut sr)| {
            cs.finish();
            assert_eq!(sr.read_to_end_blocking(1024, T).unwrap(), b"x");
            ss.write_fin(b"bye".to_vec());
            assert_eq!(cr.read_to_end_blocking(1024, T).unwrap(), b"bye");
        }),
        ("resets both ways", |(cs, mut cr, ss, mut sr)| {
            cs.reset(3);
            assert_eq!(sr.read_to_end_blocking(1024, T).err(), Some(RecvStreamError::Reset(3)));
            ss.reset(4);
            assert_eq!(cr.read_to_end_blocking(1024, T).err(), Some(RecvStreamError::Reset(4)));
        }),
        ("server stop-sending, server fin", |(cs, mut cr, ss, mut sr)| {
            sr.stop(5);
            assert_eq!(block_on(cs.stopped(), Some(T)).unwrap(), Some(5));
            ss.write_fin(b"k".to_vec());
            assert_eq!(cr.read_to_end_blocking(1024, T).unwrap(), b"k");
        }),
        ("client fin, client stop-sending", |(cs, mut cr, ss, mut sr)| {
            cs.finish();
            assert_eq!(sr.read_to_end_blocking(1024, T).unwrap(), b"x");
            cr.stop(6);
            assert_eq!(block_on(ss.stopped(), Some(T)).unwrap(), Some(6));
        }),
    ];
    for (name, end) in cases {
        let (cs, cr) = c.open_bi_blocking(T).unwrap();
        cs.write(b"x".to_vec());
        let (ss, sr) = s.accept_bi_blocking(T).unwrap();
        assert_eq!(
            c.open_bi_blocking(Duration::from_millis(200)).err(),
            Some(ConnError::TimedOut),
            "{name}: an open beyond the limit waits, and honours its timeout"
        );
        let c2 = c.clone();
        let waiter = std::thread::spawn(move || c2.open_bi_blocking(T));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "{name}: open returned before credit came back");
        end((cs, cr, ss, sr));
        let opened = waiter.join().unwrap();
        let (os, mut or) = opened.unwrap_or_else(|e| panic!("{name}: waiting open failed: {e}"));
        // Give the credit back for the next case: FIN both ways.
        os.write_fin(b"z".to_vec());
        let (ss, mut sr) = s.accept_bi_blocking(T).unwrap();
        assert_eq!(sr.read_to_end_blocking(16, T).unwrap(), b"z");
        ss.finish();
        assert_eq!(or.read_to_end_blocking(16, T).unwrap(), b"");
    }

    // Unidirectional too: the server finishes (reads to end) the peer's stream.
    let u = c.open_uni_blocking(T).unwrap();
    assert_eq!(c.open_uni_blocking(Duration::from_millis(100)).err(), Some(ConnError::TimedOut));
    let c2 = c.clone();
    let waiter = std::thread::spawn(move || c2.open_uni_blocking(T));
    u.write_fin(b"u".to_vec());
    let mut r = s.accept_uni_blocking(T).unwrap();
    assert_eq!(r.read_to_end_blocking(16, T).unwrap(), b"u");
    assert!(waiter.join().unwrap().is_ok());

    // A waiting open fails promptly (not by its timeout) when the connection closes.
    let c3 = c.clone();
    let (_hs, _hr) = c.open_bi_blocking(T).unwrap();
    let waiter = std::thread::spawn(move || c3.open_bi_blocking(Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(50));
    let c4 = c.clone();
    std::thread::spawn(move || c4.close(VarInt::from_u32(8), b"bye")).join().unwrap();
    let started = Instant::now();
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(ConnError::Connection(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "failed on close, not at its 30 s timeout"
    );
    // Opening on a closed connection fails at once.
    assert!(c.open_bi_blocking(Duration::from_secs(30)).is_err());
}

#[test]
fn invariant_close_never_blocks_on_io() {
    for mode in [HANG, STALL] {
        let name = if mode == HANG { "send blocks forever" } else { "send makes no progress" };
        let (server, _stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
        let c = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
        let _s = server.accept_blocking(Some(T)).unwrap();
        let (send, _recv) = c.open_bi_blocking(T).unwrap();
        // From now on the client's datapath cannot transmit.
        ctap.mode.store(mode, Ordering::SeqCst);
        let writes: Vec<_> = (0..50).map(|i| send.write(vec![i as u8; 1200])).collect();
        if mode == HANG {
            assert!(wait_for(T, || ctap.hanging.load(Ordering::SeqCst) > 0), "worker entered send");
        }
        // Close returns at once, from any thread: no lock held across the stuck I/O.
        let c2 = c.clone();
        let started = Instant::now();
        std::thread::spawn(move || c2.close(VarInt::from_u32(1), b"stuck")).join().unwrap();
        // Handle-side reads never wait on the worker either.
        let _ = c.stats();
        let _ = client.stats();
        // Shutdown returns by its deadline whether or not the worker can drain.
        let r = client.shutdown(Duration::from_millis(500));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{name}: shutdown took {took:?}");
        if mode == HANG {
            assert!(
                matches!(r, Err(peregrine_engine::api::ShutdownError::TimedOut { live: 1 })),
                "{name}: {r:?}"
            );
        }
        // Blocking waits honour their timeouts too.
        assert!(!c.wait_drained(Duration::from_millis(100)) || mode == STALL);
        // Release the datapath: everything completes, exactly once.
        ctap.release();
        let (d, cn, rf) = settle(writes, T);
        assert_eq!(d + cn + rf, 50, "{name}");
        let st = client.stats();
        assert_eq!(st.duplicate_completions, 0);
        assert!(
            wait_for(T, || client.stats().drained_signals == 1),
            "{name}: drained after release"
        );
    }
}
