//! Half-open connections on the simulated network, on virtual time (issue 13): a client that
//! sends valid Initials and never completes a handshake costs the server state only until the
//! handshake timeout, and at most the per-worker cap of it; with Retry above a threshold, a
//! legitimate client still connects during such a flood.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use peregrine_datapath::sim::SimQueue;
use peregrine_datapath::{Queue, TxBatch, TxMeta};
use peregrine_engine::api::EndpointConfig;
use peregrine_engine::cid::ConnectionId;
use peregrine_engine::coding::Writer;
use peregrine_engine::connection::TransportConfig;
use peregrine_engine::crypto::{initial_keys, Side, Version, TAG_LEN};
use peregrine_engine::endpoint::{CidFormat, RetryPolicy};
use peregrine_engine::packet::{LongHeader, LongType, PacketBuilder, TruncatedPn};
use peregrine_engine::sim::SimRuntime;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A valid client Initial (no token) carrying a PING, padded to 1200 bytes: enough for the
/// server to create a connection, never enough to complete a handshake.
fn ping_initial(dcid: &ConnectionId) -> Vec<u8> {
    let scid = ConnectionId::new(&[8; 8]).unwrap();
    let keys = initial_keys(Version::V1, dcid, Side::Client).unwrap();
    let mut buf = vec![0u8; 1200];
    let mut w = Writer::new(&mut buf);
    let hdr = LongHeader {
        ty: LongType::Initial,
        version: peregrine_engine::version::V1,
        dst_cid: *dcid,
        src_cid: scid,
        token: &[],
        pn: TruncatedPn::encode(0, None).unwrap(),
        grease_quic_bit: false,
    };
    let b = PacketBuilder::long(&mut w, &hdr).unwrap();
    peregrine_engine::frame::Ping.encode(&mut w).unwrap();
    b.pad_datagram_to(&mut w, 1200, TAG_LEN).unwrap();
    let l = b.finish(&mut w, TAG_LEN).unwrap();
    let pkt = &mut w.written_mut()[l.range()];
    keys.local.packet.seal_in_place(0, pkt, l.header_len).unwrap();
    keys.local.header.protect(pkt, l.pn_offset).unwrap();
    w.written().to_vec()
}

/// Sends `n` Initials with distinct connection IDs from `q` to `to` (bounded count). Drop `q`
/// afterwards: datagrams waiting at a port nobody reads keep the simulated clock at their
/// arrival time.
fn flood(q: &mut SimQueue, to: SocketAddr, first: u32, n: u32) {
    for i in first..first + n {
        let mut id = [0x40u8; 8];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let d = ping_initial(&ConnectionId::new(&id).unwrap());
        let mut tx = q.alloc_tx().unwrap();
        tx.extend_from_slice(&d);
        tx.meta = TxMeta::to(to);
        let mut batch = TxBatch::new();
        batch.push(tx);
        q.send(&mut batch).unwrap();
    }
}

/// Half-open state is gone after the handshake timeout (5 s by default), well before the
/// idle timeout (30 s): before the fix each such connection lived for the idle timeout.
#[test]
fn half_open_state_is_gone_after_the_handshake_timeout() {
    let timeout = peregrine_engine::connection::DEFAULT_HANDSHAKE_TIMEOUT;
    assert_eq!(timeout, Duration::from_secs(5));
    let mut rt = SimRuntime::new(31);
    let scfg = EndpointConfig::server(support::server_config(TransportConfig::default()));
    let server = rt.endpoint(&[addr("10.0.0.1:443")], scfg).unwrap();
    let mut attacker = rt.network().bind(addr("10.0.0.66:9000")).unwrap();
    flood(&mut attacker, server.local_addr(), 0, 50);
    // A blind (spoofing) attacker: nothing reads what the server answers.
    drop(attacker);
    rt.run_for(Duration::from_secs(1));
    let live = rt.worker_stats()[0].connections;
    println!("50 half-open Initials: {live} connections after 1 s");
    assert_eq!(live, 50);
    rt.run_for(timeout - Duration::from_millis(1500));
    assert_eq!(rt.worker_stats()[0].connections, 50, "kept until the handshake timeout");
    rt.run_for(Duration::from_secs(1));
    let live = rt.worker_stats()[0].connections;
    println!("after the {timeout:?} handshake timeout (idle timeout 30 s): {live} connections");
    assert_eq!(live, 0);

    // The control: without a handshake timeout (as before), they stay for the idle timeout.
    let mut rt = SimRuntime::new(31);
    let transport = TransportConfig::default().with_handshake_timeout(None).unwrap();
    let scfg = EndpointConfig::server(support::server_config(transport));
    let server = rt.endpoint(&[addr("10.0.0.1:443")], scfg).unwrap();
    let mut attacker = rt.network().bind(addr("10.0.0.66:9000")).unwrap();
    flood(&mut attacker, server.local_addr(), 0, 50);
    drop(attacker);
    rt.run_for(timeout + Duration::from_secs(1));
    let live = rt.worker_stats()[0].connections;
    println!("without a handshake timeout: {live} connections after {timeout:?} + 1 s");
    assert_eq!(live, 50);
    rt.run_for(Duration::from_secs(25));
    assert_eq!(rt.worker_stats()[0].connections, 0, "gone after the idle timeout");
}

