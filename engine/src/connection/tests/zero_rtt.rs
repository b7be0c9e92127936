//! 0-RTT on the simulated network: accepted, rejected (early data off, or a limit the
//! server lowered), a replayed first flight refused, and 0-RTT under loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_datapath::sim::LinkConfig;

use super::pair::{new_tls_client_early, new_tls_server, Pair, PairConfig, CID_LEN};
use crate::connection::{
    Connection, EarlyDataState, Incoming, RandomCidGenerator, ServerConfig, TransportConfig,
};
use crate::crypto::{TlsClientConfig, TlsServerConfig};
use crate::packet::{LongType, PartialDecode, PlainHeader};
use crate::streams::{Dir, StreamId};

fn message(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>().into()
}

fn cfg(client: &Arc<TlsClientConfig>, server: &Arc<TlsServerConfig>) -> PairConfig {
    PairConfig {
        client_tls: Some(client.clone()),
        server_tls: Some(server.clone()),
        ..PairConfig::default()
    }
}

/// A first connection that leaves session tickets in the client's cache.
fn prime(client: &Arc<TlsClientConfig>, server: &Arc<TlsServerConfig>) {
    let mut p = Pair::new(cfg(client, server));
    assert!(p.handshake());
    // The tickets travel in 1-RTT CRYPTO frames after the handshake.
    p.run_for(Duration::from_millis(200), 10_000);
}

