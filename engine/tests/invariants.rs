//! DESIGN.md "Invariants taught by other stacks' failures": one test each, named after it.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{
    block_on, ConnError, Connection, Endpoint, EndpointConfig, WriteCompletion, WriteStatus,
};
use peregrine_engine::connection::TransportConfig;
#[allow(unused_imports)]
use peregrine_engine::streams::{Dir, StreamsConfig};
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
//# When sending CONNECTION_CLOSE, the goal is to ensure that the peer
//# will process the frame.
#[test]
fn invariant_close_emitted_once() {
    let mut seen = Vec::new();

    // Stage 0: closed from another thread before the first flight left (client Initial keys).
    {
        let (server, _stap) = tapped(server_cfg(TransportConfig::default()));
        let (client, ctap) = tapped(client_cfg(TransportConfig::default()));
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
        assert!(matches!(block_on(connecting, Some(T)).unwrap(), Err(_)));
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
