//! Interop over real UDP on 127.0.0.1 between Peregrine's runtime (`api::Endpoint`, per-core
//! workers on the UDP datapath) and quinn 0.11 on tokio, hq-interop in both roles:
//! (a) a quinn client fetches from a Peregrine server, (b) a Peregrine client fetches from a
//! quinn server. Each case checks bodies byte-exact (length, FNV-1a, content), the number of
//! requests the server saw, and that the server sees the client's application close code.
//! Certificates: an rcgen CA and a "localhost" leaf; both clients verify through the CA root.
//!
//! Every wait is bounded by [`LIMIT`]: a hang fails the test instead of stalling it.

mod quinn_udp {
    pub mod certs;
    pub mod hq;
}

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::VarInt;
use quinn_udp::{certs, hq};

/// Bound on every case (a release run takes well under this).
const LIMIT: Duration = Duration::from_secs(20);
/// The application close code the client sends when done.
const CLOSE_CODE: u32 = 0x42;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn bounded<F: IntoFuture>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {LIMIT:?}"),
    }
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_max_datagram_size(1472).unwrap()
}

/// The fetches of one case: (size, seed) each, all issued concurrently.
fn fetch_set(kind: &str) -> Vec<(usize, u8)> {
    match kind {
        "small" => vec![(1024, 1)],
        "large" => vec![(50 << 20, 2)],
        "many" => (0..100).map(|i| (64 << 10, i as u8)).collect(),
        _ => unreachable!(),
    }
}

/// (a) quinn client → Peregrine server.
async fn quinn_client_peregrine_server(kind: &str) {
    let mut sc = ServerConfig::new(certs::peregrine_server());
    sc.transport = transport();
    let server = Endpoint::bind(any(), EndpointConfig::server(sc)).expect("bind peregrine server");
    let addr = server.local_addr();
    let served = Arc::new(AtomicUsize::new(0));

    let mut client = quinn::Endpoint::client(any()).expect("bind quinn client");
    client.set_default_client_config(certs::quinn_client());
    let connecting = client.connect(addr, "localhost").expect("quinn connect");

    let sconn = bounded("peregrine accept", server.accept()).await.expect("peregrine accepted");
    let serving = tokio::spawn(hq::serve_peregrine(sconn.clone(), served.clone()));
    let conn = bounded("quinn handshake", connecting).await.expect("quinn handshake");

    let fetches = fetch_set(kind);
    let mut tasks = Vec::new();
    for &(size, seed) in &fetches {
        let conn = conn.clone();
        tasks.push(tokio::spawn(
            async move { (size, seed, hq::fetch_quinn(&conn, size, seed).await) },
        ));
    }
    for t in tasks {
        let (size, seed, got) = bounded("quinn fetch", t).await.expect("fetch task");
        hq::check_body(&got, size, seed);
    }
    assert_eq!(served.load(Ordering::Relaxed), fetches.len(), "requests served");

    conn.close(CLOSE_CODE.into(), b"done");
    let reason = bounded("peregrine sees close", serving).await.expect("serve task");
    assert!(
        hq::peregrine_app_close(&reason, CLOSE_CODE.into()),
        "Peregrine server saw {reason:?}, want application close {CLOSE_CODE:#x}"
    );
    bounded("quinn idle", client.wait_idle()).await;
    let report = server.shutdown(LIMIT);
    assert!(report.is_ok(), "peregrine shutdown: {report:?}");
}