/// The per-worker cap holds under a flood; with Retry above a threshold, a legitimate client
/// connects during it (its Retry token admits it past the cap).
#[test]
fn half_open_cap_and_retry_under_a_flood() {
    for retry in [RetryPolicy::Never, RetryPolicy::AboveHandshakes(20)] {
        let mut rt = SimRuntime::new(32);
        let mut sc = support::server_config(TransportConfig::default());
        sc.max_handshakes = 64;
        sc.retry = retry;
        let server = rt.endpoint(&[addr("10.0.0.1:443")], EndpointConfig::server(sc)).unwrap();
        let mut attacker = rt.network().bind(addr("10.0.0.66:9000")).unwrap();
        flood(&mut attacker, server.local_addr(), 0, 500);
        drop(attacker);
        rt.run_for(Duration::from_millis(500));
        let w = &rt.worker_stats()[0];
        println!(
            "{retry:?}: 500 flood Initials, cap 64: {} connections, {} responses",
            w.connections, w.responses
        );
        match retry {
            RetryPolicy::Never => assert_eq!(w.connections, 64),
            _ => {
                assert_eq!(w.connections, 20, "Retry from the threshold on");
                assert!(w.responses >= 480, "Retries sent: {}", w.responses);
            }
        }
        let client = rt
            .endpoint(
                &[addr("10.0.0.2:5000")],
                EndpointConfig::client(support::client_config(TransportConfig::default())),
            )
            .unwrap();
        let conn = rt.run_until(
            client.connect(server.local_addr(), "localhost").unwrap(),
            Duration::from_secs(3),
        );
        if retry != RetryPolicy::Never {
            let conn = conn.expect("handshake in virtual time");
            assert!(conn.is_ok(), "legitimate client during the flood: {:?}", conn.err());
        }
    }
}

/// Stateless resets are rate-limited per worker (their own token bucket, default burst 64 and
/// 64 a second, beside the one Version Negotiation, Retry and refusals share): 1,000
/// short-header datagrams for connection IDs the worker could have issued, sent at one
/// instant, get 64 resets; a second later 64 more.
#[test]
fn stateless_resets_are_rate_limited_per_worker() {
    let mut rt = SimRuntime::new(33);
    let scfg = EndpointConfig::server(support::server_config(TransportConfig::default()));
    let server = rt.endpoint(&[addr("10.0.0.1:443")], scfg).unwrap();
    // Connection IDs of the default format for worker 0, as the server issues them.
    let burst = |rt: &mut SimRuntime, first: u64| {
        use rand::SeedableRng;
        let mut attacker = rt.network().bind(addr("10.0.0.66:9000")).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(first);
        for _ in 0..1000 {
            let cid = CidFormat::default().generate(0, &mut rng);
            let mut d = vec![0x40];
            d.extend_from_slice(&cid);
            d.resize(100, 0xa5);
            let mut tx = attacker.alloc_tx().unwrap();
            tx.extend_from_slice(&d);
            tx.meta = TxMeta::to(server.local_addr());
            let mut batch = TxBatch::new();
            batch.push(tx);
            attacker.send(&mut batch).unwrap();
        }
    };
    burst(&mut rt, 0);
    rt.run_for(Duration::from_millis(10));
    let first = rt.worker_stats()[0].responses;
    rt.run_for(Duration::from_secs(1));
    burst(&mut rt, 1000);
    rt.run_for(Duration::from_millis(10));
    let second = rt.worker_stats()[0].responses - first;
    println!("1,000 reset triggers at once: {first} resets; 1 s later, 1,000 more: {second}");
    assert_eq!(first, 64, "the burst");
    assert!((60..=66).contains(&second), "refilled at 64/s: {second}");
}
