//! `peregrine server` serves on its workers (issue: per-core applications): a stream or a
//! connection costs no OS thread of the server process, a client holding the stream limit open
//! on many connections does not keep a legitimate client from its file, and a client that never
//! grants flow-control credit cannot make the server queue more than its credit.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{Connection, Endpoint, EndpointConfig, RecvStream, SendStream};
use peregrine_engine::app::{ConnCtx, ConnectionHandler};
use peregrine_engine::connection::{ClientConfig, TransportConfig};
use peregrine_engine::crypto::TlsClientConfig;
use peregrine_engine::streams::{Dir, DEFAULT_MAX_CONCURRENT_BIDI, DEFAULT_RECEIVE_WINDOW};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::ServerProc;

const T: Duration = Duration::from_secs(15);

/// A client endpoint trusting the server's certificate, speaking `alpn`.
fn client(server: &ServerProc, alpn: &[u8], transport: TransportConfig) -> Endpoint {
    let pem = std::fs::read(server.cert()).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    let tls = TlsClientConfig::builder()
        .add_root_certificate(cert)
        .unwrap()
        .alpn_protocols([alpn])
        .build()
        .unwrap();
    let mut c = ClientConfig::new(Arc::new(tls));
    c.transport = transport;
    Endpoint::bind("127.0.0.1:0".parse().unwrap(), EndpointConfig::client(c)).unwrap()
}

fn addr(server: &ServerProc) -> SocketAddr {
    server.addr.parse().unwrap()
}

/// OS threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// `GET /name` on a new stream of `conn`: the whole response.
fn fetch(conn: &Connection, name: &str, limit: usize) -> Vec<u8> {
    let (s, mut r) = conn.open_bi_blocking(T).unwrap();
    s.write_fin(format!("GET /{name}\r\n").into_bytes());
    r.read_to_end_blocking(limit, T).unwrap()
}

#[test]
fn streams_and_connections_cost_no_server_thread() {
    let server =
        support::start_server("threads", &[("f", b"hello".to_vec())], &["--workers", "2"]).unwrap();
    let pid = server.child.id();
    let ep = client(&server, b"hq-interop", TransportConfig::default());
    // One connection and request first, so everything the server starts lazily is running.
    let c0 = ep.connect(addr(&server), "localhost").unwrap().wait(T).unwrap();
    assert_eq!(fetch(&c0, "f", 100), b"hello");
    let base = threads(pid);
    // 20 connections x 16 streams, each with an unfinished request: 320 requests in progress.
    let mut held: Vec<(Connection, Vec<(SendStream, RecvStream)>)> = Vec::new();
    for _ in 0..20 {
        let c = ep.connect(addr(&server), "localhost").unwrap().wait(T).unwrap();
        let mut streams = Vec::new();
        for _ in 0..16 {
            let (s, r) = c.open_bi_blocking(T).unwrap();
            s.write(b"G".to_vec());
            streams.push((s, r));
        }
        held.push((c, streams));
    }
    // The server has seen them all: a request on the last connection is answered after them.
    let last = &held.last().unwrap().0;
    assert_eq!(fetch(last, "f", 100), b"hello");
    let during = threads(pid);
    eprintln!("server threads: {base} before, {during} with 21 connections and 337 streams");
    assert_eq!(during, base, "threads before {base}, with 21 connections and 337 streams {during}");
    assert!(during <= 2 + 4, "{during} threads for 2 workers");
}

#[test]
fn a_client_holding_the_stream_limit_does_not_stop_a_fetch() {
    let file = support::pattern(200_000, 9);
    let server = support::start_server("hostile", &[("big", file.clone())], &[]).unwrap();
    // 50 hostile connections, each opening every stream it may and sending one byte on it.
    let hostile = client(&server, b"hq-interop", TransportConfig::default());
    let mut held = Vec::new();
    for _ in 0..50 {
        let c = hostile.connect(addr(&server), "localhost").unwrap().wait(T).unwrap();
        let mut streams = Vec::new();
        // The server's limit (its default): every stream it allows, one byte each.
        for _ in 0..DEFAULT_MAX_CONCURRENT_BIDI {
            let (s, r) = c.open_bi_blocking(T).unwrap();
            s.write(b"G".to_vec());
            streams.push((s, r));
        }
        // One more waits: the limit is really taken.
        assert!(c.open_bi_blocking(Duration::from_millis(100)).is_err());
        held.push((c, streams));
    }
    // A legitimate client still gets its file, byte-exact, in time.
    let good = client(&server, b"hq-interop", TransportConfig::default());
    let started = Instant::now();
    let c = good.connect(addr(&server), "localhost").unwrap().wait(T).unwrap();
    assert_eq!(fetch(&c, "big", 1 << 20), file);
    assert!(started.elapsed() < T);
    drop(held);
}

/// A client connection served by a handler that asks for a file on `streams` streams and
/// never reads: it grants no flow-control credit beyond its initial windows.
struct NoRead {
    streams: usize,
    /// Bytes the connection received, as of its last timer (every 100 ms).
    received: Arc<AtomicU64>,
}

impl ConnectionHandler for NoRead {
    fn on_timer(&mut self, cx: &mut ConnCtx<'_>) {
        self.received.store(cx.stats().bytes_received, Ordering::Relaxed);
        cx.set_timer(Some(cx.now() + Duration::from_millis(100)));
    }

    fn on_connected(&mut self, cx: &mut ConnCtx<'_>) {
        for _ in 0..self.streams {
            let id = cx.open(Dir::Bi).unwrap();
            cx.write(id, bytes::Bytes::from_static(b"GET /f50m\r\n"), true).unwrap();
        }
        cx.set_timer(Some(cx.now() + Duration::from_millis(100)));
    }
}

#[test]
fn a_client_granting_no_credit_pins_no_more_than_its_credit() {
    let size = 50 << 20;
    let file = vec![7u8; size];
    let server = support::start_server("nocredit", &[("f50m", file)], &[]).unwrap();
    let pid = server.child.id();
    let ep = client(&server, b"hq-interop", TransportConfig::default());
    // Warm up (allocator arenas, TLS, the file in the page cache) before measuring.
    let w = ep.connect(addr(&server), "localhost").unwrap().wait(T).unwrap();
    assert_eq!(fetch(&w, "f50m", size + 1).len(), size);
    drop(w);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss(pid);
    let received = Arc::new(AtomicU64::new(0));
    let handler = NoRead { streams: 100, received: received.clone() };
    ep.connect_with(addr(&server), "localhost", Box::new(handler)).unwrap();
    // Let the server queue whatever it would; the client reads nothing.
    std::thread::sleep(Duration::from_secs(3));
    let grown = rss(pid).saturating_sub(before);
    eprintln!("server RSS grew by {} KiB for 100 streams granting no credit", grown >> 10);
    // The client's connection window is DEFAULT_RECEIVE_WINDOW (1.5 MiB): the server may queue
    // that plus a small constant, not 100 x 50 MB.
    assert!(
        grown < 64 << 20,
        "100 streams of a 50 MB file to a client granting {} KiB grew the server by {} MB",
        DEFAULT_RECEIVE_WINDOW >> 10,
        grown >> 20
    );
    let received = received.load(Ordering::Relaxed);
    eprintln!("the client received {} KiB", received >> 10);
    assert!(received >= DEFAULT_RECEIVE_WINDOW / 2, "the server sent what the credit allowed");
}