/// (b) Peregrine client → quinn server.
async fn peregrine_client_quinn_server(kind: &str) {
    let server = quinn::Endpoint::server(certs::quinn_server(), any()).expect("bind quinn server");
    let addr = server.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));

    let mut cc = ClientConfig::new(certs::peregrine_client());
    cc.transport = transport();
    let client = Endpoint::bind(any(), EndpointConfig::client(cc)).expect("bind peregrine client");
    let connecting = client.connect(addr, "localhost").expect("peregrine connect");

    let incoming = bounded("quinn accept", server.accept()).await.expect("quinn incoming");
    let sconn = bounded("quinn handshake", incoming).await.expect("quinn server handshake");
    let serving = tokio::spawn(hq::serve_quinn(sconn, served.clone()));
    let conn = bounded("peregrine handshake", connecting).await.expect("peregrine handshake");

    let fetches = fetch_set(kind);
    let mut tasks = Vec::new();
    for &(size, seed) in &fetches {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            (size, seed, hq::fetch_peregrine(&conn, size, seed).await)
        }));
    }
    for t in tasks {
        let (size, seed, got) = bounded("peregrine fetch", t).await.expect("fetch task");
        hq::check_body(&got, size, seed);
    }
    assert_eq!(served.load(Ordering::Relaxed), fetches.len(), "requests served");

    conn.close(VarInt::from_u32(CLOSE_CODE), b"done");
    let reason = bounded("quinn sees close", serving).await.expect("serve task");
    assert!(
        hq::quinn_app_close(&reason, CLOSE_CODE),
        "quinn server saw {reason:?}, want application close {CLOSE_CODE:#x}"
    );
    assert!(conn.wait_drained(LIMIT), "peregrine client connection drained");
    server.close(0u32.into(), b"");
    bounded("quinn server idle", server.wait_idle()).await;
}

/// (c) quinn's client keeps the NEW_TOKEN token a Peregrine server gives it (quinn-proto
/// 0.11's default `TokenMemoryCache`) and presents it on its next connection: under
/// `RetryPolicy::Always` only the first connection gets a Retry. (The other direction is not
/// tested: quinn-proto built without its `bloom` feature, as here, sends no NEW_TOKEN.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_uses_the_new_token_of_a_peregrine_server() {
    let mut sc = ServerConfig::new(certs::peregrine_server());
    sc.transport = transport();
    sc.retry = peregrine_engine::endpoint::RetryPolicy::Always;
    let server = Endpoint::bind(any(), EndpointConfig::server(sc)).expect("bind peregrine server");
    let addr = server.local_addr();
    let mut client = quinn::Endpoint::client(any()).expect("bind quinn client");
    client.set_default_client_config(certs::quinn_client());
    for i in 0..2u8 {
        let served = Arc::new(AtomicUsize::new(0));
        let connecting = client.connect(addr, "localhost").expect("quinn connect");
        let sconn = bounded("peregrine accept", server.accept()).await.expect("accepted");
        let serving = tokio::spawn(hq::serve_peregrine(sconn.clone(), served.clone()));
        let conn = bounded("quinn handshake", connecting).await.expect("quinn handshake");
        let got = bounded("quinn fetch", hq::fetch_quinn(&conn, 1024, i)).await;
        hq::check_body(&got, 1024, i);
        conn.close(CLOSE_CODE.into(), b"done");
        bounded("peregrine sees close", serving).await.expect("serve task");
        let w = &server.stats().workers[0];
        println!(
            "quinn connection {i}: server sent {} Retry, {} NEW_TOKEN, accepted {} token(s)",
            w.retries, w.new_tokens_sent, w.new_tokens_accepted
        );
    }
    let w = &server.stats().workers[0];
    assert_eq!(w.new_tokens_sent, 2, "one token per connection");
    assert_eq!(w.retries, 1, "only the first connection was retried");
    assert_eq!(w.new_tokens_accepted, 1, "the second carried the first one's token");
    assert_eq!((w.tokens_ignored, w.invalid_retry_tokens), (0, 0));
    bounded("quinn idle", client.wait_idle()).await;
    let report = server.shutdown(LIMIT);
    assert!(report.is_ok(), "peregrine shutdown: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_fetches_1k_from_peregrine() {
    quinn_client_peregrine_server("small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_fetches_50m_from_peregrine() {
    quinn_client_peregrine_server("large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_fetches_100_streams_from_peregrine() {
    quinn_client_peregrine_server("many").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peregrine_client_fetches_1k_from_quinn() {
    peregrine_client_quinn_server("small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peregrine_client_fetches_50m_from_quinn() {
    peregrine_client_quinn_server("large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peregrine_client_fetches_100_streams_from_quinn() {
    peregrine_client_quinn_server("many").await;
}