/// Reads whatever `conn` has on `id` into `got`; returns whether the FIN was read.
fn read_into(conn: &mut Connection, id: StreamId, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..10_000 {
        match conn.read(id, &mut buf) {
            Ok((0, fin)) => return fin,
            Ok((n, fin)) => {
                got.extend_from_slice(&buf[..n]);
                if fin {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// What the server's application saw of the client's 0-RTT request.
struct Outcome {
    got: Vec<u8>,
    /// Bytes read before the server's handshake completed.
    before_complete: usize,
}

/// Writes `msg` on a new bidirectional stream before the handshake and drives the pair until
/// the server read all of it and the client's handshake is confirmed.
fn request(p: &mut Pair, msg: &Bytes) -> Outcome {
    let id = p.client.open(Dir::Bi).unwrap();
    p.client.write(id, msg.clone(), true).unwrap();
    let mut out = Outcome { got: Vec::new(), before_complete: 0 };
    let mut fin = false;
    let mut done = false;
    for _ in 0..50_000 {
        if fin && p.client.is_handshake_confirmed() {
            done = true;
            break;
        }
        let more = p.step();
        if let Some(s) = p.server.as_mut() {
            fin |= read_into(s, id, &mut out.got);
            if !s.is_handshake_complete() {
                out.before_complete = out.got.len();
            }
        }
        if !more && !fin {
            break;
        }
    }
    assert!(done, "the request arrived and the handshake was confirmed");
    out
}

/// Resumed with 0-RTT accepted: the server's application reads the request before its
/// handshake completes, the client learns 0-RTT was accepted, each byte arrives once.
#[test]
fn zero_rtt_accepted_delivers_before_handshake_completes() {
    let (c, s) = (new_tls_client_early(), new_tls_server(true));
    prime(&c, &s);
    let mut p = Pair::new(cfg(&c, &s));
    assert_eq!(p.client.early_data_state(), EarlyDataState::Pending);
    let msg = message(3000);
    let out = request(&mut p, &msg);
    assert_eq!(out.got, msg.to_vec());
    assert!(out.before_complete > 0, "0-RTT data was delivered before the handshake completed");
    assert!(p.client.is_resumed());
    assert_eq!(p.client.early_data_state(), EarlyDataState::Accepted);
    assert_eq!(p.server().early_data_state(), EarlyDataState::Accepted);
    assert!(p.client.stats().zero_rtt_packets > 0);
    assert!(p.server().stats().zero_rtt_packets > 0);
    // The client no longer holds 0-RTT keys and the server drops its own 3 PTO after the
    // first 1-RTT packet: later traffic still flows.
    p.run_for(Duration::from_secs(2), 20_000);
    assert!(!p.client.is_closed() && !p.server().is_closed());
}

/// A client that attempts 0-RTT against a server that does not allow it (this one has 0-RTT
/// off, so the ticket does not even resume): the client learns it was rejected and the
/// request arrives, once, in 1-RTT packets.
#[test]
fn zero_rtt_rejected_data_resent_in_one_rtt() {
    let c = new_tls_client_early();
    prime(&c, &new_tls_server(true));
    let mut p = Pair::new(cfg(&c, &new_tls_server(false)));
    assert_eq!(p.client.early_data_state(), EarlyDataState::Pending);
    let msg = message(5000);
    let out = request(&mut p, &msg);
    assert_eq!(out.got, msg.to_vec(), "every byte once, in order");
    assert_eq!(out.before_complete, 0, "nothing was processed from 0-RTT");
    assert_eq!(p.client.early_data_state(), EarlyDataState::Rejected);
    assert_eq!(p.server().early_data_state(), EarlyDataState::NotAttempted);
    assert!(p.client.stats().zero_rtt_packets > 0, "the client did send 0-RTT");
    assert_eq!(p.server().stats().zero_rtt_packets, 0);
    assert!(p.server().stats().packets_dropped > 0, "the 0-RTT packets were dropped unread");
}

/// The server lowered initial_max_data since the ticket was issued: it must reject 0-RTT
/// (RFC 9000 §7.4.1) and the data arrives in 1-RTT.
#[test]
fn zero_rtt_rejected_when_server_limits_shrank() {
    let (c, s) = (new_tls_client_early(), new_tls_server(true));
    prime(&c, &s);
    let mut pc = cfg(&c, &s);
    let small = pc.server.streams.clone().with_receive_window(100_000).unwrap();
    pc.server = pc.server.clone().with_streams(small);
    let mut p = Pair::new(pc);
    assert_eq!(p.client.early_data_state(), EarlyDataState::Pending);
    let msg = message(4000);
    let out = request(&mut p, &msg);
    assert_eq!(out.got, msg.to_vec());
    assert_eq!(out.before_complete, 0);
    assert_eq!(p.client.early_data_state(), EarlyDataState::Rejected);
    assert_eq!(p.server().stats().zero_rtt_packets, 0);
}

/// The client's first flight, datagram by datagram.
fn first_flight(client: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..16 {
        let Some(t) = client.poll_transmit(now, &mut buf, 1) else { break };
        out.push(buf[..t.len].to_vec());
    }
    out
}

/// A server connection created from `flight` (as the endpoint would) that processed it.
fn serve(cfg: &ServerConfig, now: Instant, flight: &[Vec<u8>]) -> Connection {
    let (pd, _) = PartialDecode::new(&flight[0], CID_LEN, false).unwrap();
    let PlainHeader::Long { ty: LongType::Initial, version, dst_cid, src_cid, .. } =
        pd.header().clone()
    else {
        panic!("the first datagram starts with an Initial");
    };
    let incoming = Incoming { dst_cid, src_cid, version, retry: None };
    let from = "10.0.0.1:50000".parse().unwrap();
    let mut s =
        Connection::server(cfg, now, from, incoming, Box::new(RandomCidGenerator::new(CID_LEN, 7)))
            .unwrap();
    for d in flight {
        let mut d = d.clone();
        s.handle_datagram(now, from, peregrine_datapath::Ecn::NotEct, &mut d);
    }
    s
}

/// Anti-replay: the same first flight (ClientHello and 0-RTT packets) delivered twice. The
/// first copy's 0-RTT data is delivered; the ticket is single-use, so the replay resumes
/// nothing, gets no 0-RTT keys and its 0-RTT data never reaches the application.
#[test]
fn replayed_zero_rtt_flight_is_refused() {
    let (c, s) = (new_tls_client_early(), new_tls_server(true));
    prime(&c, &s);
    let mut p = Pair::new(cfg(&c, &s));
    let now = p.now();
    let id = p.client.open(Dir::Bi).unwrap();
    let msg = message(500);
    p.client.write(id, msg.clone(), true).unwrap();
    let flight = first_flight(&mut p.client, now);
    assert!(p.client.stats().zero_rtt_packets > 0, "the flight carries 0-RTT");
    let mut scfg = ServerConfig::new(s.clone());
    scfg.transport = TransportConfig::default();

    let mut first = serve(&scfg, now, &flight);
    assert_eq!(first.early_data_state(), EarlyDataState::Accepted);
    let mut got = Vec::new();
    assert!(read_into(&mut first, id, &mut got));
    assert_eq!(got, msg.to_vec());

    let mut replay = serve(&scfg, now, &flight);
    assert_eq!(replay.early_data_state(), EarlyDataState::NotAttempted);
    let mut got = Vec::new();
    read_into(&mut replay, id, &mut got);
    assert!(got.is_empty(), "the replayed 0-RTT data was not delivered");
    assert_eq!(replay.stats().zero_rtt_packets, 0);
    assert!(!replay.is_resumed(), "the single-use ticket was consumed by the first copy");
}

/// 0-RTT with 10% loss both ways: the request still arrives intact, once.
#[test]
fn zero_rtt_with_loss() {
    let (c, s) = (new_tls_client_early(), new_tls_server(true));
    prime(&c, &s);
    for seed in [3, 4, 5] {
        // A fresh ticket for each attempt (tickets are single-use).
        prime(&c, &s);
        let lossy = LinkConfig { loss: 0.1, ..LinkConfig::with_delay(Duration::from_millis(10)) };
        let mut pc = cfg(&c, &s);
        pc.seed = seed;
        pc.up = lossy.clone();
        pc.down = lossy;
        let mut p = Pair::new(pc);
        assert_eq!(p.client.early_data_state(), EarlyDataState::Pending);
        let msg = message(20_000);
        let out = request(&mut p, &msg);
        assert_eq!(out.got, msg.to_vec(), "seed {seed}");
        assert_eq!(p.client.early_data_state(), EarlyDataState::Accepted, "seed {seed}");
    }
}

/// A Retry after a 0-RTT first flight (RFC 9000 §17.2.3): the server dropped those 0-RTT
/// packets; the client sends their data again after its new Initial, and it arrives once.
#[test]
fn zero_rtt_data_resent_after_retry() {
    let (c, s) = (new_tls_client_early(), new_tls_server(true));
    prime(&c, &s);
    let mut pc = cfg(&c, &s);
    pc.mode = super::pair::ServerMode::Retry;
    let mut p = Pair::new(pc);
    assert_eq!(p.client.early_data_state(), EarlyDataState::Pending);
    let msg = message(2500);
    let out = request(&mut p, &msg);
    assert_eq!(p.retries_sent, 1);
    assert_eq!(out.got, msg.to_vec(), "every byte once, in order");
    assert_eq!(p.client.early_data_state(), EarlyDataState::Accepted);
    assert!(p.server().stats().zero_rtt_packets > 0, "resent in 0-RTT after the Retry");
}
